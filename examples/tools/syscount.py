#!/usr/bin/env python3
"""Summarize syscall counts and latencies: libbpf-tools' syscount in pure Python.

    sudo python3 examples/tools/syscount.py [-p PID] [-i INTERVAL] [-d DURATION] [-T TOP] [-x] [-e ERRNO]
                                            [-L] [-m] [-P] [-l]

fixtures/src/tool_syscount.bpf.c counts system calls in a hash map of
`struct data_t` (count, total_ns, comm) keyed by syscall number, or by
process with -P; the map is read (typed) and emptied at each interval.
"""

from __future__ import annotations

import argparse
import errno
from typing import Any, List, Tuple

from _common import catch_ctrl_c, ensure_tracefs, object_path, run, sleep, strftime

from pybpfload import Object, SyscallError
from pybpfload.toolkit.errnos import errno_number
from pybpfload.toolkit.syscalls import syscall_name, syscall_table

ENOTSUPP = 524


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="syscount: summarize syscall counts and latencies",
        epilog="examples: syscount -p $(pidof dd); syscount -L; syscount -P; syscount -x -i 5; syscount -e ENOENT -i 5",
    )
    ap.add_argument("-p", "--pid", type=int, default=0, help="process PID to trace")
    ap.add_argument(
        "-i", "--interval", type=float, default=0, help="print summary at this interval (seconds), 0 for infinite wait (default)"
    )
    ap.add_argument("-d", "--duration", type=float, default=0, help="total tracing duration (seconds)")
    ap.add_argument("-T", "--top", type=int, default=10, help="print only the top syscalls (default 10)")
    ap.add_argument("-x", "--failures", action="store_true", help="trace only failed syscalls")
    ap.add_argument("-L", "--latency", action="store_true", help="collect syscall latency")
    ap.add_argument("-m", "--milliseconds", action="store_true", help="display latency in milliseconds (default: microseconds)")
    ap.add_argument("-P", "--process", action="store_true", help="count by process and not by syscall")
    ap.add_argument("-e", "--errno", default=None, help="trace only syscalls that return this error (numeric or EPERM, etc.)")
    ap.add_argument("-l", "--list", action="store_true", help="print list of recognized syscalls and exit")
    args = ap.parse_args()
    if args.pid < 0 or args.interval < 0 or args.duration < 0 or args.top < 1:
        ap.error("PID, INTERVAL and DURATION must not be negative, TOP at least 1")
    if args.list:  # as --help: no privilege needed
        for nr, name in sorted(syscall_table().items()):
            print(f"{nr:>3}: {name}")
        raise SystemExit(0)
    if args.errno is not None:
        try:
            args.errno = int(args.errno) if args.errno.isdigit() else errno_number(args.errno)
        except KeyError as e:
            ap.error(f"invalid errno: {e}")
    return args


def drain(m: Any) -> List[Tuple[int, Any]]:
    """Every (key, struct data_t) of the map, emptying it (one batch call where the kernel has it, as libbpf-tools)."""
    try:
        return list(m.lookup_and_delete_batch())
    except SyscallError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP):
            raise
    items = list(m.items())  # racy, as libbpf-tools' fallback: what comes between the read and the delete is lost
    for key, _ in items:
        m.delete(key)
    return items


def print_table(args: argparse.Namespace, vals: List[Tuple[int, Any]]) -> None:
    colname = "PID    COMM" if args.process else "SYSCALL"

    def agg(key: int, v: Any) -> str:
        return f"{key:<6} {v.comm.decode(errors='replace'):<15}" if args.process else syscall_name(key)

    if args.latency:
        div = 1e6 if args.milliseconds else 1e3
        print(f"{colname:<22} {'COUNT':>8} {'TIME (ms)' if args.milliseconds else 'TIME (us)':>16}")
        for key, v in vals[: args.top]:
            print(f"{agg(key, v):<22} {v.count:>8} {v.total_ns / div:>16.3f}")
    else:
        print(f"{colname:<22} {'COUNT':>8}")
        for key, v in vals[: args.top]:
            print(f"{agg(key, v):<22} {v.count:>8}")
    print()


def main(args: argparse.Namespace) -> int:
    ensure_tracefs()
    with Object.open(object_path("syscount"), typed=True) as obj:
        obj.rodata.filter_pid = args.pid
        obj.rodata.filter_failed = args.failures
        obj.rodata.measure_latency = args.latency
        obj.rodata.count_by_process = args.process
        obj.rodata.filter_errno = args.errno or 0
        obj.programs["sys_enter"].autoload = args.latency  # sys_enter only times calls
        obj.load()
        obj.attach_all()
        catch_ctrl_c()  # the summary is printed whenever Ctrl-C comes
        print(f"Tracing syscalls, printing top {args.top}... Ctrl+C to quit.")
        step, seconds, hang_on = args.interval or 1, 0.0, True
        while hang_on:
            hang_on = sleep(step)
            seconds += step
            if args.duration and seconds >= args.duration:
                hang_on = False
            if hang_on and not args.interval:
                continue
            vals = drain(obj.maps["data"])
            if not vals:
                continue
            vals.sort(key=lambda kv: kv[1].total_ns if args.latency else kv[1].count, reverse=True)
            print(f"[{strftime()}]")
            print_table(args, vals)
    return 0


if __name__ == "__main__":
    run(main, parse_args)
