"""uprobes / uretprobes through the uprobe PMU (or legacy tracefs uprobe_events)."""

from __future__ import annotations

import ctypes
import os
import re
from typing import TYPE_CHECKING, Optional, Tuple

from ..errors import BPFError, NotSupportedError
from ..syscall import perf
from ..abi import uapi as t
from .base import hook, prog_fd_of
from .elfsym import find_binary, resolve_function
from .perf_event import PerfEventLink, attach_perf_fd
from .tracefs import add_probe_event, remove_probe_event
from .tracepoint import tracepoint_perf_attr

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["attach_uprobe", "pmu_type", "pmu_config_bit", "probe_perf_attr", "parse_uprobe_target"]

_PMU_DIR = "/sys/bus/event_source/devices"


def pmu_type(name: str) -> Optional[int]:
    """The perf type of dynamic PMU ``name`` ("uprobe", "kprobe"), None when absent."""
    try:
        with open(f"{_PMU_DIR}/{name}/type") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def pmu_config_bit(pmu: str, fmt: str, default: int) -> int:
    """The first bit of format field ``fmt`` ("retprobe": ``config:0``) of a PMU."""
    try:
        with open(f"{_PMU_DIR}/{pmu}/format/{fmt}") as f:
            m = re.match(r"config:(\d+)", f.read().strip())
    except OSError:
        return default
    return int(m.group(1)) if m else default


def probe_perf_attr(pmu: int, retprobe: bool, name_addr: int, offset: int, *, ret_bit: int = 0, ref_ctr_offset: int = 0, ref_ctr_shift: int = 32) -> perf.PerfEventAttr:
    """perf_event_attr of a kprobe/uprobe PMU event: config1 points at the function or path, config2 is the offset."""
    config = (1 << ret_bit) if retprobe else 0
    config |= ref_ctr_offset << ref_ctr_shift
    return perf.PerfEventAttr(type=pmu, config=config, config1=name_addr, config2=offset)


def parse_uprobe_target(target: str) -> Tuple[str, Optional[str], int]:
    """``binary:function[+offset]`` or ``binary:0xoffset`` (the part after SEC("uprobe/")) -> (binary, function, offset)."""
    m = re.fullmatch(r"(.+?):([A-Za-z_.][\w.@]*)?(?:\+?(0x[0-9a-fA-F]+|\d+))?", target)
    if m is None or (m.group(2) is None and m.group(3) is None):
        raise BPFError(f"uprobe target must be 'binary:function[+offset]' or 'binary:offset', got {target!r}")
    off = int(m.group(3), 0) if m.group(3) else 0
    return m.group(1), m.group(2), off


def _cpu_pid(pid: int) -> Tuple[int, int]:
    # all processes: pid -1 on CPU 0 (as libbpf); one process: that pid on any CPU
    return (-1, 0) if pid < 0 else (pid, -1)


@hook("uprobe", t.ProgType.BPF_PROG_TYPE_KPROBE)
def attach_uprobe(
    prog: "ProgramLike",
    binary: str,
    func: Optional[str] = None,
    offset: int = 0,
    *,
    retprobe: bool = False,
    pid: int = -1,
    cookie: int = 0,
    ref_ctr_offset: int = 0,
    legacy: bool = False,
) -> PerfEventLink:
    """Attach a uprobe (or uretprobe) program to ``func`` (+ ``offset``) of ``binary``.

    ``binary`` is a path, a library name (``"libc.so.6"``) or a program on
    PATH; without ``func``, ``offset`` is a file offset.  ``pid`` -1 traces
    every process, else only that one.  ``legacy`` uses tracefs
    uprobe_events instead of the uprobe PMU (used anyway when there is none).
    """
    prog_fd_of(prog)
    if func:
        loc = resolve_function(binary, func)
        path, file_off, what = loc.path, loc.offset + offset, f"{loc.path}:{func}+{offset:#x}"
    else:
        path, file_off = find_binary(binary), offset
        what = f"{path}:{offset:#x}"
    kind = "uretprobe" if retprobe else "uprobe"
    describe = {"perf_event_type": kind, "file_name": path, "offset": file_off}  # the name the kernel keeps
    pmu = None if legacy else pmu_type("uprobe")
    pid_arg, cpu = _cpu_pid(pid)
    if pmu is not None:
        cpath = ctypes.create_string_buffer(os.fsencode(path))
        attr = probe_perf_attr(
            pmu,
            retprobe,
            ctypes.addressof(cpath),
            file_off,
            ret_bit=pmu_config_bit("uprobe", "retprobe", 0),
            ref_ctr_offset=ref_ctr_offset,
            ref_ctr_shift=pmu_config_bit("uprobe", "ref_ctr_offset", 32),
        )
        pfd = perf.perf_event_open(attr, pid_arg, cpu)
        del cpath
        return attach_perf_fd(prog, pfd, cookie=cookie, kind=kind, target=what, describe=describe)
    if ref_ctr_offset:
        raise NotSupportedError("uprobe reference counters", "they need the uprobe PMU")
    group, event, tp_id = add_probe_event("uprobe", retprobe, f"{path}:{file_off:#x}")
    try:
        pfd = perf.perf_event_open(tracepoint_perf_attr(tp_id), pid_arg, cpu)
    except BaseException:
        remove_probe_event("uprobe", group, event)
        raise
    return attach_perf_fd(
        prog, pfd, cookie=cookie, kind=kind, target=what, cleanup=lambda: remove_probe_event("uprobe", group, event), describe=describe
    )


