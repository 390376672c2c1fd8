"""Every input the fuzzer ever crashed on (fuzz/regressions/<target>/), replayed.

Each must now either succeed or raise a BPFError, within the fuzzer's
bound (2 s of CPU, 512 MiB of memory on top of the start-up footprint),
and nothing else: no other exception, no RecursionError or MemoryError.
Inputs of bugs listed in ``fuzz/known.py`` (open, being fixed elsewhere)
are expected failures until their entry is removed.  The seed corpus is
replayed too: every seed must pass.

The inputs run in one child process (``python -m fuzz replay --json``) so
that a memory cap, a runaway input or a crash of the interpreter cannot
take the test session with it.  No bpf(2) call is made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the fuzz package lives at the top of the repository
    sys.path.insert(0, str(ROOT))

from fuzz import SEEDS, TARGETS, harness, known  # noqa: E402

REGRESSIONS = harness.regression_files()
SEED_FILES = [(t, p) for t in TARGETS for p in sorted(SEEDS[t].iterdir())]


def _replay(paths: List[Path]) -> Dict[str, Dict[str, Any]]:
    if not paths:
        return {}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz", "replay", "--json", *map(str, paths)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120 + 5 * len(paths),
    )
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            out[r["path"]] = r
    if len(out) != len(paths):
        out["__died__"] = {"stderr": proc.stderr[-4000:], "returncode": proc.returncode}
    return out


@pytest.fixture(scope="module")
def replayed() -> Dict[str, Dict[str, Any]]:
    return _replay([p for _, p in REGRESSIONS] + [p for _, p in SEED_FILES])


def _check(replayed: Dict[str, Dict[str, Any]], path: Path) -> None:
    r = replayed.get(str(path))
    if r is None:
        died = replayed.get("__died__", {})
        pytest.fail(f"the replay process stopped before {path} (status {died.get('returncode')}):\n{died.get('stderr', '')}")
    if r["status"] == "crash":
        if r["known"]:
            bug = next(k for k in known.KNOWN if k.key == r["known"])
            pytest.xfail(f"known bug {bug.key}: {bug.reason}")
        pytest.fail(f"{path}: {r['summary']}\n{r['traceback']}")
    assert r["status"] in ("ok", "error")


@pytest.mark.parametrize("path", [p for _, p in REGRESSIONS], ids=[f"{t}/{p.name}" for t, p in REGRESSIONS])
def test_regression(replayed: Dict[str, Dict[str, Any]], path: Path) -> None:
    _check(replayed, path)


@pytest.mark.parametrize("target", TARGETS)
def test_seed_corpus(replayed: Dict[str, Dict[str, Any]], target: str) -> None:
    paths = [p for t, p in SEED_FILES if t == target]
    assert paths, f"no seeds for {target}"
    for p in paths:
        _check(replayed, p)


# ------------------------------------------------------------------ the harness itself
def _bpf_error(data: bytes) -> None:
    from pybpfload.errors import BTFError

    raise BTFError("refused")


def _value_error(data: bytes) -> None:
    raise ValueError("not a BPFError")


def _spin(data: bytes) -> None:
    while True:
        pass


def _recurse(data: bytes) -> None:
    _recurse(data)


def test_harness_classifies_outcomes() -> None:
    assert harness.run_one(lambda d: None, b"").status == "ok"
    o = harness.run_one(_bpf_error, b"")
    assert (o.status, o.exc_type) == ("error", "BTFError")
    o = harness.run_one(_value_error, b"")
    assert (o.status, o.exc_type) == ("crash", "ValueError") and o.known is None
    assert o.signature.startswith("ValueError@tests/test_fuzz_regressions.py:_value_error")
    o = harness.run_one(_recurse, b"")
    assert (o.status, o.exc_type) == ("crash", "RecursionError")


def test_harness_bounds_time() -> None:
    o = harness.run_one(_spin, b"", timeout=0.3)
    assert (o.status, o.exc_type) == ("crash", "Hang")
    assert o.seconds < 10


def test_known_bugs_match_by_frame() -> None:
    bug = known.KnownBug("k", "a bug", ("RecursionError", "Hang"), ("pybpfload/btf/query.py", "pybpfload/btf/cdump.py:_order_type"))
    frames = (("fuzz/targets.py", "fuzz_btf"), ("pybpfload/btf/query.py", "describe"))
    assert bug.matches("RecursionError", frames)
    assert not bug.matches("ValueError", frames)
    assert bug.matches("Hang", (("pybpfload/btf/cdump.py", "_order_type"),))
    assert not bug.matches("Hang", (("pybpfload/btf/cdump.py", "dump_all"),))
    assert known.match("MemoryError", (("pybpfload/object.py", "_make_map"),)) is None  # fixed: no known bugs left


def test_crashes_saved_once_per_signature(tmp_path: Path) -> None:
    o = harness.run_one(_value_error, b"")
    p1, new1 = harness.save_crash("btf", b"one", o, tmp_path)
    p2, new2 = harness.save_crash("btf", b"two", o, tmp_path)
    assert new1 and not new2 and p1 == p2 and p1.read_bytes() == b"one"
    assert p1.with_name(p1.name + ".trace").read_text().startswith("target: btf")
    assert harness.regression_files(tmp_path) == [("btf", p1)]
