"""`pybpfload map dump` of maps with BTF types, against `bpftool map dump -j` (the oracle).

The whole JSON must be bpftool's: the raw bytes as "0x.." lists and the
"formatted" key and value (structs, enums by name, char arrays as strings,
bitfields as hex, anonymous unions under "", per-CPU values per CPU).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pybpfload.cli.main import run
from pybpfload.object import Object

from .conftest import fixture_path, require_tool

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("fixture", ["typed_maps.bpf.o", "typed_maps.clang19.bpf.o"])
@pytest.mark.parametrize("name", ["flows", "percpu_stats", "plain"])
def test_map_dump_json_is_bpftools(bpffs: Path, capsys: pytest.CaptureFixture, fixture: str, name: str) -> None:
    tool = require_tool("bpftool")
    with Object.open(fixture_path(fixture)) as obj:
        obj.load()
        obj.programs["fill"].test_run(bytes(64))
        obj.maps["plain"][3] = (-2).to_bytes(8, "little", signed=True)
        pin = bpffs / name
        obj.maps[name].pin(str(pin))
        assert run(["map", "dump", str(pin), "--json"]) == 0
        ours = json.loads(capsys.readouterr().out)
        theirs = json.loads(
            subprocess.run([tool, "map", "dump", "pinned", str(pin), "-j"], capture_output=True, text=True, check=True).stdout
        )
        assert ours == theirs
        assert all("formatted" in e for e in ours)
        assert run(["map", "dump", str(pin)]) == 0
        text = capsys.readouterr().out
        if name == "flows":
            assert '"comm": "pybpfload"' in text and '"state": "ST_RUNNING"' in text and "Found 1 element" in text
        obj.maps[name].unpin()
