"""tracefs: where it is mounted, tracepoint ids, and legacy kprobe/uprobe events."""

from __future__ import annotations

import errno
import itertools
import os
import re
from typing import Optional, Tuple

from ..errors import BPFOSError, NotSupportedError

__all__ = ["tracefs_root", "tracepoint_id", "split_tracepoint", "add_probe_event", "remove_probe_event"]

_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_counter = itertools.count()


def tracefs_root(required: bool = True) -> Optional[str]:
    """The tracefs mount point (with an ``events`` directory).

    Raises NotSupportedError naming tracefs when none is mounted and
    ``required``; returns None otherwise.
    """
    for path in _CANDIDATES:
        if os.path.isdir(os.path.join(path, "events")):
            return path
    if not required:
        return None
    raise NotSupportedError("tracefs", "not mounted at /sys/kernel/tracing (mount -t tracefs tracefs /sys/kernel/tracing)")


def split_tracepoint(category: str, name: Optional[str] = None) -> Tuple[str, str]:
    """("syscalls", "sys_enter_getpid") from ``"syscalls/sys_enter_getpid"``, ``"syscalls:..."`` or two arguments."""
    if name is None:
        sep = "/" if "/" in category else ":"
        category, _, name = category.partition(sep)
    if not category or not name or "/" in name or ".." in (category, name):
        raise ValueError(f"tracepoint must be 'category/name', got {category!r} {name!r}")
    return category, name


def tracepoint_id(category: str, name: str) -> int:
    """The id of tracepoint ``category:name`` (tracefs events/<category>/<name>/id)."""
    root = tracefs_root()
    assert root is not None
    path = os.path.join(root, "events", category, name, "id")
    try:
        with open(path) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        raise BPFOSError(errno.ENOENT, f"no tracepoint {category}:{name}", filename=path) from None
    except (OSError, ValueError) as e:
        raise BPFOSError(getattr(e, "errno", 0) or errno.EIO, f"cannot read the id of tracepoint {category}:{name}", filename=path) from None


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)[:48]


def add_probe_event(kind: str, retprobe: bool, target: str) -> Tuple[str, str, int]:
    """Create a legacy tracefs probe (``kind`` "kprobe" or "uprobe"); returns (group, event, tracepoint id).

    ``target`` is ``func+off`` for kprobes, ``/path:0xoffset`` for uprobes.
    """
    root = tracefs_root()
    assert root is not None
    control = os.path.join(root, f"{kind}_events")
    if not os.path.exists(control):
        raise NotSupportedError(f"{kind}s", f"tracefs has no {kind}_events")
    group = "pybpfload"
    event = f"{'r' if retprobe else 'p'}_{_sanitize(os.path.basename(target))}_{os.getpid()}_{next(_counter)}"
    line = f"{'r' if retprobe else 'p'}:{group}/{event} {target}\n"
    try:
        _append(control, line)
    except OSError as e:
        raise BPFOSError(e.errno or errno.EIO, f"cannot add {kind} event {target!r}", filename=control) from None
    try:
        return group, event, tracepoint_id(group, event)
    except BaseException:
        remove_probe_event(kind, group, event)
        raise


def remove_probe_event(kind: str, group: str, event: str) -> None:
    """Remove a legacy probe made by :func:`add_probe_event` (errors ignored: best effort)."""
    root = tracefs_root(required=False)
    if root is None:
        return
    try:
        _append(os.path.join(root, f"{kind}_events"), f"-:{group}/{event}\n")
    except OSError:
        pass


def _append(path: str, line: str) -> None:
    # one write(2) with O_APPEND: Python's append mode seeks, which tracefs control files refuse
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
