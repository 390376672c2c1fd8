#!/usr/bin/env python3
"""Symbolisation speed (pybpfload.toolkit.symbols): cold tables, warm lookups, kernel addresses.

    sudo .venv/bin/python benchmarks/bench_symbols.py [--addresses 100000] [--cold-runs 7]

- cold libc: reading libc's symbol table from nothing (the ELF headers,
  its .symtab, or its debug file's when it is stripped), in a fresh process
  each time (best and median of --cold-runs), and in-process without the
  cache (best of 20); the toolkit module's import time beside it;
- user addresses: --addresses random addresses inside the functions of this
  process's libc and libpython / python executable, through
  ``ProcessSymbols.sym(addr, show_module, show_offset)`` (bcc's text) — first
  pass with the binaries' tables warm but every address new, then a second
  pass over the same addresses (the per-address cache); timed in chunks of
  --chunk addresses, each on a fresh ProcessSymbols, reported overall and
  for the best chunk (other load on the machine shows as slow chunks);
- kernel addresses: /proc/kallsyms read and indexed (cold), then
  ``ksym(addr, True, True)`` on --addresses random kernel text addresses.

Goals (issue 19): >= 200 k addresses/s warm, cold libc table <= 50 ms.
The cold children run with PYTHONDONTWRITEBYTECODE removed (imports from
.pyc, as a user's); --no-pyc keeps it (every module compiled each start),
and the first line of the output says which.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import child_env, describe  # noqa: E402

from pybpfload.toolkit import symbols as S  # noqa: E402

COLD = r"""
import sys, time
t0 = time.perf_counter()
from pybpfload.toolkit import symbols as S
t1 = time.perf_counter()
es = S.elf_symbols(sys.argv[1])
t2 = time.perf_counter()
assert len(es) > 100
print((t1 - t0) * 1e3, (t2 - t1) * 1e3, len(es), es.debug_file or "")
"""


def libc_path() -> str:
    for line in Path("/proc/self/maps").read_text().splitlines():
        f = line.split()
        if len(f) >= 6 and "/libc.so" in f[5] and "x" in f[1]:
            return f[5]
    raise SystemExit("libc is not mapped in this process")


def best(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def user_addresses(n: int, rng: random.Random) -> Tuple[List[int], List[str]]:
    """Random addresses inside the functions of libc and the interpreter's code, and the files they are in."""
    me = os.getpid()
    ps = S.process_symbols(me)
    picks: List[Tuple[int, int, int]] = []  # (runtime start, size) of functions
    files = []
    for line in Path(f"/proc/{me}/maps").read_text().splitlines():
        f = line.split()
        if len(f) < 6 or "x" not in f[1] or not ("/libc.so" in f[5] or "libpython" in f[5] or f[5] == os.path.realpath(sys.executable)):
            continue
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        foff = int(f[2], 16)
        es = S.elf_symbols(f[5])
        files.append(os.path.basename(f[5]))
        for start, size in zip(es.starts, es.sizes):
            if not size:
                continue
            # ELF address -> runtime address through the PT_LOAD holding it
            for p_off, p_vaddr, p_filesz, _fl in es.loads:
                if p_vaddr <= start < p_vaddr + p_filesz:
                    fo = start - p_vaddr + p_off
                    if foff <= fo < foff + (hi - lo):
                        rt = lo + fo - foff if es.etype == 3 else start
                        picks.append((rt, size, 0))
                    break
    if not picks:
        raise SystemExit("no functions found in this process's libc / python")
    del ps
    addrs = []
    for _ in range(n):
        rt, size, _ = picks[rng.randrange(len(picks))]
        addrs.append(rt + rng.randrange(size))
    return addrs, sorted(set(files))


def rate(n: int, times: List[float]) -> str:
    """Overall k addresses/s, and the best chunk's (the machine may be busy: the best chunk is the one nothing interrupted)."""
    per = n / len(times)
    return f"{n / sum(times) / 1e3:.0f} k addresses/s overall, best chunk {per / min(times) / 1e3:.0f} k/s"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--addresses", type=int, default=100_000)
    ap.add_argument("--cold-runs", type=int, default=7)
    ap.add_argument("--chunk", type=int, default=10_000, help="addresses per timed chunk")
    ap.add_argument("--no-pyc", action="store_true", help="keep PYTHONDONTWRITEBYTECODE for the cold children (labelled)")
    a = ap.parse_args()
    print(describe(keep_no_pyc=a.no_pyc))
    rng = random.Random(19)

    # ---- cold libc
    libc = libc_path()
    imports, loads = [], []
    info = ""
    for _ in range(a.cold_runs):
        out = subprocess.run([sys.executable, "-c", COLD, libc], capture_output=True, text=True, check=True, cwd=ROOT, env=child_env(keep_no_pyc=a.no_pyc)).stdout.split()
        imports.append(float(out[0]))
        loads.append(float(out[1]))
        info = f"{out[2]} functions" + (f", symbols from {out[3]}" if len(out) > 3 else "")
    in_proc = best(lambda: S.ElfSymbols(libc), 20) * 1e3
    print(f"cold libc table ({libc}: {info})")
    print(f"  fresh process: best {min(loads):.1f} ms, median {statistics.median(loads):.1f} ms  (goal <= 50 ms)")
    print(f"  in-process, uncached: best {in_proc:.1f} ms")
    print(f"  import pybpfload.toolkit.symbols: best {min(imports):.1f} ms, median {statistics.median(imports):.1f} ms")

    # ---- user addresses: in chunks of --chunk, each chunk on a fresh ProcessSymbols (no address cached)
    addrs, files = user_addresses(a.addresses, rng)
    S.ProcessSymbols(os.getpid()).sym(addrs[0], True, True)  # the binaries' tables are read (and cached) here
    chunks = [addrs[i : i + a.chunk] for i in range(0, len(addrs), a.chunk)]
    new_t, again_t, texts = [], [], []
    for chunk in chunks:
        ps = S.ProcessSymbols(os.getpid())
        t = time.perf_counter()
        out = [ps.sym(x, True, True) for x in chunk]
        new_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        for x in chunk:
            ps.sym(x, True, True)
        again_t.append(time.perf_counter() - t)
        texts += out
    unknown = sum(1 for s in texts if s.startswith("[unknown]"))
    print(f"user addresses ({len(addrs)} in {', '.join(files)}; {len(set(addrs))} distinct, {unknown} unknown), chunks of {a.chunk}")
    print(f"  tables warm, every address new: {rate(len(addrs), new_t)}  (goal >= 200 k/s)")
    print(f"  same addresses again (address cache): {rate(len(addrs), again_t)}")
    print(f"  e.g. {texts[0]!r}, {texts[1]!r}")

    # ---- kernel addresses
    try:
        t = time.perf_counter()
        k = S.KernelSymbols()
        cold_k = time.perf_counter() - t
    except Exception as e:  # noqa: BLE001 - a benchmark reports and goes on
        print(f"kernel addresses: skipped ({e})")
        return 0
    S._KSYMS[:] = [k]
    syms = [s[0] for s in k.symbols()]
    lo, hi = syms[0], syms[min(len(syms) - 1, int(len(syms) * 0.9))]
    kaddrs = [rng.randrange(lo, hi) for _ in range(a.addresses)]
    kt = []
    ktexts: List[str] = []
    for i in range(0, len(kaddrs), a.chunk):
        t = time.perf_counter()
        ktexts += [S.ksym(x, True, True) for x in kaddrs[i : i + a.chunk]]
        kt.append(time.perf_counter() - t)
    print(f"kernel addresses ({len(k)} symbols in /proc/kallsyms)")
    print(f"  /proc/kallsyms read and indexed: {cold_k * 1e3:.0f} ms")
    print(f"  ksym(addr, True, True): {rate(len(kaddrs), kt)}   e.g. {ktexts[0]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
