#!/usr/bin/env python3
"""Profile CPU usage by sampling stack traces at a timed interval: libbpf-tools' profile in pure Python.

    sudo python3 examples/tools/profile.py [-p PID[,PID...]] [-L TID[,TID...]] [-U | -K] [-F FREQUENCY]
                                           [-d] [-I] [-f] [-C CPU] [--stack-storage-size N]
                                           [--perf-max-stack-depth N] [duration]

fixtures/src/tool_profile.bpf.c runs on a cpu-clock perf event of every CPU
(FREQUENCY samples a second) and counts (pid, comm, user stack, kernel stack)
keys; the stacks are read from the stack map and symbolised by the toolkit
(kernel: /proc/kallsyms, user: the process's ELF files).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys
from typing import Any, List, Optional

from _common import object_path, run, sleep

from pybpfload import BPFError, Object, possible_cpus
from pybpfload.syscall import perf
from pybpfload.toolkit.stacks import stack_ips, symbolize

PERF_COUNT_SW_CPU_CLOCK = 0  # enum perf_sw_ids (pybpfload.syscall.perf has no name for it)
ATTR_FREQ = 1 << 10  # struct perf_event_attr's `freq` bit: sample_period is a frequency
EFAULT, EEXIST = -errno.EFAULT, -errno.EEXIST


def id_list(text: str) -> List[int]:
    ids = [int(x) for x in text.split(",")]
    if not ids or any(i <= 0 for i in ids) or len(ids) > 30:
        raise ValueError(text)
    return ids


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Profile CPU usage by sampling stack traces at a timed interval.",
        epilog="examples: profile; profile -F 99; profile 5; profile -f; profile -p 185; profile -U; profile -K",
    )
    ap.add_argument("duration", nargs="?", type=float, default=None, help="seconds to profile (default: until Ctrl-C)")
    ap.add_argument("-p", "--pid", type=id_list, default=[], help="profile processes with one or more comma-separated PIDs only")
    ap.add_argument("-L", "--tid", type=id_list, default=[], help="profile threads with one or more comma-separated TIDs only")
    ap.add_argument(
        "-U", "--user-stacks-only", action="store_true", help="show stacks from user space only (no kernel space stacks)"
    )
    ap.add_argument(
        "-K", "--kernel-stacks-only", action="store_true", help="show stacks from kernel space only (no user space stacks)"
    )
    ap.add_argument("-F", "--frequency", type=int, default=49, help="sample frequency, Hertz")
    ap.add_argument("-d", "--delimited", action="store_true", help="insert delimiter between kernel/user stacks")
    ap.add_argument("-I", "--include-idle", action="store_true", help="include CPU idle stacks")
    ap.add_argument("-f", "--folded", action="store_true", help="output folded format, one line per stack (for flame graphs)")
    ap.add_argument("-C", "--cpu", type=int, default=-1, help="cpu number to run profile on")
    ap.add_argument("--stack-storage-size", type=int, default=1024, help="the number of unique stack traces that can be stored")
    ap.add_argument("--perf-max-stack-depth", type=int, default=127, help="the limit for both kernel and user stack traces")
    args = ap.parse_args()
    if args.user_stacks_only and args.kernel_stacks_only:
        ap.error("user_stacks_only and kernel_stacks_only cannot be used together.")
    if args.frequency <= 0 or (args.duration is not None and args.duration <= 0):
        ap.error("FREQUENCY and duration must be positive")
    if not 1 <= args.perf_max_stack_depth <= 127 or args.stack_storage_size < 1:
        ap.error("--perf-max-stack-depth must be in 1..127, --stack-storage-size positive")
    return args


def header(args: argparse.Namespace) -> str:
    text = f"Sampling at {args.frequency} Hertz of"
    if args.pid:
        text += f" PID [{', '.join(map(str, args.pid))}]"
    elif args.tid:
        text += f" TID [{', '.join(map(str, args.tid))}]"
    else:
        text += " all threads"
    text += " by user" if args.user_stacks_only else " by kernel" if args.kernel_stacks_only else " by user + kernel"
    if args.cpu != -1:
        text += f" on CPU#{args.cpu}"
    return text + (f" for {args.duration:g} secs." if args.duration else "... Hit Ctrl-C to end.")


def stack(stacks: Any, stack_id: int, pid: Optional[int], depth: int, missed: str) -> List[str]:
    """The frames' names, innermost first; [missed] when the stack is not in the map."""
    try:
        ips = stack_ips(stacks, stack_id)[:depth]
    except BPFError:  # a negative id (bpf_get_stackid's error) or a stack no longer there
        return [missed]
    names: List[str] = symbolize(ips, pid, kernel=pid is None, show_module=False, show_offset=False)
    return names


def print_count(args: argparse.Namespace, stacks: Any, key: Any, count: int) -> None:
    depth = args.perf_max_stack_depth
    kern = user = None  # None: not shown; a list of frames, or the "missed" text
    if not args.user_stacks_only and key.kern_stack_id != EFAULT:
        kern = stack(stacks, key.kern_stack_id, None, depth, "[Missed Kernel Stack]")
    if not args.kernel_stacks_only and key.user_stack_id != EFAULT:
        user = stack(stacks, key.user_stack_id, key.pid, depth, "[Missed User Stack]")
    name = key.name.decode(errors="replace")
    if args.folded:  # outermost frame first: user, then kernel
        frames = list(reversed(user or []))
        if kern is not None:
            frames += (["-"] if user is not None and args.delimited else []) + list(reversed(kern))
        print(name + "".join(f";{f}" for f in frames) + f" {count}")
        return
    frames = list(kern or [])
    if user is not None:
        frames += (["--"] if kern is not None and args.delimited else []) + user
    for f in frames:
        print(f"    {f}")
    print(f"    {'-':<16} {name} ({key.pid})")
    print(f"        {count}\n")


def print_counts(args: argparse.Namespace, obj: Object) -> None:
    stacks = obj.maps["stackmap"]
    counts = sorted(((k, v) for k, v in obj.maps["counts"].items() if v), key=lambda kv: kv[1], reverse=True)
    missing, collision = 0, False
    for key, count in counts:
        print_count(args, stacks, key, count)
        missing += (not args.user_stacks_only and key.kern_stack_id < 0 and key.kern_stack_id != EFAULT) + (
            not args.kernel_stacks_only and key.user_stack_id < 0 and key.user_stack_id != EFAULT
        )
        collision = collision or EEXIST in (key.kern_stack_id, key.user_stack_id)
    if missing:
        hint = " Consider increasing --stack-storage-size." if collision else ""
        print(f"WARNING: {missing} stack traces could not be displayed.{hint}", file=sys.stderr)


def attach_sampling(obj: Object, args: argparse.Namespace, links: contextlib.ExitStack) -> None:
    """A cpu-clock event sampling at the frequency on each CPU (or the one asked), the program attached to it."""
    prog = obj.programs["do_perf_event"]
    attr = perf.PerfEventAttr(
        type=perf.PERF_TYPE_SOFTWARE, config=PERF_COUNT_SW_CPU_CLOCK, sample_period=args.frequency, flags=ATTR_FREQ
    )
    for cpu in range(possible_cpus()):
        if args.cpu not in (-1, cpu):
            continue
        try:
            fd = perf.perf_event_open(attr, -1, cpu)
        except OSError as e:
            if e.errno == errno.ENODEV:  # an offline CPU
                continue
            raise
        with fd:
            links.enter_context(prog.attach_perf_event(fd))  # the link keeps its own copy of the fd


def main(args: argparse.Namespace) -> int:
    with Object.open(object_path("profile"), typed=True) as obj:
        obj.rodata.user_stacks_only = args.user_stacks_only
        obj.rodata.kernel_stacks_only = args.kernel_stacks_only
        obj.rodata.include_idle = args.include_idle
        obj.rodata.filter_by_pid = bool(args.pid)
        obj.rodata.filter_by_tid = bool(args.tid) and not args.pid
        obj.maps["stackmap"].value_size = args.perf_max_stack_depth * 8
        obj.maps["stackmap"].max_entries = args.stack_storage_size
        obj.load()
        for pid in args.pid:
            obj.maps["pids"][pid] = 0
        for tid in [] if args.pid else args.tid:
            obj.maps["tids"][tid] = 0
        with contextlib.ExitStack() as links:
            attach_sampling(obj, args, links)
            if not args.folded:
                print(header(args))
            sleep(args.duration if args.duration else 99999999)
        print_counts(args, obj)
    return 0


if __name__ == "__main__":
    run(main, parse_args)
