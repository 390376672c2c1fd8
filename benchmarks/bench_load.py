#!/usr/bin/env python3
"""Open + load time per fixture: pybpfload next to libbpf, in one run.

    sudo python3 benchmarks/bench_load.py [--rounds 10] [FIXTURE ...]

- cold: a fresh process — for pybpfload two figures: "+import", from before
  ``import pybpfload`` to a loaded object, and "open+load", the same without
  the import (kernel BTF, feature probes and all in both; best of 3
  processes, with .pyc files); for libbpf the first open + load of its
  process.  The ratio is taken on open+load (libbpf's figure has no
  start-up either); benchmarks/bench_startup.py compares whole processes;
- warm: best of --rounds in one process (probes and kernel BTF cached).

The libbpf column needs clang/gcc and libbpf-dev; it is skipped otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import child_env, describe  # noqa: E402

DEFAULT = ["xdp_count", "global_data", "subprogs", "map_in_map", "sec_types", "ringbuf_emit", "kconfig_only", "core_task"]

COLD = (
    "import time, sys; t = time.perf_counter()\n"
    "import pybpfload\n"
    "from pybpfload.object import Object\n"
    "t1 = time.perf_counter()\n"
    "o = Object.open(sys.argv[1]); o.load()\n"
    "t2 = time.perf_counter()\n"
    "print((t2 - t) * 1000, (t2 - t1) * 1000); o.close()\n"
)


def build_harness() -> Optional[str]:
    cc = shutil.which("clang") or shutil.which("gcc")
    if cc is None or not Path("/usr/include/bpf/libbpf.h").exists():
        return None
    out = os.path.join(tempfile.mkdtemp(prefix="bench-load-"), "bench_load_libbpf")
    r = subprocess.run([cc, "-O2", str(ROOT / "benchmarks" / "bench_load_libbpf.c"), "-o", out, "-lbpf"], capture_output=True)
    return out if r.returncode == 0 else None


def libbpf_times(harness: str, path: Path, rounds: int) -> Optional[Tuple[float, float]]:
    r = subprocess.run([harness, str(path), str(rounds)], capture_output=True, text=True)
    if r.returncode:
        return None
    first, best = r.stdout.split()
    return float(first), float(best)


def ours(path: Path, rounds: int) -> Tuple[float, float, float]:
    # A user's process imports from .pyc files: let Python write them (the first run) and use them.
    env = child_env()
    cmd = [sys.executable, "-c", COLD, str(path)]
    subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    runs = [subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.split() for _ in range(3)]
    with_import = min(float(r[0]) for r in runs)
    cold = min(float(r[1]) for r in runs)
    from pybpfload import Object

    best = 1e18
    for _ in range(rounds):
        t = time.perf_counter()
        with Object.open(path) as o:
            o.load()
        best = min(best, (time.perf_counter() - t) * 1000)
    return with_import, cold, best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("fixtures", nargs="*")
    args = ap.parse_args()
    print(describe())
    harness = build_harness()
    print(f"{'object':14} {'+import':>8} {'ours cold':>10} {'libbpf cold':>12} {'ratio':>6} | {'ours warm':>10} {'libbpf warm':>12} {'ratio':>6}   (ms)")
    for name in args.fixtures or DEFAULT:
        path = ROOT / "fixtures" / f"{name}.bpf.o"
        if not path.exists():
            continue
        with_import, cold, warm = ours(path, args.rounds)
        lb = libbpf_times(harness, path, args.rounds) if harness else None
        if lb is None:
            print(f"{name:14} {with_import:8.1f} {cold:10.1f} {'-':>12} {'':>6} | {warm:10.2f} {'-':>12}")
        else:
            print(f"{name:14} {with_import:8.1f} {cold:10.1f} {lb[0]:12.1f} {cold / lb[0]:6.1f} | {warm:10.2f} {lb[1]:12.2f} {warm / lb[1]:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
