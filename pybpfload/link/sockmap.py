"""sk_msg / sk_skb programs on a sockmap or sockhash: a sockmap link (Linux 6.10+) or PROG_ATTACH."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Optional, Union

from ..errors import SyscallError
from ..syscall.fd import Fd
from ._attach_cmd import link_create, link_create_attr, prog_attach
from .base import Link, prog_fd_of
from .cgroup import ProgAttachLink

if TYPE_CHECKING:  # pragma: no cover
    from .base import MapLike
    from .base import ProgramLike

__all__ = ["attach_sockmap"]


def attach_sockmap(prog: "ProgramLike", sock_map: Union["MapLike", int], attach_type: Optional[int] = None, *, legacy: bool = False) -> Link:
    """Attach an sk_msg / sk_skb program to a sockmap or sockhash.

    ``attach_type`` defaults to the program's (BPF_SK_MSG_VERDICT,
    BPF_SK_SKB_STREAM_VERDICT...).  A sockmap link is made when the kernel
    has them, else (or with ``legacy``) BPF_PROG_ATTACH, detached on close.
    """
    import fcntl

    prog_fd = prog_fd_of(prog)
    atype = int(prog.expected_attach_type if attach_type is None else attach_type)
    map_fd = sock_map if isinstance(sock_map, int) else sock_map.fileno()
    name = getattr(sock_map, "name", f"fd {map_fd}")
    if not legacy:
        try:
            fd = link_create(link_create_attr(prog_fd, map_fd, atype), what=f"sockmap {name}")
            return Link(fd, prog, kind="sockmap", target=str(name))
        except SyscallError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
    keep = Fd(fcntl.fcntl(map_fd, fcntl.F_DUPFD_CLOEXEC, 3))
    try:
        prog_attach(prog_fd, keep.fileno(), atype, what=f"sockmap {name}")
    except BaseException:
        keep.close()
        raise
    return ProgAttachLink(prog, keep, atype, kind="sockmap", target=str(name))
