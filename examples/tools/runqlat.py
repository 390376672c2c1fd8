#!/usr/bin/env python3
"""Summarize run queue (scheduler) latency as a histogram: libbpf-tools' runqlat in pure Python.

    sudo python3 examples/tools/runqlat.py [-T] [-m] [-P | -L] [-p PID] [-v] [--raw-tp] [interval] [count]

fixtures/src/tool_runqlat.bpf.c has each handler twice: tp_btf programs
(BTF-typed raw tracepoints, 5.5+) and raw_tp ones.  As libbpf-tools, the
tp_btf set is used where the kernel takes it and the raw_tp set otherwise
(-v says which); --raw-tp uses raw_tp programs in any case.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from _common import catch_ctrl_c, ToolError, object_path, print_log2_hist, run, sleep, strftime

from pybpfload import BPFError, Object

HANDLERS = ("sched_wakeup", "sched_wakeup_new", "sched_switch")  # tp_btf programs; raw_tp ones are raw_<name>


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Summarize run queue (scheduler) latency as a histogram.",
        epilog="examples: runqlat; runqlat 1 10; runqlat -mT 1; runqlat -P; runqlat -p 185",
    )
    ap.add_argument("interval", nargs="?", type=float, default=99999999, help="seconds between outputs")
    ap.add_argument("count", nargs="?", type=int, default=99999999, help="number of outputs")
    ap.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    ap.add_argument("-m", "--milliseconds", action="store_true", help="millisecond histogram")
    ap.add_argument("-P", "--pids", action="store_true", help="print a histogram per process ID")
    ap.add_argument("-L", "--tids", action="store_true", help="print a histogram per thread ID")
    ap.add_argument("-p", "--pid", type=int, default=0, help="trace this PID only")
    ap.add_argument("-v", "--verbose", action="store_true", help="say which programs (tp_btf or raw_tp) are used")
    ap.add_argument("--raw-tp", action="store_true", help="use the raw_tp programs even where tp_btf works")
    args = ap.parse_args()
    if args.pids and args.tids:
        ap.error("pids and tids cannot be used together")
    if args.interval <= 0 or args.count <= 0:
        ap.error("interval and count must be positive")
    return args


def open_loaded(args: argparse.Namespace, tp_btf: bool) -> Object:
    """The object, loaded and attached with its tp_btf programs or its raw_tp ones."""
    obj = Object.open(object_path("runqlat"), typed=True)
    try:
        obj.rodata.targ_per_process = args.pids
        obj.rodata.targ_per_thread = args.tids
        obj.rodata.targ_ms = args.milliseconds
        obj.rodata.targ_tgid = args.pid
        for name in HANDLERS:
            obj.programs[name].autoload = tp_btf
            obj.programs[f"raw_{name}"].autoload = not tp_btf
        obj.load()
        obj.attach_all()
    except BaseException:
        obj.close()
        raise
    return obj


def load(args: argparse.Namespace) -> Object:
    """tp_btf where the kernel loads and attaches it, else raw_tp (libbpf-tools probes tp_btf the same way)."""
    refused: Optional[BPFError] = None
    if not args.raw_tp:
        try:
            obj = open_loaded(args, tp_btf=True)
        except BPFError as e:
            refused = e
        else:
            if args.verbose:
                print("runqlat: using tp_btf programs", file=sys.stderr)
            return obj
    try:
        obj = open_loaded(args, tp_btf=False)
    except BPFError as e:
        if refused is not None:
            raise ToolError(f"tp_btf refused ({refused}), and raw_tp too: {e}") from None
        raise
    if args.verbose:
        why = "as asked (--raw-tp)" if refused is None else f"tp_btf refused: {refused}"
        print(f"runqlat: using raw_tp programs, {why}", file=sys.stderr)
    return obj


def main(args: argparse.Namespace) -> int:
    units = "msecs" if args.milliseconds else "usecs"
    with load(args) as obj:
        hists = obj.maps["hists"]
        catch_ctrl_c()  # the summary is printed whenever Ctrl-C comes
        print("Tracing run queue latency... Hit Ctrl-C to end.")
        times = args.count
        while True:
            exiting = not sleep(args.interval)
            print()
            if args.timestamp:
                print(f"{strftime():<8}")
            for key, hist in list(hists.items()):
                comm = hist.comm.decode(errors="replace")
                if args.pids:
                    print(f"\npid = {key} {comm}")
                elif args.tids:
                    print(f"\ntid = {key} {comm}")
                print_log2_hist(hist.slots, units)
                hists.delete(key)
            times -= 1
            if exiting or times == 0:
                break
    return 0


if __name__ == "__main__":
    run(main, parse_args)
