"""The one place that calls bpf(2): libc's syscall() through ctypes."""

from __future__ import annotations

import ctypes
import os
from typing import Any, Optional

from ..errors import NotSupportedError, SyscallError

# __NR_bpf per machine (uname -m)
_NR_BPF = {
    "x86_64": 321,
    "i386": 357,
    "i686": 357,
    "aarch64": 280,
    "arm64": 280,
    "armv7l": 386,
    "armv6l": 386,
    "riscv64": 280,
    "loongarch64": 280,
    "ppc64le": 361,
    "ppc64": 361,
    "s390x": 351,
    "mips64": 5315,
}

_libc = ctypes.CDLL(None, use_errno=True)
syscall = _libc.syscall  # int syscall(long, ...); arguments: ints and byref()
get_errno = ctypes.get_errno
NR_BPF: int = _NR_BPF.get(os.uname().machine, -1)


def bpf(cmd: int, attr: Any, size: Optional[int] = None, *, what: Optional[str] = None, name: Optional[str] = None) -> int:
    """Call bpf(cmd, &attr, size) and return its result; raise SyscallError on failure.

    ``attr`` is a ctypes structure; ``size`` defaults to its sizeof.  ``what``
    names the operation in the error (default: the command's name).
    """
    if NR_BPF < 0:
        raise NotSupportedError("bpf(2)", f"unknown syscall number on {os.uname().machine}")
    ret = syscall(NR_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr) if size is None else size)
    if ret < 0:
        err = get_errno()
        raise SyscallError(err, what or cmd_name(cmd), name)
    return ret


def cmd_name(cmd: int) -> str:
    from ..abi.uapi import Cmd

    try:
        return Cmd(cmd).name
    except ValueError:
        return f"bpf cmd {cmd}"

