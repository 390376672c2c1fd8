"""The typed-API examples run: examples/typed_execsnoop.py sees an exec we make,
examples/typed_syslat.py prints a histogram of our own system calls."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.kernel


def test_typed_execsnoop_sees_an_exec() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "typed_execsnoop.py"), "--uid", "0", "--duration", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    header = proc.stdout.readline()  # printed once attached
    assert "COMM" in header
    for _ in range(3):
        subprocess.run(["/bin/true"], check=True)
        time.sleep(0.1)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert any(line.split()[-1] == "true" for line in lines[:-1] if line.split()), out
    seen = int(lines[-1].split()[0])
    assert seen >= 3 and lines[-1].endswith("0 dropped")


def test_typed_syslat_prints_a_histogram() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "typed_syslat.py"),
            "--per-process",
            "--pid",
            "0",
            "--interval",
            "0.5",
            "--count",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "usecs : count" in out.stdout and "comm = " in out.stdout and "syscalls, average" in out.stdout
