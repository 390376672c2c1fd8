"""The object model against what the kernel reports after libbpf loads the same object.

``bpftool prog loadall OBJ DIR pinmaps MAPDIR`` (Debian's bpftool 7.1, libbpf
1.1) loads every program and map on a private bpffs; ``bpftool prog show
pinned`` / ``map show pinned`` then report names, types, sizes and flags,
which must match the unloaded model.  Objects libbpf 1.1 or this kernel
cannot load are checked elsewhere (test_elf_model.py) against their sources.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest

from pybpfload.errors import BPFError
from pybpfload.object import Object
from pybpfload.syscall import MapType, ProgType

from .conftest import fixture_path, require_tool

pytestmark = [pytest.mark.kernel, pytest.mark.oracle]

LOADABLE = ["xdp_count.bpf.o", "sec_types.bpf.o", "global_data.bpf.o", "subprogs.bpf.o", "map_in_map.bpf.o"]
BPF_F_MMAPABLE = 1 << 10
GPL_COMPATIBLE = {"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"}


def _show(bpftool: str, what: str, path: Path) -> Dict[str, Any]:
    out = subprocess.run([bpftool, what, "show", "pinned", str(path), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _type_name(enum: Any, prefix: str, value: int) -> str:
    return enum(value).name[len(prefix) :].lower()


@pytest.mark.parametrize("fixture", LOADABLE)
def test_model_agrees_with_loaded_object(fixture: str, bpffs: Path) -> None:
    bpftool = require_tool("bpftool")
    path = fixture_path(fixture)
    progdir, mapdir = bpffs / "progs", bpffs / "maps"
    mapdir.mkdir()
    res = subprocess.run(
        [bpftool, "prog", "loadall", str(path), str(progdir), "pinmaps", str(mapdir)], capture_output=True, text=True
    )
    if res.returncode != 0:
        # libbpf cannot load it on this kernel (bloom filters, xdp.frags, bpf_loop are newer than 5.10): nor can we
        with Object.open(path) as ours:
            with pytest.raises(BPFError):
                ours.load()
        return
    obj = Object.open(path)

    progs = [p for p in obj.programs.values() if p.autoload]
    assert sorted(f.name for f in progdir.iterdir()) == sorted(p.name for p in progs)
    for p in progs:
        info = _show(bpftool, "prog", progdir / p.name)
        # the kernel keeps 15 characters; bpftool restores longer names from BTF
        assert info["name"] == p.name or (len(p.name) > 15 and info["name"] == p.name[:15])
        assert info["type"] == _type_name(ProgType, "BPF_PROG_TYPE_", p.type), p.name
        assert info["gpl_compatible"] == (obj.license in GPL_COMPATIBLE)

    pinned = {f.name: f for f in mapdir.iterdir()}
    assert len(pinned) == len(obj.maps)
    for name, m in obj.maps.items():
        spec = obj.map_spec(name)
        assert spec is not None
        kname = spec.name_for_kernel
        info = _show(bpftool, "map", pinned[name.replace(".", "_")])
        assert info["name"] == kname
        assert info["type"] == _type_name(MapType, "BPF_MAP_TYPE_", m.type)
        assert info["bytes_key"] == m.key_size
        assert info["bytes_value"] == m.value_size
        assert info["max_entries"] == m.max_entries
        flags = info["flags"]
        if spec.internal:
            # bpftool 7.1 embeds an older libbpf that makes every global data map
            # mmapable; libbpf 1.1.2 (test_elf_oracle) and pybpfload only when
            # a non-static variable is in it
            flags &= ~BPF_F_MMAPABLE
            assert flags == m.flags & ~BPF_F_MMAPABLE
        else:
            assert flags == m.flags
