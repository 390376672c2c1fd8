"""Run one input under a time and memory bound and say what happened.

* ``ok`` — the target returned;
* ``error`` — it raised a :class:`pybpfload.errors.BPFError` (a clear refusal of bad input: fine);
* ``crash`` — anything else: another exception, RecursionError, MemoryError,
  or :class:`Hang` (the input used more than ``timeout`` seconds of CPU:
  ``ITIMER_PROF`` raises Hang in the running Python code).

Memory is bounded with ``RLIMIT_AS`` (:func:`limit_memory`): an allocation
past it is a MemoryError, so a tiny input that makes the loader materialise
a gigabyte is a crash rather than a slow success.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Callable, List, Optional, Tuple

from . import REGRESSIONS, ROOT, known

DEFAULT_TIMEOUT = 2.0  # CPU seconds per input
DEFAULT_MEM_MB = 512  # address space allowed on top of what the process has when the limit is set
_REPEAT = 0.25  # the alarm fires again this often if an input swallows the first Hang


class Hang(BaseException):
    """The input ran past its time bound (a BaseException: ``except Exception`` in the code under test cannot eat it)."""


class PropertyViolation(AssertionError):
    """A target's own consistency check failed (say, a BTF round trip changed a type)."""


class _Alarm:
    armed = False


def _on_alarm(signum: int, frame: object) -> None:
    if _Alarm.armed:
        raise Hang("input exceeded its CPU time bound")


@dataclass
class Outcome:
    status: str  # "ok" | "error" | "crash"
    exc_type: str = ""
    message: str = ""
    frames: Tuple[Tuple[str, str], ...] = ()  # (repository-relative path, function), outermost first
    traceback: str = ""
    seconds: float = 0.0
    known: Optional[known.KnownBug] = field(default=None)

    @property
    def signature(self) -> str:
        """What identifies the bug: exception type and the innermost pybpfload (else innermost) frame."""
        where = next((f for f in reversed(self.frames) if f[0].startswith("pybpfload/")), None)
        if where is None and self.frames:
            where = self.frames[-1]
        return f"{self.exc_type}@{where[0]}:{where[1]}" if where else self.exc_type

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "-", self.signature.replace(".py:", "-")).strip("-").lower()

    def summary(self) -> str:
        msg = self.message if len(self.message) < 300 else self.message[:300] + "..."
        return f"{self.exc_type}: {msg} [{self.signature}]"


def _relpath(filename: str) -> str:
    p = os.path.abspath(filename)
    root = str(ROOT) + os.sep
    if p.startswith(root):
        return p[len(root) :]
    i = p.find("site-packages" + os.sep)
    return p[i + len("site-packages") + 1 :] if i >= 0 else p


def _frames(tb: Optional[TracebackType]) -> Tuple[Tuple[str, str], ...]:
    out: List[Tuple[str, str]] = []
    while tb is not None:
        code = tb.tb_frame.f_code
        out.append((_relpath(code.co_filename), code.co_name))
        tb = tb.tb_next
    return tuple(out)


def _call(fn: Callable[[bytes], object], data: bytes) -> Optional[BaseException]:
    try:
        fn(data)
    except BaseException as e:  # noqa: B036 - classifying everything is the point
        _Alarm.armed = False
        return e
    _Alarm.armed = False
    return None


def run_one(fn: Callable[[bytes], object], data: bytes, timeout: float = DEFAULT_TIMEOUT) -> Outcome:
    """Run ``fn(data)`` with a CPU-time bound; classify what happened."""
    from pybpfload.errors import BPFError

    previous = signal.signal(signal.SIGPROF, _on_alarm)
    t0 = time.perf_counter()
    _Alarm.armed = True
    signal.setitimer(signal.ITIMER_PROF, timeout, _REPEAT)
    try:
        try:
            exc = _call(fn, data)
        except Hang as e:  # fired between the target's return and the disarm
            exc = e
    finally:
        _Alarm.armed = False
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, previous)
    seconds = time.perf_counter() - t0
    if exc is None:
        return Outcome("ok", seconds=seconds)
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    frames = _frames(exc.__traceback__)
    if isinstance(exc, BPFError) and not isinstance(exc, (Hang, RecursionError, MemoryError)):
        return Outcome("error", type(exc).__name__, str(exc), frames, seconds=seconds)
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-40))
    except BaseException:  # noqa: B036 - a MemoryError while formatting must not escape
        text = f"{type(exc).__name__} (traceback could not be formatted)"
    try:
        message = str(exc)
    except BaseException:  # noqa: B036
        message = "<unprintable>"
    exc_type = type(exc).__name__
    return Outcome("crash", exc_type, message, frames, text, seconds, known.match(exc_type, frames))


def limit_memory(headroom_mb: int = DEFAULT_MEM_MB) -> None:
    """Cap the address space at the current size plus ``headroom_mb`` (0: no cap)."""
    if headroom_mb <= 0:
        return
    try:
        with open("/proc/self/statm") as f:
            vsize = int(f.read().split()[0]) * resource.getpagesize()
    except OSError:
        vsize = 0
    limit = vsize + headroom_mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def save_crash(target: str, data: bytes, out: Outcome, directory: Path = REGRESSIONS) -> Tuple[Path, bool]:
    """Keep a crashing input as ``regressions/<target>/<signature>-<sha1>``; (path, newly saved).

    One file per signature: an input whose signature already has a file is
    not saved again (the existing file is returned).
    """
    d = directory / target
    d.mkdir(parents=True, exist_ok=True)
    prefix = out.slug + "-"
    for p in sorted(d.iterdir()):
        if p.name.startswith(prefix) and p.suffix != ".trace":
            return p, False
    path = d / (prefix + hashlib.sha1(data).hexdigest()[:12])
    path.write_bytes(data)
    note = [f"target: {target}", f"signature: {out.signature}", f"time: {out.seconds:.3f} s"]
    if out.known is not None:
        note.append(f"known bug: {out.known.key}: {out.known.reason}")
    path.with_name(path.name + ".trace").write_text("\n".join(note) + "\n\n" + out.traceback)
    return path, True


def regression_files(directory: Path = REGRESSIONS) -> List[Tuple[str, Path]]:
    """(target, path) of every saved crash input."""
    out: List[Tuple[str, Path]] = []
    if directory.is_dir():
        for d in sorted(directory.iterdir()):
            if d.is_dir():
                out.extend((d.name, p) for p in sorted(d.iterdir()) if p.is_file() and p.suffix != ".trace")
    return out


def describe_crash(target: str, path: Path, out: Outcome) -> str:
    kind = f"known bug {out.known.key}" if out.known is not None else "NEW CRASH"
    return f"{target}: {kind}: {out.summary()}\n  input: {path}"


def _stderr(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()
