"""Raw tracepoints (RAW_TRACEPOINT_OPEN by name) and BTF-typed ones (tp_btf)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..errors import SyscallError
from ..syscall import commands
from ._attach_cmd import unsupported
from ..abi import uapi as t
from .base import Link, hook, prog_fd_of

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["attach_raw_tracepoint"]


@hook("raw_tracepoint", t.ProgType.BPF_PROG_TYPE_RAW_TRACEPOINT, t.ProgType.BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE, t.ProgType.BPF_PROG_TYPE_TRACING)
def attach_raw_tracepoint(prog: "ProgramLike", name: Optional[str] = None, *, cookie: int = 0) -> Link:
    """Attach a raw_tp program to tracepoint ``name`` (``"sys_enter"``), with BPF_RAW_TRACEPOINT_OPEN.

    A tp_btf program gets its tracepoint from its attach BTF id: leave
    ``name`` out.  A ``cookie`` needs Linux 6.10.
    """
    prog_fd = prog_fd_of(prog)
    try:
        fd = commands.raw_tracepoint_open(name, prog_fd, cookie)
    except SyscallError as e:
        raise unsupported(e, "raw tracepoint cookies" if cookie else None, (6, 10)) from None
    return Link(fd, prog, kind="raw_tracepoint", target=name or prog.attach_target or "")
