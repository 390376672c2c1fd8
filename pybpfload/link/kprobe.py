"""kprobes, kretprobes and ksyscall: the kprobe PMU, else tracefs kprobe_events.

A kernel built without CONFIG_KPROBES has neither: attaching raises
NotSupportedError naming kprobes.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
from typing import TYPE_CHECKING, Optional

from ..errors import NotSupportedError, SyscallError
from ..syscall import perf
from ..syscall.fd import Fd
from ..abi import uapi as t
from .base import hook, prog_fd_of
from .perf_event import PerfEventLink, attach_perf_fd
from .tracefs import add_probe_event, remove_probe_event, tracefs_root
from .tracepoint import tracepoint_perf_attr
from .uprobe import pmu_config_bit, pmu_type, probe_perf_attr

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["attach_kprobe", "attach_ksyscall", "has_syscall_wrapper", "kprobe_support", "syscall_function_name"]

# the prefix of syscall entry functions since Linux 4.17 (ARCH_HAS_SYSCALL_WRAPPER)
_SYSCALL_PREFIX = {
    "x86_64": "__x64_sys_",
    "aarch64": "__arm64_sys_",
    "s390x": "__s390x_sys_",
    "riscv64": "__riscv_sys_",
    "ppc64le": "sys_",
    "ppc64": "sys_",
    "loongarch64": "sys_",
}


def kprobe_support() -> Optional[str]:
    """How kprobes can be made here: "pmu", "tracefs", or None when the kernel has no kprobes."""
    if pmu_type("kprobe") is not None:
        return "pmu"
    root = tracefs_root(required=False)
    if root is not None and os.path.exists(os.path.join(root, "kprobe_events")):
        return "tracefs"
    return None


def _require_kprobes() -> str:
    how = kprobe_support()
    if how is None:
        raise NotSupportedError(
            "kprobes",
            "no kprobe PMU (/sys/bus/event_source/devices/kprobe) and no kprobe_events in tracefs: "
            "the kernel is built without CONFIG_KPROBES",
        )
    return how


def syscall_function_name(syscall: str) -> str:
    """The kernel function behind system call ``syscall`` (``"__x64_sys_getpid"`` on x86-64)."""
    return _SYSCALL_PREFIX.get(platform.machine(), "sys_") + syscall


@functools.lru_cache(maxsize=None)
def _pmu_kprobe(func: str, offset: int, retprobe: bool, pid: int, cpu: int) -> Fd:
    """perf_event_open of a kprobe PMU event on ``func`` + ``offset``."""
    pmu = pmu_type("kprobe")
    assert pmu is not None
    cname = ctypes.create_string_buffer(func.encode())
    attr = probe_perf_attr(pmu, retprobe, ctypes.addressof(cname), offset, ret_bit=pmu_config_bit("kprobe", "retprobe", 0))
    try:
        return perf.perf_event_open(attr, pid, cpu)
    finally:
        del cname


def has_syscall_wrapper() -> bool:
    """libbpf's FEAT_SYSCALL_WRAPPER: can a kprobe be put on this arch's ``sys_bpf`` wrapper?

    As libbpf, the answer is whether such a kprobe can be created (PMU or
    tracefs), not whether the symbol exists: a kernel without kprobes says
    False, and LINUX_HAS_SYSCALL_WRAPPER reads 0 there, as it does with libbpf.
    """
    prefix = _SYSCALL_PREFIX.get(platform.machine())
    if prefix is None or not prefix.startswith("__"):
        return False
    func = prefix + "bpf"
    how = kprobe_support()
    if how == "pmu":
        try:
            _pmu_kprobe(func, 0, False, os.getpid(), -1).close()
            return True
        except (SyscallError, OSError):
            return False
    if how == "tracefs":
        try:
            group, event, _ = add_probe_event("kprobe", False, func)
        except (SyscallError, OSError, NotSupportedError):
            return False
        remove_probe_event("kprobe", group, event)
        return True
    return False


@hook("kprobe", t.ProgType.BPF_PROG_TYPE_KPROBE)
def attach_kprobe(
    prog: "ProgramLike", func: str, offset: int = 0, *, retprobe: bool = False, cookie: int = 0, legacy: bool = False
) -> PerfEventLink:
    """Attach a kprobe (or kretprobe) program to kernel function ``func`` (+ ``offset``)."""
    prog_fd_of(prog)
    how = _require_kprobes()
    kind = "kretprobe" if retprobe else "kprobe"
    what = f"{func}+{offset:#x}" if offset else func
    describe = {"perf_event_type": kind, "func_name": func, "offset": offset, "addr": 0}
    if how == "pmu" and not legacy:
        try:
            pfd = _pmu_kprobe(func, offset, retprobe, -1, 0)
        except SyscallError as e:
            if e.errno != errno.ENOENT:
                raise
            # the kprobe PMU's answer for a symbol it cannot find (absent, inlined, or not probeable)
            raise SyscallError(e.errno, "perf_event_open", getattr(prog, "name", None), detail=f"{kind} {what!r}: no such kernel function") from None
        return attach_perf_fd(prog, pfd, cookie=cookie, kind=kind, target=what, describe=describe)
    group, event, tp_id = add_probe_event("kprobe", retprobe, what)
    try:
        pfd = perf.perf_event_open(tracepoint_perf_attr(tp_id), -1, 0)
    except BaseException:
        remove_probe_event("kprobe", group, event)
        raise
    return attach_perf_fd(
        prog, pfd, cookie=cookie, kind=kind, target=what, cleanup=lambda: remove_probe_event("kprobe", group, event), describe=describe
    )


@hook("ksyscall", t.ProgType.BPF_PROG_TYPE_KPROBE)
def attach_ksyscall(prog: "ProgramLike", syscall: str, *, retprobe: bool = False, cookie: int = 0) -> PerfEventLink:
    """Attach a kprobe program to the entry (or return) of system call ``syscall`` (libbpf's attach_ksyscall)."""
    return attach_kprobe(prog, syscall_function_name(syscall), retprobe=retprobe, cookie=cookie)
