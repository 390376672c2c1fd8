"""Feature probes agree with bpftool's (libbpf's) on the running kernel."""

from __future__ import annotations

import json
import subprocess

import pytest

from pybpfload.syscall import features
from pybpfload.syscall import FuncId, MapType, ProgType

from .conftest import require_tool

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def probed() -> dict:
    tool = require_tool("bpftool")
    out = subprocess.run([tool, "feature", "probe", "kernel", "-j"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_prog_types_match_bpftool(probed: dict) -> None:
    compared = 0
    for key, have in probed["program_types"].items():
        name = key[len("have_") : -len("_prog_type")].upper()
        pt = ProgType[f"BPF_PROG_TYPE_{name}"]
        assert features.prog_type_supported(pt) == have, name
        compared += 1
    assert compared >= 30


def test_map_types_match_bpftool(probed: dict) -> None:
    renamed = {"CGROUP_STORAGE": "CGROUP_STORAGE_DEPRECATED", "PERCPU_CGROUP_STORAGE": "PERCPU_CGROUP_STORAGE_DEPRECATED"}
    compared = 0
    for key, have in probed["map_types"].items():
        name = key[len("have_") : -len("_map_type")].upper()
        mt = MapType[f"BPF_MAP_TYPE_{renamed.get(name, name)}"]
        assert features.map_type_supported(mt) == have, name
        compared += 1
    assert compared >= 30


@pytest.mark.parametrize("ptype", ["xdp", "kprobe", "socket_filter", "cgroup_sock_addr"])
def test_helpers_match_bpftool(probed: dict, ptype: str) -> None:
    listed = set(probed["helpers"][f"{ptype}_available_helpers"])
    pt = ProgType[f"BPF_PROG_TYPE_{ptype.upper()}"]
    ours = {f"bpf_{h.name[len('BPF_FUNC_'):]}" for h in FuncId if h.value and features.helper_supported(pt, h)}
    # bpftool 7.1 knows the helpers up to its own headers: compare on those
    # bpftool skips the helpers that write to dmesg unless asked for a "full" probe
    skipped = {"bpf_trace_printk", "bpf_trace_vprintk", "bpf_probe_write_user"}
    known = {f"bpf_{h.name[len('BPF_FUNC_'):]}" for h in FuncId if h.value <= 209} - skipped
    assert ours & known == listed & known
    assert len(listed) > 20


def test_loader_features() -> None:
    # 6.x kernels have all of these; the kernel matrix runs this on older ones too
    for probe in (features.has_prog_name, features.has_global_data, features.has_array_mmap, features.has_exp_attach_type):
        assert isinstance(probe(), bool)
    assert features.has_global_data() == features.map_type_supported(MapType.BPF_MAP_TYPE_ARRAY) and features.has_prog_name()
    features.reset_cache()
    assert features.has_array_mmap() in (True, False)
