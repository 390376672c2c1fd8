"""XDP: a link on a network device (LINK_CREATE with the ifindex)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Optional, Union

from ..errors import BPFError
from ..abi.uapi import AttachType
from ._attach_cmd import link_create, link_create_attr
from ..abi import uapi as t
from .base import Link, hook, prog_fd_of

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["attach_xdp", "xdp_link_attr", "ifindex_of", "XDP_FLAGS"]

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4

XDP_FLAGS = {"skb": XDP_FLAGS_SKB_MODE, "generic": XDP_FLAGS_SKB_MODE, "drv": XDP_FLAGS_DRV_MODE, "native": XDP_FLAGS_DRV_MODE, "hw": XDP_FLAGS_HW_MODE}


def ifindex_of(dev: Union[int, str]) -> int:
    """The ifindex of a device given by index or name (looked up in the caller's network namespace)."""
    if isinstance(dev, int):
        if dev <= 0:
            raise BPFError(f"invalid ifindex {dev}")
        return dev
    try:
        return socket.if_nametoindex(dev)
    except OSError:
        raise BPFError(f"no network device {dev!r}") from None


def xdp_link_attr(prog_fd: int, ifindex: int, flags: int = 0) -> Any:
    """LINK_CREATE attributes of an XDP link."""
    return link_create_attr(prog_fd, ifindex, AttachType.BPF_XDP, flags)


@hook("xdp", t.ProgType.BPF_PROG_TYPE_XDP)
def attach_xdp(prog: "ProgramLike", dev: Union[int, str], *, mode: Optional[str] = None, flags: int = 0) -> Link:
    """Attach an XDP program to device ``dev`` (ifindex or name).

    ``mode`` is ``"skb"`` (generic), ``"drv"`` (native) or ``"hw"``; by
    default the kernel picks native when the driver has it.
    """
    prog_fd = prog_fd_of(prog)
    ifindex = ifindex_of(dev)
    if mode is not None:
        try:
            flags |= XDP_FLAGS[mode]
        except KeyError:
            raise BPFError(f"unknown XDP mode {mode!r}: use one of {', '.join(XDP_FLAGS)}") from None
    fd = link_create(xdp_link_attr(prog_fd, ifindex, flags), what=f"xdp on ifindex {ifindex}", feature="XDP links", since=(5, 9))
    return Link(fd, prog, kind="xdp", target=str(dev))
