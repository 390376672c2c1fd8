"""The pure parts of tools/realworld (corpus collection, map preparation): no network, no kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import fixture_path

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))

from realworld import corpus, sweep  # noqa: E402


def test_embedded_objects_are_found_whole() -> None:
    a = fixture_path("xdp_count.bpf.o").read_bytes()
    b = fixture_path("global_data.bpf.o").read_bytes()
    host_elf = Path(sys.executable).resolve().read_bytes()[:4096]  # an x86-64 ELF: not BPF
    blob = b"\0" * 13 + a + b"junk" + host_elf + b + b"\x7fELF\x02\x01\x01"  # truncated header at the end
    found = list(corpus.bpf_objects_in(blob))
    assert [data for _, data in found] == [a, b]
    assert [off for off, _ in found] == [13, 13 + len(a) + 4 + len(host_elf)]


def test_collect_writes_each_distinct_object_once(tmp_path: Path) -> None:
    if subprocess.run(["which", "dpkg-deb"], capture_output=True).returncode != 0:
        pytest.skip("dpkg-deb is not installed")
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: demo\nVersion: 1.0-1\nArchitecture: all\nMaintainer: x <x@y>\nDescription: d\n"
    )
    obj = fixture_path("xdp_count.bpf.o").read_bytes()
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "a.o").write_bytes(obj)
    (root / "usr" / "lib" / "tool").write_bytes(b"\x7fELF-not-bpf" + obj + b"tail")
    deb = tmp_path / "demo_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "-b", str(root), str(deb)], check=True, capture_output=True)
    entries = corpus.collect([deb], tmp_path / "out")
    assert len(entries) == 1  # the same bytes twice: kept once
    (e,) = entries
    assert e["package"] == "demo" and e["version"] == "1.0-1"
    assert (tmp_path / "out" / str(e["file"])).read_bytes() == obj


def test_prepared_maps_are_what_user_space_would_set() -> None:
    assert sweep.prepare_map("m", 1, 0, 8) == {"max_entries": 1024}
    assert sweep.prepare_map("events", sweep.MAP_PERF_EVENT_ARRAY, 0, 4) == {}
    assert sweep.prepare_map("rb", sweep.MAP_RINGBUF, 0, 0) == {"max_entries": 256 * 1024}
    assert sweep.prepare_map("stacks", sweep.MAP_STACK_TRACE, 10, 0) == {"value_size": 127 * 8}
    assert sweep.prepare_map("m", 1, 16, 8) == {}


def test_weak_kfunc_poison_compares_as_libbpf_1_1_writes_it() -> None:
    import struct

    def insn(code: int, dst: int, src: int, off: int, imm: int) -> bytes:
        return struct.pack("<BBhi", code, dst | src << 4, off, imm)

    ld_map_ours = insn(0x18, 1, 1, 0, 7) + insn(0, 0, 0, 0, 0)
    ld_map_theirs = insn(0x18, 1, 1, 0, 12) + insn(0, 0, 0, 0, 0)
    ours = ld_map_ours + insn(0x85, 0, 0, 0, sweep.POISON_CALL_KFUNC_BASE + 3)
    theirs = ld_map_theirs + insn(0x85, 0, 2, 0, 0)
    assert sweep._as_libbpf_1_1(ours) == sweep._as_libbpf_1_1(theirs)
    helper = ld_map_ours + insn(0x85, 0, 0, 0, 14)  # an ordinary helper call is not a poison
    assert sweep._as_libbpf_1_1(helper) != sweep._as_libbpf_1_1(theirs)
