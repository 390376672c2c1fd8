"""What the tools share: their BPF object, tracefs, root, Ctrl-C and error handling.

Each tool calls :func:`run` with its ``main`` and ``parse_args``: a clear
one-line error (not a traceback) when not root, when the kernel refuses
something or when the object is missing; Ctrl-C ends the tool quietly with
status 0.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent.parent
try:
    import pybpfload  # noqa: F401
except ImportError:  # run from a checkout without installing: sudo python3 examples/tools/X.py
    sys.path.insert(0, str(ROOT))

from pybpfload.errors import BPFError  # noqa: E402

TRACEFS = "/sys/kernel/tracing"


class ToolError(Exception):
    """A failure the tool explains in one line."""


def object_path(tool: str) -> Path:
    """fixtures/tool_<tool>.bpf.o (built by ``make -C fixtures``)."""
    p = ROOT / "fixtures" / f"tool_{tool}.bpf.o"
    if not p.exists():
        raise ToolError(f"missing BPF object {p}: build it with `make -C fixtures {p.name}`")
    return p


def ensure_tracefs() -> None:
    """Mount tracefs on /sys/kernel/tracing when it is not there (tracepoints are found in it)."""
    if os.path.isdir(f"{TRACEFS}/events"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tracefs", TRACEFS.encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise ToolError(f"tracefs is not mounted and mounting it on {TRACEFS} failed: {os.strerror(err)}")


def tracepoint_exists(category: str, name: str) -> bool:
    return os.path.isdir(f"{TRACEFS}/events/{category}/{name}")


def require_syscall_tracepoints() -> None:
    """The syscalls/ tracepoints need CONFIG_FTRACE_SYSCALLS: say so when they are absent."""
    ensure_tracefs()
    if not os.path.isdir(f"{TRACEFS}/events/syscalls"):
        raise ToolError(f"this kernel has no system call tracepoints ({TRACEFS}/events/syscalls; CONFIG_FTRACE_SYSCALLS)")


def strftime() -> str:
    """The wall-clock time as libbpf-tools' str_timestamp("%H:%M:%S") prints it."""
    return time.strftime("%H:%M:%S")


_ctrl_c = threading.Event()


def catch_ctrl_c() -> None:
    """From now on Ctrl-C only asks the tool to finish: :func:`sleep` returns False at once,
    and a Ctrl-C that lands anywhere else (between two sleeps, while a summary is being
    read) is not lost and cannot cut the summary short."""
    signal.signal(signal.SIGINT, lambda signum, frame: _ctrl_c.set())


def sleep(seconds: float) -> bool:
    """Sleep; False when Ctrl-C cut it short (further Ctrl-Cs are then ignored while the tool finishes)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:  # catch_ctrl_c()'s
        return not _ctrl_c.wait(seconds)
    try:
        time.sleep(seconds)
        return True
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return False


def warn_lost(dropped: int) -> None:
    """The events the BPF side could not send (its ring buffer was full), as libbpf-tools warns of lost ones."""
    if dropped:
        print(f"WARNING: {dropped} event(s) lost: the ring buffer was full", file=sys.stderr)


def poll_for(buffer: Any, duration: Optional[float]) -> None:
    """Poll a RingBuffer until ``duration`` seconds have passed (None or 0: until Ctrl-C)."""
    end = time.monotonic() + duration if duration else None
    try:
        while end is None or time.monotonic() < end:
            buffer.poll(100)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def print_log2_hist(slots: Sequence[int], unit: str) -> None:
    """libbpf-tools' print_log2_hist, from the toolkit's (bcc's) text.

    libbpf-tools' slot i counts the values 2**i .. 2**(i+1) - 1 (its BPF side
    stores floor(log2(v))), bcc's slot i + 1 the same (bcc stores log2 + 1):
    with a zero slot in front the rows are byte for byte the same.  The one
    difference is in the header: libbpf-tools has four spaces before
    "distribution", bcc five.
    """
    from pybpfload.toolkit.hist import format_log2_hist

    text = format_log2_hist([0, *slots], unit)
    print(text.replace(" : count     distribution\n", " : count    distribution\n", 1), end="")


def run(main: Callable[[argparse.Namespace], int], parse_args: Callable[[], argparse.Namespace]) -> None:
    """Parse the options, run ``main`` with them and exit with its status; failures become one line on stderr."""
    tool = Path(sys.argv[0]).stem
    args = parse_args()  # --help and usage errors need no privilege
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # rows appear as they come
    try:
        if os.geteuid() != 0:
            raise ToolError("needs root (bpf(2), perf events and tracefs): run it with sudo")
        status = main(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        status = 0
    except BrokenPipeError:  # `tool | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        status = 0
    except (ToolError, BPFError, OSError) as e:
        print(f"{tool}: {e}", file=sys.stderr)
        status = 1
    sys.exit(status)
