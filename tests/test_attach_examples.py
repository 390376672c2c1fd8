"""The attach examples run and print what they promise."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.kernel


def _run(script: str, *args: str) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_bcc_style_syscount() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "bcc_style_syscount.py"), "--count", "2", "--top", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\s+\S+\s+\d+$", line)]
    pids = {int(r[0]) for r in rows}
    assert proc.pid in pids  # the script's own system calls (reading the map) are counted
    assert all(int(r[-1]) > 0 for r in rows)


def test_xdp_veth_counter() -> None:
    out = _run("xdp_veth_counter.py", "--seconds", "2")
    counts = [int(m) for m in re.findall(r"packets seen by XDP on va: (\d+)", out)]
    assert len(counts) == 2 and counts[0] >= 10 and counts[1] - counts[0] >= 10
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "pbx" not in ns  # cleaned up
