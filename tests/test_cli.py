"""The pybpfload command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfload import Map, MapType as MT
from pybpfload.cli import run

from .conftest import require_tool


@pytest.mark.kernel
def test_map_list_and_dump_agree_with_bpftool(bpffs: Path, capsys: pytest.CaptureFixture) -> None:
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 4, 8, name="cli_map") as m:
        m[1] = 100
        m[2] = 200
        info = m.info()
        assert run(["map", "list", "--json"]) == 0
        rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows[info.id]["name"] == "cli_map" and rows[info.id]["type"] == "hash"
        m.pin(str(bpffs / "m"))
        assert run(["map", "dump", str(bpffs / "m"), "--json"]) == 0
        ours = {e["key"]: e["value"] for e in json.loads(capsys.readouterr().out)}
        tool = require_tool("bpftool")
        theirs = json.loads(subprocess.run([tool, "map", "dump", "id", str(info.id), "-j"], capture_output=True, text=True, check=True).stdout)
        assert ours == {"".join(x[2:] for x in e["key"]): "".join(x[2:] for x in e["value"]) for e in theirs}
        assert run(["map", "dump", str(info.id)]) == 0
        text = capsys.readouterr().out
        assert "key: 01 00 00 00  value: 64 00 00 00" in text and "Found 2 elements" in text
        m.unpin()


@pytest.mark.kernel
def test_prog_list_json(capsys: pytest.CaptureFixture) -> None:
    assert run(["prog", "list", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


def test_errors_are_one_line_and_nonzero() -> None:
    out = subprocess.run([sys.executable, "-m", "pybpfload", "map", "dump", "/nonexistent/pin"], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.startswith("pybpfload: error:") and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_no_command_prints_help() -> None:
    out = subprocess.run([sys.executable, "-m", "pybpfload"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage" in out.stderr
