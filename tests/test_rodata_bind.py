"""Every .rodata* map bound to every program, as libbpf does (issue 15).

Differential: the same object loaded by libbpf (bpftool prog loadall) and by
pybpfload; each program's maps (by name) must be the same.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from pybpfload import Map, Object
from pybpfload.syscall.features import has_prog_bind_map

from .conftest import fixture_path, require_tool
from .eventprogs import bpftool_loadall

pytestmark = pytest.mark.kernel

OBJ = "rodata_sections.bpf.o"


def _map_names(ids: List[int]) -> List[str]:
    names = []
    for i in ids:
        with Map.from_id(i) as m:
            names.append(m.info().name)
    return sorted(names)


def _libbpf_view(bpffs: Path) -> Dict[str, List[str]]:
    progs, _ = bpftool_loadall(OBJ, bpffs)
    tool = require_tool("bpftool")
    view = {}
    for pin in progs.iterdir():
        out = subprocess.run([tool, "prog", "show", "pinned", str(pin), "-j"], capture_output=True, text=True, check=True)
        info = json.loads(out.stdout)
        view[info["name"]] = _map_names(info.get("map_ids", []))
    return view


def test_every_rodata_map_bound_like_libbpf(bpffs: Path) -> None:
    theirs = _libbpf_view(bpffs)
    with Object.open(fixture_path(OBJ)) as obj:
        obj.load()
        ours = {name[:15]: _map_names(list(p.info().map_ids)) for name, p in obj.programs.items()}
        sections = sorted(ms.real_name for ms in obj.model.maps)
    assert sections == [".rodata", ".rodata.cfg", ".rodata.cst16", ".rodata.str1.1"]
    assert ours == theirs
    if has_prog_bind_map():
        # the program that references no global still holds all four rodata maps
        assert len(ours["uses_nothing"]) == 4, ours
