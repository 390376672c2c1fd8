"""``python -m fuzz run|replay|make-corpus|stats`` (see README.md, "Fuzzing").

``run`` fuzzes each target in a child process of its own, one after the
other (never two at once), and exits 1 if any input crashed in a way
:mod:`fuzz.known` does not list — printing the saved input's path.
``replay`` runs saved inputs once each (the regression test's engine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from . import REGRESSIONS, ROOT, TARGETS


def _default_workdir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pybpfload-fuzz"


def _have_atheris() -> bool:
    try:
        import atheris  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def cmd_worker(a: argparse.Namespace) -> int:
    from . import engine

    workdir = Path(a.workdir)
    if a.engine == "atheris":
        engine.run_atheris(a.target, a.seconds, workdir, a.timeout, a.mem_mb, Path(a.stats))
    else:
        engine.run_blind(a.target, a.seconds, workdir, a.timeout, a.mem_mb, Path(a.stats), a.seed)
    return 0


def _libfuzzer_artifacts(target: str, workdir: Path, since: float) -> List[Path]:
    """Inputs libFuzzer itself kept (a C-level hang or a death), moved to the regressions."""
    out = []
    d = workdir / "artifacts" / target
    if d.is_dir():
        for p in sorted(d.iterdir()):
            if p.stat().st_mtime >= since:
                dest = REGRESSIONS / target / f"libfuzzer-{p.name}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(p.read_bytes())
                p.unlink()
                out.append(dest)
    return out


def _libfuzzer_final_stats(st: Dict[str, Any], log: Path) -> None:
    """libFuzzer's own final count (the worker's stats file is written every 2 s; libFuzzer exits without atexit)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    m = re.search(r"^Done (\d+) runs in (\d+) second", text, re.M)
    if m and int(m.group(1)) > st["execs"]:
        st["execs"] = int(m.group(1))
        st["seconds"] = max(st["seconds"], float(m.group(2)))


def _totals_path(workdir: Path) -> Path:
    return workdir / "totals.json"


def _add_totals(workdir: Path, st: Dict[str, Any]) -> Dict[str, Any]:
    p = _totals_path(workdir)
    totals: Dict[str, Any] = json.loads(p.read_text()) if p.exists() else {}
    t = totals.setdefault(st["target"], {"execs": 0, "seconds": 0.0, "crashes": 0, "known": 0})
    t["execs"] += st["execs"]
    t["seconds"] += st["seconds"]
    t["crashes"] += sum(1 for c in st["crashes"] if not c["known"])
    t["known"] += sum(1 for c in st["crashes"] if c["known"])
    p.write_text(json.dumps(totals, indent=1, sort_keys=True))
    return t


def cmd_run(a: argparse.Namespace) -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows up in CI logs and files as it comes
    targets = TARGETS if a.target == "all" else tuple(a.target.split(","))
    for t in targets:
        if t not in TARGETS:
            print(f"unknown target {t!r}; targets: {', '.join(TARGETS)}", file=sys.stderr)
            return 2
    workdir = Path(a.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    eng = a.engine or ("atheris" if _have_atheris() else "blind")
    if eng == "blind" and not a.engine:
        print("fuzz: atheris not installed (pip install -e '.[fuzz]'): blind mutation, no coverage feedback")
    failed = False
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for t in targets:
        stats = workdir / f"stats-{t}.json"
        log = workdir / f"log-{t}.txt"
        stats.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "fuzz", "worker", "--target", t, "--seconds", str(a.seconds), "--workdir", str(workdir),
               "--timeout", str(a.timeout), "--mem-mb", str(a.mem_mb), "--stats", str(stats), "--engine", eng, "--seed", str(a.seed)]
        started = time.time()
        with open(log, "wb") as lf:
            try:
                rc = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, cwd=ROOT, env=env, timeout=a.seconds + 300).returncode
            except subprocess.TimeoutExpired:
                rc = -1
        st: Dict[str, Any] = json.loads(stats.read_text()) if stats.exists() else {"target": t, "execs": 0, "seconds": 0.0, "crashes": []}
        extra = _libfuzzer_artifacts(t, workdir, started)
        _libfuzzer_final_stats(st, log)
        secs = st["seconds"] or 1e-9
        new = [c for c in st["crashes"] if not c["known"]]
        known = [c for c in st["crashes"] if c["known"]]
        print(f"{t:8s} {st['execs']:9d} inputs in {st['seconds']:6.1f} s ({st['execs'] / secs:7.0f}/s, engine {eng}), "
              f"{st.get('error', 0)} refused with BPFError, {len(new)} new crash(es), {len(known)} known")
        for c in known:
            print(f"  known bug {c['known']}: {c['summary']}\n    input: {c['path']}")
        for c in new:
            print(f"  NEW CRASH: {c['summary']}\n    input: {c['path']}")
        for p in extra:
            print(f"  NEW CRASH (libFuzzer: hang in C code, memory or a fatal signal): input: {p}")
        if rc != 0 and not extra:
            print(f"  worker exited with status {rc}; last lines of {log}:")
            print("\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        if new or extra or rc != 0:
            failed = True
        tot = _add_totals(workdir, st)
        print(f"  all runs in {workdir}: {tot['execs']} inputs, {tot['seconds'] / 60:.1f} min")
    return 1 if failed else 0


def _target_of(path: Path) -> str:
    return path.parent.name


def replay(paths: Sequence[Path], timeout: float, mem_mb: int) -> List[Dict[str, Any]]:
    from . import harness
    from .targets import target

    for t in TARGETS:
        target(t)  # set-up (fixtures, the vmlinux piece) before the memory cap
    harness.limit_memory(mem_mb)
    out = []
    for p in paths:
        t = _target_of(p)
        if t not in TARGETS:
            o = harness.Outcome("crash", "UnknownTarget", f"{p}: not under a directory named after a target ({', '.join(TARGETS)})")
        else:
            o = harness.run_one(target(t), p.read_bytes(), timeout)
        out.append(
            {
                "path": str(p),
                "target": t,
                "status": o.status,
                "exc_type": o.exc_type,
                "signature": o.signature if o.status == "crash" else "",
                "known": o.known.key if o.known is not None else None,
                "summary": o.summary() if o.status != "ok" else "",
                "traceback": o.traceback,
                "seconds": o.seconds,
            }
        )
    return out


def cmd_replay(a: argparse.Namespace) -> int:
    from .harness import regression_files

    paths = [Path(p).resolve() for p in a.paths] or [p for _, p in regression_files()]
    results = replay(paths, a.timeout, a.mem_mb)
    bad = 0
    for r in results:
        if a.json:
            print(json.dumps(r), flush=True)
            continue
        state = r["status"] if r["status"] != "crash" else ("known bug " + r["known"] if r["known"] else "CRASH")
        print(f"{state:28s} {r['seconds']:6.3f}s {r['path']}  {r['summary']}")
        if r["status"] == "crash" and not r["known"]:
            print(r["traceback"])
    bad = sum(1 for r in results if r["status"] == "crash" and not r["known"])
    return 1 if bad else 0


def cmd_stats(a: argparse.Namespace) -> int:
    p = _totals_path(Path(a.workdir))
    if not p.exists():
        print(f"no runs recorded in {a.workdir}")
        return 0
    for t, v in json.loads(p.read_text()).items():
        rate = v["execs"] / v["seconds"] if v["seconds"] else 0
        print(f"{t:8s} {v['execs']:10d} inputs, {v['seconds'] / 60:7.1f} min ({rate:.0f}/s), {v['crashes']} new crash(es), {v['known']} known")
    return 0


def cmd_make_corpus(a: argparse.Namespace) -> int:
    from .make_corpus import build

    build(a.vmlinux)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--timeout", type=float, default=2.0, help="CPU seconds allowed per input (default 2)")
        p.add_argument("--mem-mb", type=int, default=512, help="memory allowed on top of the start-up footprint (default 512 MiB)")

    p = sub.add_parser("run", help="fuzz targets for a while")
    p.add_argument("--target", default="all", help=f"all, or a comma-separated list of: {', '.join(TARGETS)}")
    p.add_argument("--seconds", type=int, default=30, help="per target (default 30)")
    p.add_argument("--workdir", default=str(_default_workdir()), help="working corpus, logs, totals (default ~/.cache/pybpfload-fuzz)")
    p.add_argument("--engine", choices=("atheris", "blind"), help="default: atheris when installed")
    p.add_argument("--seed", type=int, default=0, help="blind engine's random seed (0: random)")
    common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("worker", help=argparse.SUPPRESS)
    p.add_argument("--target", required=True)
    p.add_argument("--seconds", type=int, required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--stats", required=True)
    p.add_argument("--engine", default="atheris")
    p.add_argument("--seed", type=int, default=0)
    common(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("replay", help="run saved inputs once (default: every regression file)")
    p.add_argument("paths", nargs="*", help="inputs, under a directory named after their target")
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    common(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("stats", help="totals of every run in the work directory")
    p.add_argument("--workdir", default=str(_default_workdir()))
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("make-corpus", help="rebuild fuzz/corpus and fuzz/data from fixtures and kernel BTF")
    p.add_argument("--vmlinux", default="/sys/kernel/btf/vmlinux")
    p.set_defaults(func=cmd_make_corpus)

    a = ap.parse_args(argv)
    return int(a.func(a))


if __name__ == "__main__":
    raise SystemExit(main())
