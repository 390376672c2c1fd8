#!/usr/bin/env python3
"""Count system calls per process, bcc-style: a table every second until Ctrl-C.

    sudo python3 examples/bcc_style_syscount.py [--interval 1] [--top 10] [--count N]

A tracepoint program (raw_syscalls:sys_enter) counts per process in a hash
map; the script prints the busiest processes and clears the map each
interval.  Needs root and tracefs (mounted here when it is not).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from pybpfload import Object

OBJ = Path(__file__).resolve().parent.parent / "fixtures" / "attach_syscount.bpf.o"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between tables")
    ap.add_argument("--top", type=int, default=10, help="processes per table")
    ap.add_argument("--count", type=int, default=0, help="stop after this many tables (0: until Ctrl-C)")
    args = ap.parse_args()

    if not os.path.isdir("/sys/kernel/tracing/events"):
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=False)

    with Object.open(OBJ) as obj:
        obj.load()
        links = obj.attach_all()  # SEC("tracepoint/raw_syscalls/sys_enter") names its target
        counts = obj.maps["syscalls"]
        try:
            print(f"Tracing system calls... Ctrl-C to stop ({len(links)} link(s))", flush=True)
            shown = 0
            while not args.count or shown < args.count:
                time.sleep(args.interval)
                rows = []
                for pid, stat in counts.items():  # typed: __u32 -> struct stat { count; comm[16]; }
                    rows.append((stat.count, pid, stat.comm.decode(errors="replace")))
                counts.clear()
                rows.sort(reverse=True)
                print(time.strftime("%H:%M:%S"))
                print(f"{'PID':>7} {'COMM':<16} {'SYSCALLS':>10}")
                for n, pid, comm in rows[: args.top]:
                    print(f"{pid:>7} {comm:<16} {n:>10}")
                print(flush=True)
                shown += 1
        except KeyboardInterrupt:
            pass
        finally:
            for link in links:
                link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
