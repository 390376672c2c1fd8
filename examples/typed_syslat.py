#!/usr/bin/env python3
"""System call latency as log2 histograms, runqlat-like, with the typed API only.

    sudo python3 examples/typed_syslat.py [--per-process] [--pid PID] [--ms] [--interval 1] [--count N]

fixtures/src/typed_syslat.bpf.c keeps a `struct hist` (slots[26], total, count)
per `struct hist_key` (the process name, or "" for all) in a hash map; the
filters are `const volatile` globals set by name before load.  Needs root and
tracefs (mounted here when it is not).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path
from typing import List

from pybpfload import Object

OBJ = Path(__file__).resolve().parent.parent / "fixtures" / "typed_syslat.bpf.o"


def print_log2_hist(slots: List[int], unit: str) -> None:
    top = max((i for i, n in enumerate(slots) if n), default=-1)
    if top < 0:
        return
    peak = max(slots)
    print(f"{unit:>20} : count    distribution")
    for i in range(top + 1):
        lo, hi = (1 << (i + 1)) >> 1, (1 << (i + 1)) - 1  # as bcc's print_log2_hist
        if lo == hi:
            lo -= 1
        bar = "*" * (slots[i] * 40 // peak) if peak else ""
        print(f"{lo:>10} -> {hi:<10}: {slots[i]:<8} |{bar:<40}|")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--per-process", action="store_true", help="one histogram per process name")
    ap.add_argument("--pid", type=int, default=0, help="only this process")
    ap.add_argument("--ms", action="store_true", help="milliseconds instead of microseconds")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between outputs")
    ap.add_argument("--count", type=int, default=0, help="stop after this many outputs (0: until Ctrl-C)")
    args = ap.parse_args()
    if not os.path.isdir("/sys/kernel/tracing/events"):
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=False)

    with Object.open(OBJ) as obj:  # typed (the default): hists gives hist_key -> hist objects
        obj.rodata.targ_per_process = args.per_process
        obj.rodata.targ_tgid = args.pid
        obj.rodata.targ_ms = args.ms
        obj.load()
        obj.attach_all()
        hists = obj.maps["hists"]
        unit = "msecs" if args.ms else "usecs"
        shown = 0
        try:
            while not args.count or shown < args.count:
                time.sleep(args.interval)
                print(time.strftime("%H:%M:%S"))
                for key, h in sorted(hists.items(), key=lambda kv: -kv[1].count):
                    if args.per_process:
                        print(f"\ncomm = {key.comm.decode(errors='replace')}")
                    print(f"{h.count} syscalls, average {h.total_ns / max(h.count, 1) / 1000:.1f} us")
                    print_log2_hist(h.slots, unit)
                hists.clear()
                print(flush=True)
                shown += 1
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
