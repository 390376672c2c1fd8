"""libbpf.h's ring buffers, perf buffers and user ring buffers
(``ring_buffer__*``, ``perf_buffer__*``, ``user_ring_buffer__*``)."""

from __future__ import annotations

import errno as _errno
from typing import Any, Callable, Optional

from .. import log as _log
from ..abi.uapi import MapType
from ..errors import BPFError
from ..events.perfbuf import PerfBuffer
from ..events.ringbuf import RingBuffer, UserRingBuffer
from ..syscall import commands
from ._common import _code, _int_api, _null


# ---------------------------------------------------------------------------- ring buffers
RingBufferSampleFn = Callable[[Any, memoryview, int], Optional[int]]


def _sample(cb: RingBufferSampleFn, ctx: Any) -> Callable[[memoryview], int]:
    def call(view: memoryview) -> int:
        r = cb(ctx, view, len(view))
        return int(r) if r else 0

    return call


def ring_buffer__new(map_fd: int, sample_cb: RingBufferSampleFn, ctx: Any = None, opts: Any = None) -> Optional[RingBuffer]:
    """A ring buffer manager over map ``map_fd``; ``sample_cb(ctx, data, size)`` per record.

    ``data`` is a read-only memoryview valid during the call; a negative
    return stops :func:`ring_buffer__poll` / :func:`ring_buffer__consume`,
    which return it.
    """
    try:
        return RingBuffer(map_fd, _sample(sample_cb, ctx))
    except BPFError as e:
        _log.warn("ringbuf: failed to add ring buffer map fd %d: %s", map_fd, e)
        return _null(_code(e))


@_int_api
def ring_buffer__add(rb: RingBuffer, map_fd: int, sample_cb: RingBufferSampleFn, ctx: Any = None) -> int:
    rb.add(map_fd, _sample(sample_cb, ctx))
    return 0


@_int_api
def ring_buffer__poll(rb: RingBuffer, timeout_ms: int) -> int:
    """Wait up to ``timeout_ms`` for records and consume them; the count, or a negative error."""
    return min(rb.poll(timeout_ms), 0x7FFFFFFF)


@_int_api
def ring_buffer__consume(rb: RingBuffer) -> int:
    return min(rb.consume(), 0x7FFFFFFF)


def ring_buffer__epoll_fd(rb: RingBuffer) -> int:
    return rb.epoll_fd()


def ring_buffer__free(rb: Optional[RingBuffer]) -> None:
    if rb is not None:
        rb.close()



# ---------------------------------------------------------------------------- perf buffers
PerfBufferSampleFn = Callable[[Any, int, memoryview, int], Any]
PerfBufferLostFn = Callable[[Any, int, int], Any]


class _LibbpfPerfBuffer(PerfBuffer):
    """A PerfBuffer with libbpf's slot numbering: ``slot_cnt`` slots (possible CPUs, at most the
    map's max_entries), the rings of the online CPUs first, the rest empty (-ENOENT)."""

    slot_cnt: int = 0

    def poll_ready(self, timeout_ms: int) -> int:
        """libbpf's poll: process the rings epoll reports, return how many there were."""
        ep = self._live()
        try:
            events = ep.poll(timeout_ms / 1000.0 if timeout_ms >= 0 else -1, max(self.slot_cnt, 1))
        except InterruptedError:
            return -_errno.EINTR
        for fd, _ in events:
            self._by_fd[fd].process(self.sample_callback, self.lost_callback, self.copy)
        return len(events)


def perf_buffer__new(
    map_fd: int, page_cnt: int, sample_cb: Optional[PerfBufferSampleFn], lost_cb: Optional[PerfBufferLostFn], ctx: Any = None, opts: Any = None
) -> Optional[PerfBuffer]:
    """Per-CPU perf rings for a PERF_EVENT_ARRAY map (see :class:`pybpfload.events.perfbuf.PerfBuffer`).

    ``sample_cb(ctx, cpu, data, size)`` per sample (``data`` a read-only
    memoryview valid during the call), ``lost_cb(ctx, cpu, count)`` for
    dropped samples.  None with errno: EINVAL when ``page_cnt`` is not a
    power of 2 or the map is not a perf event array, EBADF for a bad fd.
    """
    from ..kernel.maps import possible_cpus
    from ..abi.uapi import MapInfo

    if page_cnt <= 0 or page_cnt & (page_cnt - 1):
        _log.warn("page count should be power of two, but is %d", page_cnt)
        return _null(_errno.EINVAL)

    def sample(cpu: int, data: Any) -> None:
        if sample_cb is not None:
            sample_cb(ctx, cpu, data, len(data))

    lost = (lambda cpu, cnt: lost_cb(ctx, cpu, cnt)) if lost_cb is not None else None
    try:
        info = commands.obj_get_info_by_fd(map_fd, MapInfo())
        if info.type != MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            _log.warn("map '%s' should be BPF_MAP_TYPE_PERF_EVENT_ARRAY", info.name.decode(errors="replace"))
            return _null(_errno.EINVAL)
        pb = _LibbpfPerfBuffer(map_fd, sample, lost, page_cnt=page_cnt)
    except BPFError as e:
        return _null(_code(e))
    cnt = possible_cpus()
    pb.slot_cnt = min(cnt, info.max_entries) if info.max_entries else cnt
    return pb


def _slot(pb: Any, buf_idx: int) -> int:
    if buf_idx < 0 or buf_idx >= getattr(pb, "slot_cnt", pb.buffer_cnt):
        return -_errno.EINVAL
    if buf_idx >= pb.buffer_cnt:
        return -_errno.ENOENT  # an offline CPU's slot
    return 0


@_int_api
def perf_buffer__poll(pb: PerfBuffer, timeout_ms: int) -> int:
    """Wait up to ``timeout_ms`` (-1: forever) and process the rings with data; the number of such rings."""
    if isinstance(pb, _LibbpfPerfBuffer):
        return pb.poll_ready(timeout_ms)
    pb.poll(timeout_ms)
    return 0


@_int_api
def perf_buffer__consume(pb: PerfBuffer) -> int:
    """Process every ring without waiting; 0 or a negative error (libbpf returns no count)."""
    pb.consume()
    return 0


@_int_api
def perf_buffer__consume_buffer(pb: PerfBuffer, buf_idx: int) -> int:
    """Process ring slot ``buf_idx``; -EINVAL out of range, -ENOENT for an empty slot."""
    err = _slot(pb, buf_idx)
    if err:
        return err
    pb.consume_buffer(buf_idx)
    return 0


def perf_buffer__buffer_cnt(pb: PerfBuffer) -> int:
    """Number of slots (possible CPUs, at most the map's max_entries), as libbpf counts them."""
    return int(getattr(pb, "slot_cnt", pb.buffer_cnt))


@_int_api
def perf_buffer__buffer_fd(pb: PerfBuffer, buf_idx: int) -> int:
    """The perf event fd of slot ``buf_idx``; -EINVAL out of range, -ENOENT for an empty slot."""
    return _slot(pb, buf_idx) or pb.buffer_fd(buf_idx)


def perf_buffer__epoll_fd(pb: PerfBuffer) -> int:
    return pb.epoll_fd()


def perf_buffer__free(pb: Optional[PerfBuffer]) -> None:
    """Remove the rings from the map and release everything; None is ignored."""
    if pb is not None:
        pb.close()


# ---------------------------------------------------------------------------- user ring buffers
def user_ring_buffer__new(map_fd: int, opts: Any = None) -> Optional[UserRingBuffer]:
    """A producer for a BPF_MAP_TYPE_USER_RINGBUF map; None with errno (EINVAL: wrong map type, EBADF)."""
    try:
        return UserRingBuffer(map_fd)
    except BPFError as e:
        _log.warn("user ringbuf: failed to map fd=%d: %s", map_fd, e)
        return _null(_code(e) if isinstance(e, OSError) else _errno.EINVAL)  # not a user ring buffer: EINVAL, as libbpf


def user_ring_buffer__reserve(rb: UserRingBuffer, size: int) -> Optional[memoryview]:
    """A writable memoryview of ``size`` bytes in the ring; None with errno ENOSPC (full) or E2BIG."""
    try:
        return rb.reserve(size)
    except BPFError as e:
        return _null(_code(e))


def user_ring_buffer__reserve_blocking(rb: UserRingBuffer, size: int, timeout_ms: int) -> Optional[memoryview]:
    """As :func:`user_ring_buffer__reserve`, waiting up to ``timeout_ms`` (-1: forever) for space."""
    if timeout_ms < -1:
        return _null(_errno.EINVAL)
    try:
        return rb.reserve_blocking(size, timeout_ms)
    except BPFError as e:
        return _null(_code(e))


def user_ring_buffer__submit(rb: UserRingBuffer, sample: memoryview) -> None:
    """Hand a reserved sample to the kernel."""
    rb.submit(sample)


def user_ring_buffer__discard(rb: UserRingBuffer, sample: memoryview) -> None:
    """Give a reserved sample back (the kernel skips it)."""
    rb.discard(sample)


def user_ring_buffer__free(rb: Optional[UserRingBuffer]) -> None:
    """Unmap the ring (pending samples are dropped); None is ignored."""
    if rb is not None:
        rb.close()
