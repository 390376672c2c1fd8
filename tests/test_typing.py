"""The package type-checks (the project ships py.typed: its hints are part of the API)."""

from __future__ import annotations

from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "pybpfload"


def test_pybpfload_type_checks(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api", reason="mypy is in the [test] extra")
    out, err, status = api.run(["--cache-dir", str(tmp_path), "--no-error-summary", str(PKG)])
    assert status == 0, out + err
