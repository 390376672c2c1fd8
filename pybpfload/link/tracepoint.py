"""Tracepoints: perf_event_open on the tracefs id, then a perf link (or the ioctl)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..syscall import perf
from ..abi import uapi as t
from .base import hook, prog_fd_of
from .perf_event import PerfEventLink, attach_perf_fd
from .tracefs import split_tracepoint, tracepoint_id

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["attach_tracepoint", "tracepoint_perf_attr", "PERF_TYPE_TRACEPOINT"]

PERF_TYPE_TRACEPOINT = 2


def tracepoint_perf_attr(tp_id: int) -> perf.PerfEventAttr:
    """The perf_event_attr of a tracepoint event (as libbpf opens it)."""
    return perf.PerfEventAttr(type=PERF_TYPE_TRACEPOINT, config=tp_id, sample_period=1, wakeup_events=1)


@hook("tracepoint", t.ProgType.BPF_PROG_TYPE_TRACEPOINT)
def attach_tracepoint(
    prog: "ProgramLike", category: str, name: Optional[str] = None, *, cookie: int = 0, force_ioctl: bool = False
) -> PerfEventLink:
    """Attach a tracepoint program to ``category/name`` (e.g. ``"syscalls/sys_enter_getpid"``).

    Needs tracefs for the tracepoint id (NotSupportedError when not mounted).
    """
    prog_fd_of(prog)
    cat, tp = split_tracepoint(category, name)
    tp_id = tracepoint_id(cat, tp)
    pfd = perf.perf_event_open(tracepoint_perf_attr(tp_id), -1, 0)
    return attach_perf_fd(
        prog, pfd, cookie=cookie, kind="tracepoint", target=f"{cat}:{tp}", force_ioctl=force_ioctl, describe={"perf_event_type": "tracepoint", "tp_name": tp}
    )
