"""`pybpfload gen skeleton`: a typed module with the ELF embedded, mypy-clean, that works."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from pybpfload.cli.main import run

from .conftest import fixture_path


def _generate(tmp_path: Path, fixture: str, modname: str) -> Any:
    out = tmp_path / f"{modname}.py"
    assert run(["gen", "skeleton", str(fixture_path(fixture)), "-o", str(out)]) == 0
    spec = importlib.util.spec_from_file_location(modname, out)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("fixture", ["global_data.bpf.o", "typed_maps.bpf.o", "btf_kinds.bpf.o"])
def test_skeleton_type_checks(tmp_path: Path, fixture: str) -> None:
    api = pytest.importorskip("mypy.api", reason="mypy is in the [test] extra")
    _generate(tmp_path, fixture, "skel_" + fixture.split(".")[0])
    out, err, status = api.run(
        [
            "--strict",
            "--follow-imports=silent",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(tmp_path / f"skel_{fixture.split('.')[0]}.py"),
        ]
    )
    assert status == 0, out + err


def test_skeleton_before_load(tmp_path: Path) -> None:
    mod = _generate(tmp_path, "global_data.bpf.o", "skel_gd_open")
    with mod.Skeleton.open() as s:
        assert s.rodata.threshold == 100 and s.data_custom.custom_val == 42
        s.rodata.threshold = 5
        assert s.obj.rodata.threshold == 5
        assert s.progs.use_globals.name == "use_globals"


@pytest.mark.kernel
def test_skeleton_runs(tmp_path: Path) -> None:
    mod = _generate(tmp_path, "typed_maps.bpf.o", "skel_tm_run")
    with mod.Skeleton.open() as s:
        s.rodata.tail_len = 2
        s.load()
        s.progs.fill.test_run(bytes(64))
        (v,) = s.maps.flows.values()
        assert v.comm == b"pybpfload"  # typed by default in a skeleton
        assert s.rodata.tail_len == 2
