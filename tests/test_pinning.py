"""Pinning maps, programs and whole objects (spec sections 8, 9, 10), and pin-by-name reuse."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pybpfload as bpf
from pybpfload import Object
from pybpfload.errors import BPFError, PinError, StateError

from .conftest import FIXTURES, open_fds
from .kernel_adapt import has_bpf_loop

pytestmark = pytest.mark.kernel

XDP_COUNT = FIXTURES / "xdp_count.bpf.o"
PINNING = FIXTURES / "pinning.bpf.o"


def _files(d: Path) -> set:
    """Everything under d, without the kernel's own maps.debug / progs.debug."""
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.name not in ("maps.debug", "progs.debug")}


def test_spec_demo_pin_maps(bpffs: Path) -> None:
    """Section 8: bpf_object__pin_maps / unpin_maps with a directory."""
    d = bpffs / "map_fd"
    with Object.open(XDP_COUNT) as obj:
        obj.load()
        obj.pin_maps(str(d))
        assert _files(bpffs) == {"map_fd", "map_fd/pkt_count"}
        with bpf.Map.from_pin(str(d / "pkt_count")) as again:
            assert again.info().id == obj.maps["pkt_count"].info().id
        obj.unpin_maps(str(d))
        assert _files(bpffs) == {"map_fd"}


def test_spec_demo_pin_programs(bpffs: Path) -> None:
    """Section 9: bpf_object__pin_programs / unpin_programs."""
    d = bpffs / "progs"
    with Object.open(FIXTURES / "subprogs.bpf.o") as obj:
        obj.programs["xdp_one"].autoload = has_bpf_loop()  # bpf_loop: 5.17+
        obj.load()
        obj.pin_programs(str(d))
        assert _files(d) == {n for n, p in obj.programs.items() if p.loaded}
        with bpf.Program.from_pin(str(d / "xdp_two")) as p:
            assert p.info().tag == obj.programs["xdp_two"].info().tag
        obj.unpin_programs(str(d))
        assert _files(d) == set()


def test_spec_demo_pin_object(bpffs: Path) -> None:
    """Section 10: bpf_object__pin pins maps and programs, bpf_object__unpin removes both."""
    d = bpffs / "obj"
    with Object.open(XDP_COUNT) as obj:
        obj.load()
        obj.pin(str(d))
        assert _files(d) == {"pkt_count", "xdp_count"}
        obj.unpin(str(d))
        assert _files(d) == set()


def test_internal_map_names_pin_without_periods(bpffs: Path) -> None:
    with Object.open(FIXTURES / "global_data.bpf.o") as obj:
        obj.load()
        obj.pin_maps(str(bpffs))
        names = _files(bpffs)
        assert all("." not in n for n in names)
        assert {n.replace(".", "_") for n in obj.maps} == names
        obj.unpin_maps(str(bpffs))
        assert _files(bpffs) == set()


def test_value_written_in_one_process_is_read_in_another(bpffs: Path) -> None:
    with Object.open(XDP_COUNT) as obj:
        obj.load()
        obj.programs["xdp_count"].test_run(b"\0" * 64, repeat=7)
        obj.pin_maps(str(bpffs))
        code = (
            "import sys; from pybpfload import Map\n"
            "m = Map.from_pin(sys.argv[1]); print(m[0]); m[0] = 1000; m.close()  # typed by the kernel's BTF\n"
        )
        out = subprocess.run([sys.executable, "-c", code, str(bpffs / "pkt_count")], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "7"
        assert obj.maps["pkt_count"][0] == 1000
        obj.unpin_maps(str(bpffs))


def test_pin_by_name_reuse_keeps_data(bpffs: Path) -> None:
    root = str(bpffs / "root")
    with Object.open(PINNING, pin_root_path=root) as first:
        first.load()
        assert first.maps["pinned_hash"].pinned_at == f"{root}/pinned_hash"
        assert not first.maps["not_pinned"].pinned_at
        first.maps["pinned_hash"][1] = 11
        first_id = first.maps["pinned_hash"].info().id
    assert _files(bpffs) == {"root", "root/pinned_hash"}  # outlives the object
    with Object.open(PINNING, pin_root_path=root) as second:
        second.load()
        m = second.maps["pinned_hash"]
        assert m.info().id == first_id
        assert m[1] == 11
        m.unpin()
    assert _files(bpffs) == {"root"}


def test_incompatible_pinned_map_fails_and_leaves_nothing(bpffs: Path) -> None:
    root = str(bpffs / "root")
    with Object.open(PINNING, pin_root_path=root) as first:
        first.load()
    before = open_fds()
    with Object.open(PINNING, pin_root_path=root) as second:
        second.maps["pinned_hash"].max_entries = 64
        with pytest.raises(PinError) as ei:
            second.load()
        assert "max_entries 32 != 64" in str(ei.value) and "pinned_hash" in str(ei.value)
        assert not any(m.created for m in second.maps.values())
    assert open_fds() == before
    assert _files(bpffs) == {"root", "root/pinned_hash"}
    os.unlink(f"{root}/pinned_hash")


def test_failed_load_removes_the_pins_it_made(bpffs: Path) -> None:
    root = bpffs / "root"
    data = PINNING.read_bytes()
    with Object.open_mem(data, pin_root_path=str(root)) as obj:
        # the map is created and pinned before the program fails
        obj.programs["pin_user"].insns = b"\x95" + bytes(7)  # exit without setting r0: the verifier refuses it
        with pytest.raises(BPFError):
            obj.load()
    assert not (root / "pinned_hash").exists()


def test_hostile_map_name_cannot_escape(bpffs: Path) -> None:
    root = bpffs / "a" / "b"
    data = PINNING.read_bytes().replace(b"pinned_hash", b"../../evil_")
    with pytest.raises(PinError) as ei:
        Object.open_mem(data, pin_root_path=str(root))
    assert "../../evil_" in str(ei.value)
    # and through pin_maps with a directory: a name with '/' is refused as well
    with Object.open(XDP_COUNT) as obj:
        obj.load()
        m = obj.maps["pkt_count"]
        object.__setattr__(m, "name", "../escape")
        obj._maps = {"../escape": m}
        with pytest.raises(PinError):
            obj.pin_maps(str(bpffs / "x"))
    assert not (bpffs / "escape").exists() and _files(bpffs) <= {"x"}


def test_pin_maps_rolls_back_half_way(bpffs: Path) -> None:
    with Object.open(FIXTURES / "map_in_map.bpf.o") as obj:
        obj.load()
        names = list(obj.maps)
        # make the pin of the third map fail: something already sits at its path
        (bpffs / names[2].replace(".", "_")).mkdir()
        with pytest.raises(PinError) as ei:
            obj.pin_maps(str(bpffs))
        assert ei.value.errno == errno.EEXIST
        assert _files(bpffs) == {names[2]}
        assert not any(m.pinned_at for m in obj.maps.values())


def test_pin_path_rules(bpffs: Path, tmp_path: Path) -> None:
    with Object.open(XDP_COUNT) as obj:
        with pytest.raises(StateError, match="before load"):
            obj.pin_maps(str(bpffs))
        obj.load()
        with pytest.raises(PinError) as ei:
            obj.pin_maps(str(tmp_path))
        assert str(tmp_path) in str(ei.value) and "bpffs" in str(ei.value)
        m = obj.maps["pkt_count"]
        m.pin(str(bpffs / "p"))
        m.pin(str(bpffs / "p"))  # again at the same path: no-op
        with pytest.raises(PinError, match="already has pin path"):
            m.pin(str(bpffs / "q"))
        obj.pin_maps()  # no directory: each map at its own pin_path
        obj.unpin_maps()
        assert _files(bpffs) == set()
    with bpf.Map.create(bpf.MapType.BPF_MAP_TYPE_ARRAY, 4, 4, 1) as fresh:
        with pytest.raises(PinError) as ei:
            fresh.pin(str(bpffs / ("n" * 300)))  # longer than NAME_MAX
        assert ei.value.errno == errno.ENAMETOOLONG
