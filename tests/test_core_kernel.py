"""CO-RE against the running kernel: task_struct read on a raw tracepoint, enum64 values, module fallback."""

from __future__ import annotations

import os
import struct
from typing import Optional

import pytest

from pybpfload import Object
from pybpfload.btf import types as T
from pybpfload.btf.vmlinux import vmlinux_spec
from pybpfload.syscall import commands

from .conftest import FIXTURES

pytestmark = pytest.mark.kernel

# struct task_result in core_task.bpf.c
RESULT = struct.Struct("<Qiiii16sQQQQQQQQQ")


def _enum_value(name: str, enumerator: str, default: Optional[int] = None) -> int:
    """The kernel's value of ``name::enumerator``; ``default`` when this kernel lacks the enumerator."""
    spec = vmlinux_spec()
    for tid in spec.find_ids(name):
        t = spec.type(tid)
        if isinstance(t, T.ENUMS):
            found = [v.value for v in t.values if v.name == enumerator]
            if found:
                value = found[0]
                if isinstance(t, T.Enum):  # struct btf_enum's val is an s32: CO-RE sign-extends it (as libbpf)
                    value = (value & 0xFFFFFFFF) - ((value & 0x80000000) << 1)
                return value & (2**64 - 1)
    if default is not None:
        return default
    raise AssertionError(f"{name}::{enumerator}")


def test_task_struct_fields_read_on_a_tracepoint() -> None:
    with Object.open(FIXTURES / "core_task.bpf.o") as obj:
        names = {obj.map_spec(n).real_name: n for n in obj.maps}  # type: ignore[union-attr]
        data = obj.maps[names[".data"]]
        data.initial_value = struct.pack("<i", os.getpid())
        obj.load()
        prog = obj.programs["core_task"]
        with commands.raw_tracepoint_open("sys_enter", prog.fileno()):
            for _ in range(3):
                os.getppid()  # any system call of this process
        bss = obj.maps[names[".bss"]]
        r = RESULT.unpack_from(bss[0])
    hits, pid, tgid, ptgid, leader, comm, fexists, mexists, comm_size, task_size, task_id, hv, cmax, flush, ptgid_enum = r
    assert hits >= 3
    with open("/proc/self/stat") as f:
        stat_comm = f.read().split("(", 1)[1].rsplit(")", 1)[0]
    assert (tgid, ptgid, leader) == (os.getpid(), os.getppid(), os.getpid())
    assert pid > 0
    assert comm.rstrip(b"\0").decode() == stat_comm[:15]
    spec = vmlinux_spec()
    ts = spec.find_id("task_struct", T.Kind.STRUCT)
    assert (fexists, mexists) == (1, 0)
    assert comm_size == 16 and task_size == spec.size(ts) and task_id == ts
    # enum vs enum64: the kernel's 64-bit values reach the program whole
    assert hv == _enum_value("perf_callchain_context", "PERF_CONTEXT_HV")
    assert cmax == _enum_value("perf_callchain_context", "PERF_CONTEXT_MAX")
    # guarded with bpf_core_enum_value_exists: 0 where the kernel lacks it (6.1), else 1 << 38 (an ENUM64 value)
    assert flush == _enum_value("ib_uverbs_device_cap_flags", "IB_UVERBS_DEVICE_FLUSH_GLOBAL", 0) in (0, 1 << 38)
    assert ptgid_enum == _enum_value("pid_type", "PIDTYPE_TGID")
