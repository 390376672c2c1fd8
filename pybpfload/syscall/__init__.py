"""The syscall layer: bpf(2) through ctypes, kept thin.

- :mod:`._types` holds the attr and info layouts, generated from kernel BTF
  by ``tools/gen_syscall_types.py``;
- :func:`bpf` is the one call site of the system call;
- :mod:`.commands` has one small function per command;
- :class:`Fd` owns one file descriptor.
"""

from ._raw import NR_BPF, bpf
from ..abi.uapi import AttachType, Cmd, FuncId, LinkType, MapType, ProgType, StatsType
from .fd import Fd

__all__ = ["bpf", "NR_BPF", "Fd", "Cmd", "MapType", "ProgType", "AttachType", "LinkType", "FuncId", "StatsType"]
