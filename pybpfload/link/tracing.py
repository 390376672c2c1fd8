"""BTF-attached tracing: tp_btf, fentry / fexit / fmod_ret, lsm and freplace (LINK_CREATE).

These programs get their target at load time (attach BTF id); attaching
creates a tracing link.  Kernels without BPF trampolines (no
CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS, or a lockdown) refuse fentry /
fexit / fmod_ret / lsm already at load, with EPERM or ENOTSUPP.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Optional

from ..errors import BPFError, SyscallError
from ..syscall import commands
from ..abi.uapi import AttachType, ProgType
from ._attach_cmd import link_create, link_create_attr
from ..abi import uapi as t
from .base import Link, hook, prog_fd_of

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["attach_trace", "attach_lsm", "attach_freplace", "tracing_link_attr", "set_freplace_target", "prog_btf_func_id"]

_TRAMPOLINE_TYPES = {
    AttachType.BPF_TRACE_FENTRY: "fentry",
    AttachType.BPF_TRACE_FEXIT: "fexit",
    AttachType.BPF_MODIFY_RETURN: "fmod_ret",
    AttachType.BPF_LSM_MAC: "lsm",
    AttachType.BPF_LSM_CGROUP: "lsm_cgroup",
    AttachType.BPF_TRACE_RAW_TP: "tp_btf",
    AttachType.BPF_TRACE_ITER: "iter",
}


def tracing_link_attr(prog_fd: int, attach_type: int, *, target_fd: int = 0, target_btf_id: int = 0, cookie: int = 0) -> Any:
    """LINK_CREATE attributes of a tracing link (libbpf's bpf_link_create for tracing programs)."""
    return link_create_attr(prog_fd, target_fd, attach_type, tracing={"target_btf_id": target_btf_id, "cookie": cookie})


def _kind(prog: "ProgramLike") -> str:
    if prog.type == ProgType.BPF_PROG_TYPE_EXT:
        return "freplace"
    return _TRAMPOLINE_TYPES.get(prog.expected_attach_type, "tracing")  # type: ignore[call-overload]


@hook("fentry/fexit/fmod_ret/tp_btf", t.ProgType.BPF_PROG_TYPE_TRACING)
def attach_trace(prog: "ProgramLike", *, cookie: int = 0) -> Link:
    """Attach a tp_btf, fentry, fexit, fmod_ret, lsm or freplace program to its load-time target.

    Kernels too old for tracing links (before 5.10) get RAW_TRACEPOINT_OPEN
    without a name, as libbpf falls back.
    """
    prog_fd = prog_fd_of(prog)
    kind = _kind(prog)
    target = prog.attach_target or ""
    attr = tracing_link_attr(prog_fd, int(prog.expected_attach_type), cookie=cookie)
    try:
        fd = link_create(attr, what=f"{kind} {target}", feature=f"{kind} links")
    except SyscallError as e:
        if e.errno != errno.EINVAL or cookie:
            raise
        try:
            fd = commands.raw_tracepoint_open(None, prog_fd)
        except SyscallError:
            raise e from None
    return Link(fd, prog, kind=kind, target=target)


@hook("lsm", t.ProgType.BPF_PROG_TYPE_LSM)
def attach_lsm(prog: "ProgramLike") -> Link:
    """Attach an lsm program (libbpf's bpf_program__attach_lsm)."""
    return attach_trace(prog)


@hook("freplace", t.ProgType.BPF_PROG_TYPE_EXT)
def attach_freplace(prog: "ProgramLike", target: Optional["ProgramLike"] = None, func_name: Optional[str] = None) -> Link:
    """Attach an freplace (BPF_PROG_TYPE_EXT) program.

    Without ``target`` it replaces the function it was loaded against
    (``attach_prog_fd`` + ``attach_btf_id``); with ``target`` and
    ``func_name`` it replaces that global function of another loaded program.
    """
    prog_fd = prog_fd_of(prog)
    target_fd = btf_id = 0
    where = prog.attach_target or ""
    if target is not None:
        if not func_name:
            raise BPFError("attach_freplace: a target program needs func_name")
        target_fd = prog_fd_of(target, "replace a function of")
        btf_id = prog_btf_func_id(target, func_name)
        where = f"{target.name}:{func_name}"
    attr = tracing_link_attr(prog_fd, int(prog.expected_attach_type), target_fd=target_fd, target_btf_id=btf_id)
    fd = link_create(attr, what=f"freplace {where}", feature="freplace links", since=(5, 10))
    return Link(fd, prog, kind="freplace", target=where)


def prog_btf_func_id(prog: "ProgramLike", func_name: str) -> int:
    """The BTF id of FUNC ``func_name`` in a loaded program's BTF (libbpf_find_prog_btf_id)."""
    from ..syscall.btf_handle import BtfHandle
    from ..btf.types import Kind

    info = prog.info()
    if not info.btf_id:
        raise BPFError(f"program {prog.name!r} has no BTF: cannot find function {func_name!r} in it")
    with BtfHandle.from_id(info.btf_id) as h:
        spec = h.spec()
    for tid in spec.find_ids(func_name):
        if spec.kind_of(tid) == Kind.FUNC:
            return tid
    raise BPFError(f"program {prog.name!r} has no function {func_name!r} in its BTF")


def set_freplace_target(prog: "ProgramLike", target: "ProgramLike", func_name: str) -> None:
    """Before load: make an freplace program replace ``func_name`` of loaded ``target``
    (libbpf's bpf_program__set_attach_target with a target fd)."""
    prog.attach_prog_fd = prog_fd_of(target, "replace a function of")
    prog.attach_btf_id = prog_btf_func_id(target, func_name)
    prog.attach_target = func_name
