"""cgroup programs: a cgroup link (LINK_CREATE on the cgroup directory), or PROG_ATTACH with flags."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional, Union

from ..errors import BPFError
from ..syscall.fd import Fd
from ._attach_cmd import BPF_F_REPLACE, link_create, link_create_attr, prog_attach, prog_detach
from .base import DetachOnClose, Link, prog_fd_of

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["attach_cgroup", "ProgAttachLink", "open_cgroup"]


def open_cgroup(cgroup: Union[str, int]) -> Fd:
    """An fd on a cgroup v2 directory (a path), or a duplicate of an fd."""
    import fcntl

    if isinstance(cgroup, int):
        return Fd(fcntl.fcntl(cgroup, fcntl.F_DUPFD_CLOEXEC, 3))
    try:
        return Fd(os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    except OSError as e:
        raise BPFError(f"cannot open cgroup {cgroup!r}: {e.strerror}") from None


class ProgAttachLink(DetachOnClose):
    """A program attached with BPF_PROG_ATTACH; closing detaches it (BPF_PROG_DETACH).

    ``target`` keeps the fd of what it is attached to (a cgroup, a map).
    """

    def __init__(self, program: "ProgramLike", target_fd: Fd, attach_type: int, *, kind: str, target: str, flags: int = 0) -> None:
        super().__init__(None, program, kind=kind, target=target)
        self._target_fd = target_fd
        self.attach_type = attach_type
        self.flags = flags

    def _detach(self) -> None:
        try:
            if self.program is not None and self.program.fd >= 0:
                prog_detach(self.program.fd, self._target_fd.fileno(), self.attach_type, what=f"{self.kind} {self.target}")
        finally:
            self._target_fd.close()

    def _info_target(self) -> Any:
        return {"target": self.target, "attach_type": self.attach_type, "flags": self.flags}


def attach_cgroup(
    prog: "ProgramLike",
    cgroup: Union[str, int],
    attach_type: Optional[int] = None,
    *,
    flags: int = 0,
    legacy: bool = False,
    replace: Optional["ProgramLike"] = None,
) -> Link:
    """Attach a cgroup program (cgroup_skb, cgroup/sock, sockops, ...) to a cgroup v2 path or fd.

    ``attach_type`` defaults to the program's expected attach type.  By
    default a cgroup link is made (Linux 5.7+); ``legacy=True`` uses
    BPF_PROG_ATTACH, where ``flags`` are BPF_F_ALLOW_OVERRIDE /
    BPF_F_ALLOW_MULTI and ``replace`` swaps a program (BPF_F_REPLACE).
    """
    prog_fd = prog_fd_of(prog)
    atype = int(prog.expected_attach_type if attach_type is None else attach_type)
    where = cgroup if isinstance(cgroup, str) else f"fd {cgroup}"
    cg = open_cgroup(cgroup)
    if not legacy:
        try:
            fd = link_create(link_create_attr(prog_fd, cg.fileno(), atype, flags), what=f"cgroup {where}", feature="cgroup links", since=(5, 7))
        finally:
            cg.close()
        return Link(fd, prog, kind="cgroup", target=str(where))
    try:
        replace_fd = 0
        if replace is not None:
            replace_fd = prog_fd_of(replace, "replace")
            flags |= BPF_F_REPLACE
        prog_attach(prog_fd, cg.fileno(), atype, flags, replace_fd=replace_fd, what=f"cgroup {where}")
    except BaseException:
        cg.close()
        raise
    return ProgAttachLink(prog, cg, atype, kind="cgroup", target=str(where), flags=flags)
