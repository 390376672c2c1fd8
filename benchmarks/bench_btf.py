#!/usr/bin/env python3
"""Opening kernel BTF and finding a type: pybpfload cold, with its index cache, and libbpf.

    python3 benchmarks/bench_btf.py [--runs N] [--btf PATH] [--name task_struct]

Every pybpfload figure is the median over fresh processes (each one imports
pybpfload.btf and ctypes first — as any process using pybpfload.syscall has —
then times ``Spec.from_file(PATH)`` + ``find(NAME, Struct)``).  "cold" uses an
empty cache directory each time, "cached" one the first run filled.  Peak
memory is the growth of the process's max RSS across open + find.  The libbpf
column (btf__parse + btf__find_by_name_kind, in C) is built from
bench_btf_libbpf.c when clang (or cc) and libbpf-dev are present, and skipped
otherwise.  Ratios compare figures of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import child_env, describe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
import ctypes
from pybpfload.btf import Spec, types as T
t1 = time.perf_counter()
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t2 = time.perf_counter()
spec = Spec.from_file(sys.argv[1])
t3 = time.perf_counter()
spec.find(sys.argv[2], T.Struct)
t4 = time.perf_counter()
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"import": (t1 - t0) * 1e3, "open": (t3 - t2) * 1e3, "find": (t4 - t3) * 1e3,
                  "total": (t4 - t2) * 1e3, "rss_kib": rss1 - rss0}))
"""


def child(btf: str, name: str, cache_dir: str) -> Dict[str, float]:
    env = child_env(PYBPFLOAD_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", CHILD, btf, name], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def median(runs: List[Dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def libbpf_ms(btf: str, name: str, runs: int) -> Optional[float]:
    cc = shutil.which("clang") or shutil.which("cc")
    if cc is None or not Path("/usr/include/bpf/btf.h").exists():
        return None
    with tempfile.TemporaryDirectory() as d:
        exe = Path(d) / "bench_btf_libbpf"
        r = subprocess.run([cc, "-O2", str(HERE / "bench_btf_libbpf.c"), "-o", str(exe), "-lbpf"], capture_output=True)
        if r.returncode:
            return None
        out = subprocess.run([str(exe), btf, name, str(runs)], capture_output=True, text=True)
        return float(out.stdout) if out.returncode == 0 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--btf", default="/sys/kernel/btf/vmlinux")
    ap.add_argument("--name", default="task_struct")
    args = ap.parse_args()
    print(describe())

    cold, cached = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            cold.append(child(args.btf, args.name, d))
    with tempfile.TemporaryDirectory() as d:
        child(args.btf, args.name, d)  # fills the cache
        for _ in range(args.runs):
            cached.append(child(args.btf, args.name, d))
    lib = libbpf_ms(args.btf, args.name, args.runs)

    print(f"BTF {args.btf} ({os.path.getsize(args.btf) / 2**20:.1f} MiB), find struct {args.name}, median of {args.runs}")
    print(f"  import pybpfload.btf (+ctypes)  {median(cold, 'import'):7.2f} ms (not included below)")
    rows = [("pybpfload cold (no cache)", cold), ("pybpfload with index cache", cached)]
    for label, runs in rows:
        total = median(runs, "total")
        ratio = f"   {total / lib:5.2f}x libbpf" if lib else ""
        print(
            f"  {label:30s} {total:7.2f} ms (open {median(runs, 'open'):.2f} + find {median(runs, 'find'):.2f}),"
            f" peak RSS +{median(runs, 'rss_kib') / 1024:.1f} MiB{ratio}"
        )
    print("  libbpf btf__parse + find       " + (f"{lib:7.2f} ms" if lib else "   (skipped: needs clang/cc and libbpf-dev)"))
    print(f"  cached / cold: {median(cached, 'total') / median(cold, 'total'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
