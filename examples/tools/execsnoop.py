#!/usr/bin/env python3
"""Trace exec() syscalls: libbpf-tools' execsnoop in pure Python.

    sudo python3 examples/tools/execsnoop.py [-T] [-t] [-x] [-u UID] [-U] [-q] [-n NAME] [-l LINE]
                                             [--max-args MAX_ARGS] [-d DURATION]

fixtures/src/tool_execsnoop.bpf.c sends one `struct event` per exec() on a
ring buffer, its arguments (NUL-separated) after it: here ``e._tail``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import object_path, poll_for, require_syscall_tracepoints, run, strftime, warn_lost

from pybpfload import Object, RingBuffer

TOTAL_MAX_ARGS = 60
DEFAULT_MAXARGS = 20
QUOTED = {ord('"'): '\\"', ord("\t"): "\\t", ord("\n"): "\\n"}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Trace exec syscalls", epilog="examples: execsnoop -x; execsnoop -T -U; execsnoop -u 1000"
    )
    ap.add_argument("-T", "--time", action="store_true", help="include time column on output (HH:MM:SS)")
    ap.add_argument("-t", "--timestamp", action="store_true", help="include timestamp on output")
    ap.add_argument("-x", "--fails", action="store_true", help="include failed exec()s")
    ap.add_argument("-u", "--uid", type=int, default=-1, help="trace this UID only")
    ap.add_argument("-U", "--print-uid", action="store_true", help="print UID column")
    ap.add_argument("-q", "--quote", action="store_true", help='add quotemarks (") around arguments')
    ap.add_argument("-n", "--name", help="only print commands matching this name")
    ap.add_argument("-l", "--line", help="only print commands where an argument contains this line")
    ap.add_argument(
        "--max-args", type=int, default=DEFAULT_MAXARGS, help="maximum number of arguments parsed and displayed (default 20)"
    )
    ap.add_argument("-d", "--duration", type=float, default=0, help="stop after this many seconds (not in libbpf-tools)")
    args = ap.parse_args()
    if not -1 <= args.uid < 2**32 - 1:
        ap.error(f"invalid UID {args.uid}")
    if not 1 <= args.max_args <= TOTAL_MAX_ARGS:
        ap.error(f"invalid MAX_ARGS {args.max_args}, should be in [1, {TOTAL_MAX_ARGS}] range")
    return args


def format_args(e: Any, quote: bool, max_args: int) -> str:
    """libbpf-tools' print_args: each argument followed by a space, optionally in quotes; " ..." when there were more."""
    words = e._tail[: e.args_size].split(b"\0")[:-1][: e.args_count]
    out = '"' if quote else ""
    for n, word in enumerate(words, 1):
        text = word.decode(errors="replace")
        if quote:
            out += text.translate(QUOTED) + ('" "' if n < e.args_count else '" ')
        else:
            out += text + " "
    if e.args_count == max_args + 1:
        out += " ..."
    return out


def main(args: argparse.Namespace) -> int:
    require_syscall_tracepoints()
    with Object.open(object_path("execsnoop")) as obj:
        obj.rodata.ignore_failed = not args.fails
        obj.rodata.targ_uid = args.uid & 0xFFFFFFFF
        obj.rodata.max_args = args.max_args
        obj.load()
        start = time.monotonic()
        obj.attach_all()

        def show(e: Any) -> None:
            comm = e.comm.decode(errors="replace")
            argv = format_args(e, args.quote, args.max_args)
            if args.name and args.name not in comm:
                return
            if args.line and args.line not in argv:
                return
            prefix = ""
            if args.time:
                prefix += f"{strftime():<8} "
            if args.timestamp:
                prefix += f"{time.monotonic() - start:<8.3f}"
            if args.print_uid:
                prefix += f"{e.uid:<6}"
            print(f"{prefix}{comm:<16} {e.pid:<6} {e.ppid:<6} {e.retval:>3} {argv}")

        with RingBuffer(obj.maps["events"], show, type="struct event") as rb:
            header = ""
            if args.time:
                header += f"{'TIME':<9}"
            if args.timestamp:
                header += f"{'TIME(s)':<8} "
            if args.print_uid:
                header += f"{'UID':<6} "
            print(f"{header}{'PCOMM':<16} {'PID':<6} {'PPID':<6} {'RET':>3} ARGS")
            poll_for(rb, args.duration)
        warn_lost(obj.bss.dropped)
    return 0


if __name__ == "__main__":
    run(main, parse_args)
