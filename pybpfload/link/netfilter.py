"""Netfilter programs: a netfilter link on a hook of the caller's network namespace (Linux 6.4+)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

from ..errors import BPFError
from ..abi.uapi import AttachType
from ._attach_cmd import link_create, link_create_attr
from ..abi import uapi as t
from .base import Link, hook, prog_fd_of

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["attach_netfilter", "netfilter_link_attr", "NFPROTO", "NF_INET_HOOKS", "BPF_F_NETFILTER_IP_DEFRAG"]

NFPROTO = {"ipv4": 2, "ipv6": 10}
NF_INET_HOOKS = {"prerouting": 0, "local_in": 1, "forward": 2, "local_out": 3, "postrouting": 4}
BPF_F_NETFILTER_IP_DEFRAG = 1


def netfilter_link_attr(prog_fd: int, pf: int, hooknum: int, priority: int, flags: int = 0) -> Any:
    """LINK_CREATE attributes of a netfilter link."""
    return link_create_attr(
        prog_fd, 0, AttachType.BPF_NETFILTER, netfilter={"pf": pf, "hooknum": hooknum, "priority": priority, "flags": flags}
    )


@hook("netfilter", t.ProgType.BPF_PROG_TYPE_NETFILTER)
def attach_netfilter(
    prog: "ProgramLike", pf: Union[int, str], hook: Union[int, str], priority: int, *, flags: int = 0
) -> Link:
    """Attach a netfilter program to ``hook`` ("local_out"...) of family ``pf`` ("ipv4" / "ipv6").

    ``priority`` orders it among the hook's functions (not 0, nor INT_MIN /
    INT_MAX); ``flags`` may ask for IP defragmentation.
    """
    prog_fd = prog_fd_of(prog)
    try:
        pf_n = NFPROTO[pf] if isinstance(pf, str) else pf
        hook_n = NF_INET_HOOKS[hook] if isinstance(hook, str) else hook
    except KeyError as e:
        raise BPFError(f"unknown netfilter family or hook {e.args[0]!r}") from None
    attr = netfilter_link_attr(prog_fd, pf_n, hook_n, priority, flags)
    fd = link_create(attr, what=f"netfilter pf {pf_n} hook {hook_n}", feature="netfilter links", since=(6, 4))
    return Link(fd, prog, kind="netfilter", target=f"{pf}:{hook}")
