#!/usr/bin/env python3
"""Trace open family syscalls: libbpf-tools' opensnoop in pure Python.

    sudo python3 examples/tools/opensnoop.py [-T] [-U] [-x] [-p PID] [-t TID] [-u UID] [-d DURATION] [-n NAME] [-e]

fixtures/src/tool_opensnoop.bpf.c sends one `struct event` per open(),
openat() and openat2() on a ring buffer; the filters are `const volatile`
globals set before load.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from _common import object_path, poll_for, require_syscall_tracepoints, run, strftime, tracepoint_exists, warn_lost

from pybpfload import Object, RingBuffer

SYSCALLS = ("open", "openat", "openat2")  # the programs are <name>_enter / <name>_exit


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Trace open family syscalls", epilog="examples: opensnoop -x; opensnoop -p 181 -T")
    ap.add_argument("-T", "--timestamp", action="store_true", help="print timestamp")
    ap.add_argument("-U", "--print-uid", action="store_true", help="print UID")
    ap.add_argument("-x", "--failed", action="store_true", help="failed opens only")
    ap.add_argument("-p", "--pid", type=int, default=0, help="process ID to trace")
    ap.add_argument("-t", "--tid", type=int, default=0, help="thread ID to trace")
    ap.add_argument("-u", "--uid", type=int, default=-1, help="user ID to trace")
    ap.add_argument("-d", "--duration", type=float, default=0, help="duration to trace (seconds)")
    ap.add_argument("-n", "--name", help="trace process names containing this")
    ap.add_argument("-e", "--extended-fields", action="store_true", help="print extended fields")
    args = ap.parse_args()
    for what in ("pid", "tid", "duration"):
        if getattr(args, what) < 0:
            ap.error(f"invalid {what.upper()}: {getattr(args, what)}")
    if not -1 <= args.uid < 2**32 - 1:
        ap.error(f"invalid UID {args.uid}")
    return args


def main(args: argparse.Namespace) -> int:
    require_syscall_tracepoints()
    with Object.open(object_path("opensnoop")) as obj:
        obj.rodata.targ_tgid = args.pid
        obj.rodata.targ_pid = args.tid
        obj.rodata.targ_uid = args.uid & 0xFFFFFFFF
        obj.rodata.targ_failed = args.failed
        for name in SYSCALLS:  # open() is not on arm64, openat2() came with 5.6
            if not tracepoint_exists("syscalls", f"sys_enter_{name}"):
                obj.programs[f"{name}_enter"].autoload = obj.programs[f"{name}_exit"].autoload = False
        obj.load()
        obj.attach_all()

        def show(e: Any) -> None:
            comm = e.comm.decode(errors="replace")
            if args.name and args.name not in comm:
                return
            fd, err = (e.ret, 0) if e.ret >= 0 else (-1, -e.ret)
            line = ""
            if args.timestamp:
                line += f"{strftime():<8} "
            if args.print_uid:
                line += f"{e.uid:<7} "
            line += f"{e.pid:<6} {comm:<16} {fd:>3} {err:>3} "
            if args.extended_fields:
                if e.mode == 0 and not e.flags & os.O_CREAT and e.flags & os.O_TMPFILE != os.O_TMPFILE:
                    line += f"{e.flags:08o} n/a  "
                else:
                    line += f"{e.flags:08o} {e.mode:04o} "
            print(line + e.fname.decode(errors="replace"))

        with RingBuffer(obj.maps["events"], show, type="struct event") as rb:
            header = ""
            if args.timestamp:
                header += f"{'TIME':<8} "
            if args.print_uid:
                header += f"{'UID':<7} "
            header += f"{'PID':<6} {'COMM':<16} {'FD':>3} {'ERR':>3} "
            if args.extended_fields:
                header += f"{'FLAGS':<8} {'MODE':<5} "
            print(header + "PATH")
            poll_for(rb, args.duration)
        warn_lost(obj.bss.dropped)
    return 0


if __name__ == "__main__":
    run(main, parse_args)
