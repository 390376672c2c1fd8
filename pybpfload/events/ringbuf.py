"""BPF ring buffers: the consumer (:class:`RingBuffer`) and the user-space producer
(:class:`UserRingBuffer`), as libbpf's ``ring_buffer__*`` and ``user_ring_buffer__*``.

A BPF_MAP_TYPE_RINGBUF map is read through three shared mappings of its fd:
the consumer page (read-write: we publish ``consumer_pos`` there), the
producer page (read-only: ``producer_pos``) and the data area, which the
kernel maps twice in a row so that a record that wraps around the end of the
ring can be read as one contiguous slice.  Each record starts with an 8-byte
header: a u32 length whose top bits are BUSY (still being written) and
DISCARD (skip it), and a u32 the kernel uses to find its page; records start
at 8-byte aligned positions.

Callbacks and views
-------------------
A callback gets one record as a read-only, zero-copy ``memoryview`` into the
ring.  The view is only meaningful during the call: once the callback returns
the space is released to the producer, which may overwrite it (reading the
view later never crashes: the mapping stays alive as long as a view exists,
but its bytes may have changed).  Pass ``copy=True`` to get ``bytes``.

Speed
-----
:meth:`RingBuffer.consume` walks records in a tight loop; for more, hand a
callback many records at once (``batch=True``: a list of views per pass; runs
of records of one length are found with one strided header read, ~2.3x the
records per second of a per-record callback in benchmarks/bench_ringbuf.py)
or, for fixed-size records, ``record_size=N``: the callback then gets a
:class:`RecordBatch`, one zero-copy view of all complete records, whose
headers are checked in one vectorised step (tens of times faster again).

Memory ordering
---------------
libbpf reads ``producer_pos`` and each header with ``smp_load_acquire`` and
publishes ``consumer_pos`` with ``smp_store_release``; the kernel producer
advances ``producer_pos`` with a release store after writing the BUSY header,
and clears BUSY with ``xchg`` (a full barrier) after the payload is written.
Python has no atomics, but every position and header access here goes
through a ``memoryview`` cast to ``'Q'`` / ``'I'`` at a naturally aligned
index: CPython reads and writes such an item with one fixed-size ``memcpy``
that compilers emit as a single 8- or 4-byte ``mov``/``ldr``/``str``, so no
value is ever torn.  On x86-64 (TSO) every plain load already has acquire
and every plain store release semantics, so our sequence -- load
producer_pos, load header, read the payload (in the callback), then store
consumer_pos -- is exactly libbpf's.  On arm64 plain loads may be reordered
with later loads; what orders the header load before the payload loads there
is only that CPython runs thousands of instructions (and many stores)
between them, far beyond any out-of-order window, and any ``epoll_wait`` in
:meth:`poll` is a full barrier.  The consumer_pos store is issued after the
callback returned and its loads completed (their values were used), so the
producer can never overwrite a record still being read.

Threads
-------
Each :class:`Ring` is consumed under its own lock: threads calling
:meth:`RingBuffer.consume` / :meth:`RingBuffer.poll` on one RingBuffer never
hand the same record out twice (a callback may consume again from its own
thread).  :meth:`Ring.records` and :meth:`RingBuffer.stream` iterate without
the lock (a record is released between two steps of the caller's loop): use
them from one consumer only, not alongside another thread's consume.
:meth:`UserRingBuffer.reserve` is serialised by a lock, so several producer
threads may share one UserRingBuffer (libbpf leaves that to the caller);
submit and discard touch only their own record and take no lock.
"""

from __future__ import annotations

import errno
import mmap
import select
import sys
import threading
import time
import warnings
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import BPFError, BPFOSError, StateError, SyscallError

__all__ = ["RingBuffer", "Ring", "RecordBatch", "UserRingBuffer", "EpollOwner"]

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8
_FLAG_BITS = BUSY_BIT | DISCARD_BIT
_LEN_MASK = ~_FLAG_BITS & 0xFFFFFFFF
PAGE_SIZE = mmap.PAGESIZE
_RINGBUF = 27  # BPF_MAP_TYPE_RINGBUF
_USER_RINGBUF = 31  # BPF_MAP_TYPE_USER_RINGBUF

MapLike = Any  # a pybpfload.Map, an Fd, anything with fileno(), or an int fd
Callback = Callable[[Any], Optional[int]]


def _map_fd(m: MapLike) -> int:
    if isinstance(m, int):
        return m
    try:
        return int(m.fileno())
    except AttributeError:
        raise TypeError(f"expected a map, an fd or an object with fileno(), got {type(m).__name__}") from None


def wrong_map_type(what: str, fd: int, info: Any, want_type: int) -> BPFError:
    """The error for a buffer given a map of another type: names the map and both types."""
    from ..abi.uapi import MapType

    def tname(t: int) -> str:
        try:
            return MapType(t).name
        except ValueError:
            return f"map type {t}"

    name = bytes(info.name).split(b"\0", 1)[0].decode("utf-8", "replace")
    return BPFError(
        f"{what}: map {name!r} (id {info.id}, fd {fd}) is a {tname(info.type)}, not a {tname(want_type)}"
    )


def _map_geometry(fd: int, want_type: int, what: str) -> int:
    """The ring size (max_entries) of a ring buffer map, after checking its type."""
    from ..syscall import commands
    from ..abi.uapi import MapInfo

    info = commands.obj_get_info_by_fd(fd, MapInfo())
    if info.type != want_type:
        raise wrong_map_type(what, fd, info, want_type)
    size = int(info.max_entries)
    if size <= 0 or size & (size - 1) or size % PAGE_SIZE:
        raise BPFError(f"{what}: ring size {size} is not a power-of-2 multiple of the page size")
    if 2 * size + PAGE_SIZE > sys.maxsize:
        raise BPFOSError(errno.E2BIG, f"{what}: ring of {size} bytes is too big to map")
    return size


def _mmap(fd: int, length: int, prot: int, offset: int, what: str) -> mmap.mmap:
    try:
        return mmap.mmap(fd, length, flags=mmap.MAP_SHARED, prot=prot, offset=offset)
    except OSError as e:
        raise SyscallError(e.errno or errno.EINVAL, "mmap", detail=what) from e


def _unmap(views: List[memoryview], maps: List[mmap.mmap]) -> None:
    """Release our own views then unmap; a mapping that a caller's view still
    uses is left to be unmapped when that view dies (never a dangling pointer)."""
    for v in views:
        v.release()
    for m in maps:
        try:
            m.close()
        except BufferError:
            pass


class RecordBatch:
    """A zero-copy view of ``count`` consecutive fixed-size records.

    ``view`` covers the records *with* their 8-byte headers, ``stride`` bytes
    each (``record_size + 8`` rounded up to 8); ``batch[i]`` is the payload of
    record *i* (a memoryview), iteration yields payloads.  With numpy::

        a = numpy.frombuffer(batch.view, dtype=[("hdr", "<u8"), ("data", "V16")])["data"]

    Like a callback's view, it is only valid during the callback.
    """

    __slots__ = ("view", "count", "record_size", "stride")

    def __init__(self, view: memoryview, count: int, record_size: int, stride: int) -> None:
        self.view = view
        self.count = count
        self.record_size = record_size
        self.stride = stride

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> memoryview:
        if i < 0:
            i += self.count
        if not 0 <= i < self.count:
            raise IndexError("record index out of range")
        a = i * self.stride + HDR_SIZE
        return self.view[a : a + self.record_size]

    def __iter__(self) -> Iterator[memoryview]:
        v, n, s = self.view, self.record_size, self.stride
        for a in range(HDR_SIZE, self.count * s, s):
            yield v[a : a + n]

    def payloads(self) -> List[bytes]:
        """Every payload, copied."""
        return [bytes(p) for p in self]


class Ring:
    """One ring buffer map inside a :class:`RingBuffer` (libbpf's ``struct ring``)."""

    # Publish consumer_pos at least every this many bytes of records, so a
    # slow callback on a full ring frees space progressively (libbpf: after
    # every record; per record is too dear in Python).
    _PASS_FRACTION = 4
    # At most this many bytes of records per list handed to a batch callback:
    # short lists keep their views in the allocator's hot caches.
    BATCH_BYTES = 32 * 1024

    def __init__(
        self,
        index: int,
        map_fd: int,
        callback: Callable[..., Any],
        *,
        copy: bool = False,
        batch: bool = False,
        record_size: Optional[int] = None,
        _memory: Optional[Tuple[Any, Any, Any, int]] = None,
    ) -> None:
        if record_size is not None and (record_size <= 0 or record_size & _FLAG_BITS):
            raise ValueError(f"record_size must be positive, got {record_size}")
        if record_size is not None and (copy or batch):
            raise ValueError("record_size gives RecordBatch views; it excludes copy and batch")
        self.index = index
        self.map_fd = map_fd
        self.callback = callback
        self._lock = threading.RLock()  # one consumer at a time (a callback may re-enter)
        self._maps: List[mmap.mmap] = []
        if _memory is not None:  # (consumer page, producer page, data twice over, size): tests
            cons, prod, data, self.size = _memory
        else:
            self.size = _map_geometry(map_fd, _RINGBUF, "ring buffer")
            try:
                cons = _mmap(map_fd, PAGE_SIZE, mmap.PROT_READ | mmap.PROT_WRITE, 0, "ring buffer consumer page")
                self._maps.append(cons)
                prod = _mmap(map_fd, PAGE_SIZE, mmap.PROT_READ, PAGE_SIZE, "ring buffer producer page")
                self._maps.append(prod)
                data = _mmap(map_fd, 2 * self.size, mmap.PROT_READ, 2 * PAGE_SIZE, "ring buffer data pages")
                self._maps.append(data)
            except BaseException:
                _unmap([], self._maps)
                raise
        self._mask = self.size - 1
        self._cons = memoryview(cons).cast("B").cast("Q")
        self._prod = memoryview(prod).cast("B").cast("Q")
        self._data = memoryview(data).cast("B")
        self._u32 = self._data.cast("I")
        self._views = [self._cons, self._prod, self._u32, self._data]
        self._raw = data
        # What slicing yields: a memoryview (zero copy) or, from the mmap itself, bytes.
        self._src: Any = data if copy else self._data
        self._record_size = record_size
        self._held = 0
        self._batch_bytes = self.BATCH_BYTES
        self._pass_bytes = max(self.size // self._PASS_FRACTION, PAGE_SIZE)
        if record_size is not None:
            self._stride = (record_size + HDR_SIZE + 7) & ~7
            self._hdr_pattern = record_size.to_bytes(4, sys.byteorder)
            self._run: Callable[[], int] = self._process_fixed
        elif batch:
            self._run = self._process_batch
        else:
            self._run = self._process_each

    # ------------------------------------------------------------ positions
    @property
    def consumer_pos(self) -> int:
        """Bytes consumed so far (ring__consumer_pos)."""
        return self._cons[0]

    @property
    def producer_pos(self) -> int:
        """Bytes reserved by producers so far (ring__producer_pos)."""
        return self._prod[0]

    def avail_data(self) -> int:
        """Bytes of records (committed or not) not yet consumed (ring__avail_data_size)."""
        return self._prod[0] - self._cons[0]

    def consume(self) -> int:
        """Process this ring's available records (ring__consume); see RingBuffer.consume."""
        return self._process()

    def _process(self) -> int:
        """One consumer at a time: the walk reads and publishes consumer_pos."""
        with self._lock:
            if self._cons is None:
                raise StateError("ring buffer is closed")
            return self._run()

    # ------------------------------------------------------------ the hot loop
    def _walk(self, cb: Callable[[Any], Any], hold: bool = False) -> int:
        """Hand every committed record to ``cb``; return the count, or the
        first negative int ``cb`` returned (that record counts as consumed).

        With ``hold``, walk one pass only and publish nothing: the position
        reached is left in ``_held`` for the caller to publish."""
        cq = self._cons
        pq = self._prod
        u32 = self._u32
        src = self._src
        mask = self._mask
        step = self._batch_bytes if hold else self._pass_bytes
        n = 0
        cons = cq[0]
        try:
            while True:
                end = pq[0]
                if cons >= end:
                    return n
                if end - cons > step:
                    end = cons + step
                while cons < end:
                    off = cons & mask
                    ln = u32[off >> 2]
                    if ln & 0xC0000000:
                        if ln & BUSY_BIT:
                            return n
                        cons += ((ln & _LEN_MASK) + 15) & ~7  # discarded: skip it
                        continue
                    cons += (ln + 15) & ~7
                    off += 8
                    r = cb(src[off : off + ln])
                    if r:
                        if r < 0:
                            return r
                        n += 1
                    else:
                        n += 1
                if hold:
                    return n
                cq[0] = cons
        finally:
            if hold:
                self._held = cons
            else:
                cq[0] = cons

    def _process_each(self) -> int:
        return self._walk(self.callback)

    def _process_batch(self) -> int:
        """Lists of up to BATCH_BYTES of records, each released once its callback returns.

        Consecutive records of one length (the common case: one event struct)
        are found by reading their headers with one strided slice, and their
        views made by one list comprehension, instead of a step of the
        record-by-record walk each."""
        cq, pq, u32, src, mask = self._cons, self._prod, self._u32, self._src, self._mask
        limit = self._batch_bytes
        order = sys.byteorder
        total = 0
        while True:
            cons = pos = cq[0]
            end = pq[0]
            if cons >= end:
                return total
            if end - cons > limit:
                end = cons + limit
            out: List[Any] = []
            while pos < end:
                off = pos & mask
                ln = u32[off >> 2]
                if ln & 0xC0000000:
                    if ln & BUSY_BIT:
                        break
                    pos += ((ln & _LEN_MASK) + 15) & ~7  # discarded: skip it
                    continue
                stride = (ln + 15) & ~7
                n = (end - pos) // stride
                if n > 1:  # how many records from here have this very header (committed, same length)
                    q = stride >> 2
                    i = off >> 2
                    pat = ln.to_bytes(4, order)
                    lens = u32[i : i + n * q : q].tobytes()
                    if lens.count(pat) != n:
                        n = _matching_prefix(lens, pat, n)
                else:
                    n = 1
                start = off + 8  # the data pages are mapped twice: a run never needs wrapping
                out += [src[o : o + ln] for o in range(start, start + n * stride, stride)]
                pos += n * stride
            if pos == cons:
                return total
            try:
                r = self.callback(out) if out else None
            finally:
                cq[0] = pos  # released only once the callback is done
            total += len(out)
            if r and r < 0:
                return r

    def _process_fixed(self) -> int:
        cq = self._cons
        pq = self._prod
        stride = self._stride
        q = stride >> 2
        pat = self._hdr_pattern
        size = self._record_size
        assert size is not None
        total = 0
        cons = cq[0]
        while True:
            avail = pq[0] - cons
            n = avail // stride
            off = cons & self._mask
            if n:
                if n * stride > self._pass_bytes:
                    n = self._pass_bytes // stride
                i = off >> 2
                lens = self._u32[i : i + n * q : q].tobytes()
                if lens.count(pat) != n:
                    n = _matching_prefix(lens, pat, n)
            if n:
                cons += n * stride
                try:
                    r = self.callback(RecordBatch(self._data[off : off + n * stride], n, size, stride))
                finally:
                    cq[0] = cons
                total += n
                if r and r < 0:
                    return r
                continue
            if cons >= pq[0]:
                return total
            # The record at cons is busy, discarded or of another size.
            ln = self._u32[off >> 2]
            if ln & BUSY_BIT:
                return total
            cons += ((ln & _LEN_MASK) + 15) & ~7
            cq[0] = cons
            if not ln & DISCARD_BIT:
                raise BPFError(
                    f"ring buffer fd {self.map_fd}: a {ln}-byte record in a ring read as {size}-byte records (skipped)"
                )

    # ------------------------------------------------------------ iteration
    def records(self, copy: bool = False) -> Iterator[Any]:
        """Yield available records one at a time, releasing each one when the
        next is asked for (a record is consumed once the loop body has run).

        Leaving the loop early (``break``) consumes the record the body had when
        the generator is closed: at once for a plain ``for`` loop in CPython, or
        call ``close()`` on the generator."""
        cq, pq, u32, mask = self._cons, self._prod, self._u32, self._mask
        src = self._raw if copy else self._data
        cons = cq[0]
        while cons < pq[0]:
            off = cons & mask
            ln = u32[off >> 2]
            if ln & BUSY_BIT:
                return
            nxt = cons + (((ln & _LEN_MASK) + 15) & ~7)
            if not ln & DISCARD_BIT:
                try:
                    yield src[off + 8 : off + 8 + ln]
                except GeneratorExit:  # the loop that got it left: it is consumed
                    if self._cons is not None:  # unless the ring was closed meanwhile
                        cq[0] = nxt
                    raise
            cons = nxt
            cq[0] = cons

    def _close(self) -> None:
        with self._lock:  # not while another thread walks the ring
            views, self._views = self._views, []
            self._cons = self._prod = self._u32 = self._data = self._src = self._raw = None  # type: ignore[assignment]
            maps, self._maps = self._maps, []
            _unmap(views, maps)


def _matching_prefix(lens: bytes, pat: bytes, n: int) -> int:
    """How many leading 4-byte items of ``lens`` equal ``pat`` (binary search
    on bytes.count over prefixes: n matches in 4n bytes tile them exactly)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if lens.count(pat, 0, 4 * mid) == mid:
            lo = mid
        else:
            hi = mid - 1
    return lo


class EpollOwner:
    """What RingBuffer, UserRingBuffer and PerfBuffer share: one epoll fd,
    closed once by ``close()`` (which subclasses extend), a context manager,
    ``fileno()`` for selectors, and a ResourceWarning when left open."""

    _epoll: Optional[select.epoll] = None
    _what = "buffer"

    def _live(self) -> select.epoll:
        ep = self._epoll
        if ep is None:
            raise StateError(f"{self._what} is closed")
        return ep

    def epoll_fd(self) -> int:
        """The epoll fd (ring_buffer__epoll_fd / perf_buffer__epoll_fd)."""
        return self._live().fileno()

    def fileno(self) -> int:
        return self.epoll_fd()

    def _close_epoll(self) -> None:
        ep, self._epoll = self._epoll, None
        if ep is not None:
            ep.close()

    def close(self) -> None:
        self._close_epoll()

    @property
    def closed(self) -> bool:
        return self._epoll is None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_epoll", None) is not None:
            warnings.warn(f"unclosed {type(self).__name__}", ResourceWarning, stacklevel=2)
            self.close()


class AsyncConsumer(EpollOwner):
    """What RingBuffer and PerfBuffer share under asyncio: wait on the running
    event loop (no thread) for the epoll fd, then :meth:`consume`."""

    def consume(self) -> int:  # pragma: no cover - both subclasses define it
        raise NotImplementedError

    # ------------------------------------------------------------ asyncio
    async def wait_async(self, timeout: Optional[float] = None) -> bool:
        """Wait on the running event loop until some ring has data; False on timeout."""
        import asyncio

        fd = self.epoll_fd()
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[bool]" = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(True)

        loop.add_reader(fd, ready)
        try:
            if timeout is None:
                return await fut
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                return False
        finally:
            loop.remove_reader(fd)

    async def poll_async(self, timeout: Optional[float] = None) -> int:
        """Like :meth:`poll` on the running event loop (timeout in seconds, None: forever)."""
        n = self.consume()
        if n:
            return n
        if await self.wait_async(timeout):
            return self.consume()
        return 0


class RingBuffer(AsyncConsumer):
    """Consume one or more BPF ring buffers (libbpf's ``struct ring_buffer``).

    ``RingBuffer(map, callback)`` is ``ring_buffer__new``; :meth:`add` adds
    more rings, all waited on by one epoll fd (:meth:`poll`,
    :meth:`epoll_fd`, or ``fileno()`` for :mod:`selectors`).  A callback
    returning a negative int stops processing: :meth:`consume` / :meth:`poll`
    return that value (libbpf's semantics; the record it was given counts as
    consumed).  An exception from a callback propagates the same way.

    Per ring, the callback gets, depending on :meth:`add`'s options:

    - by default a zero-copy ``memoryview`` of each record (valid during the call),
    - ``copy=True``: ``bytes``,
    - ``batch=True``: a list of all records available in one pass (views, or
      bytes with ``copy=True``), the count being returned as usual,
    - ``record_size=N``: a :class:`RecordBatch`, one zero-copy view of every
      complete N-byte record in one step.
    """

    _what = "ring buffer"

    def __init__(self, map: Optional[MapLike] = None, callback: Optional[Callable[..., Any]] = None, **options: Any) -> None:
        self._epoll: Optional[select.epoll] = select.epoll()
        self._rings: List[Ring] = []
        self._by_fd: Dict[int, Ring] = {}
        if map is not None:
            if callback is None:
                self.close()
                raise TypeError("RingBuffer(map, callback): a callback is needed with a map")
            try:
                self.add(map, callback, **options)
            except BaseException:
                self.close()
                raise

    def add(
        self,
        map: MapLike,
        callback: Callable[..., Any],
        *,
        copy: bool = False,
        batch: bool = False,
        record_size: Optional[int] = None,
        type: Optional[str] = None,
        btf: Any = None,
    ) -> Ring:
        """Add a ring buffer map (ring_buffer__add); returns its :class:`Ring`.

        ``type`` (a BTF type name, ``"struct event"``) makes the callback get decoded
        records (value objects, a copy; see :mod:`pybpfload.events.typedrec`), typed by
        the map's object BTF or ``btf``.
        """
        ep = self._live()
        if type is not None:
            if batch or record_size is not None:
                raise ValueError("type= decodes one record per call: not with batch or record_size")
            from .typedrec import ring_callback

            callback = ring_callback(map, type, btf, callback)
        fd = _map_fd(map)
        ring = Ring(len(self._rings), fd, callback, copy=copy, batch=batch, record_size=record_size)
        try:
            ep.register(fd, select.EPOLLIN)
        except OSError as e:
            ring._close()
            raise SyscallError(e.errno or errno.EINVAL, "epoll_ctl", detail=f"adding ring buffer fd {fd}") from e
        self._rings.append(ring)
        self._by_fd[fd] = ring
        return ring

    @property
    def rings(self) -> Tuple[Ring, ...]:
        return tuple(self._rings)

    def ring(self, index: int) -> Ring:
        """The ring added index-th (ring_buffer__ring)."""
        return self._rings[index]

    # ------------------------------------------------------------ consuming
    def consume(self) -> int:
        """Process every ring's available records without waiting (ring_buffer__consume).

        Returns the number of records handed to callbacks, or the negative
        value a callback returned to stop.
        """
        self._live()
        total = 0
        for ring in self._rings:
            r = ring._process()
            if r < 0:
                return r
            total += r
        return total

    def consume_ring(self, index: int) -> int:
        """Process one ring (ring_buffer__consume_ring)."""
        self._live()
        return self._rings[index]._process()

    def poll(self, timeout_ms: int = -1) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) for data, then process the
        rings that have some (ring_buffer__poll).  Returns as :meth:`consume`."""
        ep = self._live()
        try:
            events = ep.poll(timeout_ms / 1000.0 if timeout_ms >= 0 else -1, max(len(self._rings), 1))
        except OSError as e:
            raise SyscallError(e.errno or errno.EINVAL, "epoll_wait") from e
        total = 0
        by_fd = self._by_fd
        for fd, _ in events:
            r = by_fd[fd]._process()
            if r < 0:
                return r
            total += r
        return total

    async def stream(self, copy: bool = False) -> AsyncIterator[Tuple[int, Any]]:
        """``async for index, record in rb.stream()``: every record of every
        ring, forever, waiting on the event loop (no thread) when all are empty.

        ``index`` is the ring's index; ``record`` a memoryview valid until the
        next iteration (bytes with ``copy=True``).  A record is consumed once
        the loop body that got it has finished; callbacks are not called.
        After a ``break``, the record the body had is consumed when the stream
        is closed (``await stream.aclose()``, or ``contextlib.aclosing``);
        Python closes an abandoned async generator only later, from the event
        loop, so close it before consuming the ring another way.
        """
        while True:
            got = False
            for ring in list(self._rings):
                for rec in ring.records(copy):
                    got = True
                    yield ring.index, rec
            if not got:
                await self.wait_async()

    def __aiter__(self) -> AsyncIterator[Tuple[int, Any]]:
        return self.stream()

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Unmap every ring and close the epoll fd (ring_buffer__free); idempotent."""
        for ring in getattr(self, "_rings", ()):
            ring._close()
        self._rings = []
        self._by_fd = {}
        self._close_epoll()

    def __repr__(self) -> str:
        return f"<RingBuffer rings={len(self._rings)}{' closed' if self.closed else ''}>"


class UserRingBuffer(EpollOwner):
    """Produce records from Python into a BPF_MAP_TYPE_USER_RINGBUF map, which
    a program drains with ``bpf_user_ringbuf_drain`` (libbpf's ``user_ring_buffer``).

    ``reserve(size)`` returns a writable memoryview into the ring; fill it,
    then :meth:`submit` or :meth:`discard` it.  The kernel drains records in
    order and stops at the first one not yet submitted.  :meth:`write` does
    all three steps for a bytes-like object.
    """

    _what = "user ring buffer"

    def __init__(self, map: MapLike) -> None:
        fd = _map_fd(map)
        self.map_fd = fd
        self.size = _map_geometry(fd, _USER_RINGBUF, "user ring buffer")
        self._mask = self.size - 1
        self._maps: List[mmap.mmap] = []
        self._pending: Dict[int, Tuple[memoryview, int]] = {}
        self._reserve_lock = threading.Lock()  # producers share producer_pos
        self._epoll: Optional[select.epoll] = None
        try:
            cons = _mmap(fd, PAGE_SIZE, mmap.PROT_READ, 0, "user ring buffer consumer page")
            self._maps.append(cons)
            # producer page + data (mapped twice), read-write, in one mapping as libbpf does
            prod = _mmap(fd, PAGE_SIZE + 2 * self.size, mmap.PROT_READ | mmap.PROT_WRITE, PAGE_SIZE, "user ring buffer producer and data pages")
            self._maps.append(prod)
            self._epoll = select.epoll()
            self._epoll.register(fd, select.EPOLLOUT)
        except OSError as e:
            self.close()
            if isinstance(e, BPFError):
                raise
            raise SyscallError(e.errno or errno.EINVAL, "epoll_ctl", detail=f"adding user ring buffer fd {fd}") from e
        except BaseException:
            self.close()
            raise
        self._cons = memoryview(cons).cast("Q")
        pv = memoryview(prod)
        self._prod = pv[:PAGE_SIZE].cast("Q")
        self._data = pv[PAGE_SIZE:]
        self._u32 = self._data.cast("I")
        self._views = [self._cons, self._prod, self._u32, self._data, pv]

    def avail_space(self) -> int:
        """Free bytes in the ring (headers included)."""
        self._live()
        return self.size - (self._prod[0] - self._cons[0])

    def reserve(self, size: int) -> memoryview:
        """Reserve ``size`` bytes (user_ring_buffer__reserve); raises BPFOSError
        ENOSPC when the ring is full, E2BIG when it could never fit.

        Thread-safe: producers share producer_pos, so reservations are made
        one at a time (acquire/release rather than ``with``: half the cost).
        """
        lock = self._reserve_lock
        lock.acquire()
        try:
            self._live()
            if size < 0 or size & _FLAG_BITS:
                raise BPFOSError(errno.E2BIG, f"user ring buffer: cannot reserve {size} bytes")
            cons = self._cons[0]
            prod = self._prod[0]
            total = (size + HDR_SIZE + 7) & ~7
            if total > self.size:
                raise BPFOSError(errno.E2BIG, f"user ring buffer: a {size}-byte record does not fit in {self.size} bytes")
            if self.size - (prod - cons) < total:
                raise BPFOSError(errno.ENOSPC, "user ring buffer: no space")
            off = prod & self._mask
            i = off >> 2
            self._u32[i] = size | BUSY_BIT
            self._u32[i + 1] = 0
            # Release store: the BUSY header is visible before the new producer_pos (TSO; see the module notes).
            self._prod[0] = prod + total
            view = self._data[off + HDR_SIZE : off + HDR_SIZE + size]
            self._pending[id(view)] = (view, i)
            return view
        finally:
            lock.release()

    def reserve_blocking(self, size: int, timeout_ms: int = -1) -> memoryview:
        """Reserve, waiting up to ``timeout_ms`` (-1: forever) for a drain to
        free space (user_ring_buffer__reserve_blocking)."""
        if timeout_ms < -1:
            raise ValueError(f"timeout_ms must be >= 0 or -1, got {timeout_ms}")
        deadline = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000.0
        while True:
            try:
                return self.reserve(size)
            except BPFOSError as e:
                if e.errno != errno.ENOSPC:
                    raise
            left = -1.0 if deadline is None else deadline - time.monotonic()
            if deadline is not None and left <= 0:
                return self.reserve(size)
            assert self._epoll is not None
            self._epoll.poll(left, 1)

    def _commit(self, view: memoryview, discard: bool) -> None:
        # No lock: the header belongs to this record alone (its producer's), and
        # _pending.pop is atomic, so one record is committed once.
        self._live()
        entry = self._pending.pop(id(view), None)
        if entry is None or entry[0] is not view:
            raise StateError("user ring buffer: not a reserved record (already submitted or discarded?)")
        i = entry[1]
        u32 = self._u32
        try:
            ln = u32[i] & ~BUSY_BIT & 0xFFFFFFFF
            if discard:
                ln |= DISCARD_BIT
            # One aligned 4-byte store clears BUSY after the payload stores (libbpf: xchg).
            u32[i] = ln
        except (TypeError, ValueError):  # closed by another thread meanwhile
            raise StateError("user ring buffer is closed") from None
        view.release()

    def submit(self, view: memoryview) -> None:
        """Make a reserved record visible to the kernel (user_ring_buffer__submit)."""
        self._commit(view, False)

    def discard(self, view: memoryview) -> None:
        """Give a reserved record back; the kernel skips it (user_ring_buffer__discard)."""
        self._commit(view, True)

    def write(self, data: Any, timeout_ms: int = 0) -> None:
        """Reserve, copy ``data`` in and submit (waiting up to ``timeout_ms`` for space)."""
        src = memoryview(data).cast("B")
        view = self.reserve(len(src)) if timeout_ms == 0 else self.reserve_blocking(len(src), timeout_ms)
        view[:] = src
        self.submit(view)

    def close(self) -> None:
        """Unmap the ring and close the epoll fd (user_ring_buffer__free); idempotent."""
        lock = getattr(self, "_reserve_lock", None)  # absent when __init__ failed early
        if lock is not None:
            with lock:  # not in the middle of another thread's reserve
                self._close_unlocked()
        else:
            self._close_unlocked()

    def _close_unlocked(self) -> None:
        for view, _ in getattr(self, "_pending", {}).values():
            view.release()
        self._pending = {}
        views = getattr(self, "_views", [])
        self._views = []
        self._cons = self._prod = self._u32 = self._data = None  # type: ignore[assignment]
        maps, self._maps = getattr(self, "_maps", []), []
        _unmap(views, maps)
        self._close_epoll()
