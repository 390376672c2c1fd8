"""perf_event_open(2) and the perf ioctls, through libc's syscall() like bpf(2).

Only what BPF needs: software events (PERF_COUNT_SW_BPF_OUTPUT for perf
buffers) and enabling / disabling an event.
"""

from __future__ import annotations

import ctypes
import fcntl
import os

from ..errors import NotSupportedError, SyscallError
from ._raw import get_errno, syscall
from .fd import Fd

__all__ = [
    "PerfEventAttr",
    "perf_event_open",
    "enable",
    "disable",
    "PERF_TYPE_SOFTWARE",
    "PERF_COUNT_SW_BPF_OUTPUT",
    "PERF_SAMPLE_RAW",
    "PERF_RECORD_LOST",
    "PERF_RECORD_SAMPLE",
]

_NR_PERF_EVENT_OPEN = {
    "x86_64": 298,
    "i386": 336,
    "i686": 336,
    "aarch64": 241,
    "arm64": 241,
    "armv7l": 364,
    "armv6l": 364,
    "riscv64": 241,
    "loongarch64": 241,
    "ppc64le": 319,
    "ppc64": 319,
    "s390x": 331,
    "mips64": 5292,
}
NR_PERF_EVENT_OPEN: int = _NR_PERF_EVENT_OPEN.get(os.uname().machine, -1)

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 1 << 3
# struct perf_event_attr flag bits (the bitfield after read_format)
ATTR_DISABLED = 1 << 0
ATTR_WATERMARK = 1 << 14

PERF_EVENT_IOC_ENABLE = 0x2400  # _IO('$', 0)
PERF_EVENT_IOC_DISABLE = 0x2401  # _IO('$', 1)

PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9

# struct perf_event_mmap_page: data_head / data_tail offsets
MMAP_DATA_HEAD = 1024
MMAP_DATA_TAIL = 1032


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr up to config2 (PERF_ATTR_SIZE_VER1, 72 bytes)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),  # union with sample_freq
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),  # disabled:1, inherit:1, ... watermark (bit 14) ...
        ("wakeup_events", ctypes.c_uint32),  # union with wakeup_watermark
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
        ("config2", ctypes.c_uint64),
    ]


def perf_event_open(attr: PerfEventAttr, pid: int, cpu: int, group_fd: int = -1, flags: int = PERF_FLAG_FD_CLOEXEC) -> Fd:
    """perf_event_open(2); the new fd is owned by the returned :class:`Fd`."""
    if NR_PERF_EVENT_OPEN < 0:
        raise NotSupportedError("perf_event_open(2)", f"unknown syscall number on {os.uname().machine}")
    if not attr.size:
        attr.size = ctypes.sizeof(attr)
    ret = syscall(
        NR_PERF_EVENT_OPEN, ctypes.byref(attr), ctypes.c_long(pid), ctypes.c_long(cpu), ctypes.c_long(group_fd), ctypes.c_ulong(flags)
    )
    if ret < 0:
        raise SyscallError(get_errno(), "perf_event_open", detail=f"cpu {cpu}")
    return Fd(ret)


def bpf_output_attr(wakeup_events: int = 1) -> PerfEventAttr:
    """The event behind a perf buffer: software BPF output, raw samples."""
    return PerfEventAttr(
        type=PERF_TYPE_SOFTWARE,
        config=PERF_COUNT_SW_BPF_OUTPUT,
        sample_period=1,
        sample_type=PERF_SAMPLE_RAW,
        wakeup_events=wakeup_events,
    )


def _ioctl(fd: int, request: int, what: str) -> None:
    try:
        fcntl.ioctl(fd, request, 0)
    except OSError as e:
        raise SyscallError(e.errno or 0, "ioctl", detail=what) from e


def enable(fd: int) -> None:
    """PERF_EVENT_IOC_ENABLE."""
    _ioctl(fd, PERF_EVENT_IOC_ENABLE, "PERF_EVENT_IOC_ENABLE")


def disable(fd: int) -> None:
    """PERF_EVENT_IOC_DISABLE."""
    _ioctl(fd, PERF_EVENT_IOC_DISABLE, "PERF_EVENT_IOC_DISABLE")
