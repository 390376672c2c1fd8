#!/usr/bin/env python3
"""Trace exec() calls, execsnoop-like, with the typed API only (no struct formats).

    sudo python3 examples/typed_execsnoop.py [--uid UID] [--duration SECONDS]

fixtures/src/typed_execsnoop.bpf.c sends a `struct event` per exec on a ring
buffer; the uid filter is a `const volatile` global set by name before load,
and the program's counters are .bss globals read by name.  Needs root and
tracefs (mounted here when it is not).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from pybpfload import Object
from pybpfload.events.ringbuf import RingBuffer

OBJ = Path(__file__).resolve().parent.parent / "fixtures" / "typed_execsnoop.bpf.o"


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--uid", type=int, default=-1, help="only this user's execs")
    ap.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    args = ap.parse_args()
    if not os.path.isdir("/sys/kernel/tracing/events"):
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=False)

    with Object.open(OBJ) as obj:
        obj.rodata.targ_uid = args.uid  # const volatile __s64: before load
        obj.load()
        obj.attach_all()
        start = time.monotonic_ns()

        def show(e: Any) -> None:  # e: the decoded struct event
            print(f"{(e.ts_ns - start) / 1e9:8.3f} {e.uid:>6} {e.tgid:>7} {e.comm.decode(errors='replace'):<16}", flush=True)

        rb = RingBuffer(obj.maps["events"], show, type="struct event")
        print(f"{'TIME(s)':>8} {'UID':>6} {'PID':>7} {'COMM':<16}", flush=True)
        end = time.monotonic() + args.duration if args.duration else None
        try:
            while end is None or time.monotonic() < end:
                rb.poll(100)
        except KeyboardInterrupt:
            pass
        finally:
            rb.close()
        print(f"{obj.bss.seen} exec(s) traced, {obj.bss.dropped} dropped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
