"""Ring buffers: RingBuffer (consumer), its batch and asyncio forms, UserRingBuffer.

Kernel tests produce records with hand-assembled XDP programs run through
BPF_PROG_TEST_RUN (tests/eventprogs.py): each run emits the next sequence
number followed by bytes of the test packet, so every expected record is
computed from the producer's inputs.  The walker's BUSY/DISCARD/wrap logic
is also checked without the kernel over plain memory laid out like a ring.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import selectors
import shutil
import struct
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from .conftest import require_tool
from .kernel_adapt import assert_not_supported
from .eventprogs import bpftool_loadall, expected_record, packet, read_seq, ringbuf_output_prog, ringbuf_reserve_prog, seq_map

from pybpfload import BPFError, BPFOSError, Map, MapType, Program, StateError
from pybpfload.errors import NotSupportedError
from pybpfload.events.ringbuf import BUSY_BIT, DISCARD_BIT, RecordBatch, Ring, RingBuffer, UserRingBuffer

kernel = pytest.mark.kernel
PAGE = 4096


def seqs(records: List[Any]) -> List[int]:
    return [struct.unpack_from("=Q", r)[0] for r in records]


def ringbuf(size: int = 4 * PAGE) -> Map:
    return Map.create(MapType.BPF_MAP_TYPE_RINGBUF, 0, 0, size, name="rb")


class Producer:
    """A ring map plus an XDP program that writes ``size``-byte records to it."""

    def __init__(self, ring: Map, size: int, *, reserve: bool = False, discard_every: int = 0) -> None:
        self.seq = seq_map()
        self.size = size
        self.pkt = packet(size)
        if reserve:
            self.prog = ringbuf_reserve_prog(ring.fd, self.seq.fd, size, discard_every)
        else:
            self.prog = ringbuf_output_prog(ring.fd, self.seq.fd, size)

    def run(self, n: int) -> None:
        self.prog.test_run(self.pkt, repeat=n)

    def expected(self, first: int, last: int) -> List[bytes]:
        return [expected_record(s, self.pkt, self.size) for s in range(first, last + 1)]

    def close(self) -> None:
        self.prog.close()
        self.seq.close()


@pytest.fixture
def ring() -> Any:
    m = ringbuf()
    yield m
    m.close()


# ---------------------------------------------------------------- without the kernel
class FakeRing:
    """Plain memory laid out as a ring (data written twice, as the kernel maps it)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.cons = bytearray(8)
        self.prod = bytearray(8)
        self.data = bytearray(2 * size)
        self.pos = 0

    def _put(self, off: int, b: bytes) -> None:
        for i, x in enumerate(b):
            j = (off + i) % self.size
            self.data[j] = x
            self.data[j + self.size] = x

    def push(self, payload: bytes, flags: int = 0) -> int:
        at = self.pos
        self._put(at, struct.pack("=II", len(payload) | flags, 0) + payload)
        self.pos += (len(payload) + 8 + 7) & ~7
        self.prod[:] = struct.pack("=Q", self.pos)
        return at

    def set_flags(self, at: int, flags: int) -> None:
        ln = struct.unpack_from("=I", self.data, at % self.size)[0]
        self._put(at, struct.pack("=I", (ln & ~(BUSY_BIT | DISCARD_BIT)) | flags))

    @property
    def consumer_pos(self) -> int:
        return struct.unpack("=Q", self.cons)[0]

    def ring(self, cb: Any, **opts: Any) -> Ring:
        return Ring(0, -1, cb, _memory=(self.cons, self.prod, self.data, self.size), **opts)


def test_walker_honours_busy_discard_and_wraparound() -> None:
    f = FakeRing(256)
    got: List[bytes] = []
    r = f.ring(lambda v: got.append(bytes(v)))
    payloads = [bytes([i]) * (5 + 9 * i % 40) for i in range(30)]
    delivered: List[bytes] = []
    for i, p in enumerate(payloads):
        if f.pos - f.consumer_pos + 64 > f.size:
            assert r.consume() == len(delivered)
            assert got == delivered
            got.clear()
            delivered.clear()
        f.push(p, DISCARD_BIT if i % 4 == 3 else 0)
        if i % 4 != 3:
            delivered.append(p)
    assert f.pos > 3 * f.size  # wrapped several times, records straddling the end
    assert r.consume() == len(delivered) and got == delivered
    # a BUSY record stops the walk until it is committed
    got.clear()
    a = f.push(b"first")
    b = f.push(b"second", BUSY_BIT)
    f.push(b"third")
    assert r.consume() == 1 and got == [b"first"]
    assert f.consumer_pos == b
    f.set_flags(b, 0)
    assert r.consume() == 2 and got == [b"first", b"second", b"third"]
    assert f.consumer_pos == f.pos > a


def test_batch_walker_runs_of_one_length_busy_discard_and_wraparound() -> None:
    """batch=True finds runs of equal-length records with one strided header read: the
    lists must be exactly what the record-by-record walk gives, across every case."""
    f = FakeRing(512)
    lists: List[List[bytes]] = []
    r = f.ring(lambda recs: lists.append([bytes(x) for x in recs]), batch=True)
    rng = __import__("random").Random(20)
    delivered: List[bytes] = []
    for i in range(400):
        p = bytes([i & 0xFF]) * (16 if rng.random() < 0.7 else rng.randrange(1, 60))
        if f.pos - f.consumer_pos + 80 > f.size:
            assert r.consume() == len(delivered)
            assert [x for ls in lists for x in ls] == delivered
            lists.clear()
            delivered.clear()
        discard = rng.random() < 0.1
        f.push(p, DISCARD_BIT if discard else 0)
        if not discard:
            delivered.append(p)
    assert f.pos > 10 * f.size
    assert r.consume() == len(delivered) and [x for ls in lists for x in ls] == delivered
    # a BUSY record in the middle of a run stops the pass there until it is committed
    lists.clear()
    a = f.push(b"x" * 16)
    busy = f.push(b"y" * 16, BUSY_BIT)
    f.push(b"z" * 16)
    assert r.consume() == 1 and lists == [[b"x" * 16]]
    f.set_flags(busy, 0)
    assert r.consume() == 2 and lists[1:] == [[b"y" * 16, b"z" * 16]]
    assert f.consumer_pos == f.pos and a < busy


def test_fixed_batch_over_memory() -> None:
    f = FakeRing(1024)
    batches: List[Tuple[int, List[bytes]]] = []
    r = f.ring(lambda b: batches.append((len(b), [bytes(p) for p in b])), record_size=12)
    recs = [bytes([i]) * 12 for i in range(20)]
    for i, p in enumerate(recs):
        f.push(p, DISCARD_BIT if i == 7 else 0)
    busy = f.push(b"x" * 12, BUSY_BIT)
    assert r.consume() == 19
    assert [n for n, _ in batches] == [7, 12]  # split around the discarded record
    assert [p for _, ps in batches for p in ps] == recs[:7] + recs[8:]
    assert f.consumer_pos == busy
    f.set_flags(busy, 0)
    f.push(b"odd size")
    with pytest.raises(BPFError, match="8-byte record"):
        r.consume()
    assert f.consumer_pos == f.pos  # skipped past it, consumption can go on


def test_record_batch_indexing() -> None:
    raw = bytearray()
    for i in range(4):
        raw += struct.pack("=II", 5, 0) + bytes([i]) * 5 + bytes(3)
    b = RecordBatch(memoryview(bytes(raw)), 4, 5, 16)
    assert len(b) == 4
    assert bytes(b[0]) == b"\0" * 5 and bytes(b[-1]) == b"\3" * 5
    assert b.payloads() == [bytes([i]) * 5 for i in range(4)]
    with pytest.raises(IndexError):
        b[4]


def test_bad_options() -> None:
    f = FakeRing(256)
    with pytest.raises(ValueError):
        f.ring(print, record_size=0)
    with pytest.raises(ValueError):
        f.ring(print, record_size=8, copy=True)
    with pytest.raises(TypeError):
        RingBuffer("not a map", print)


# ---------------------------------------------------------------- on the kernel
@kernel
def test_exact_contents_and_count(ring: Map) -> None:
    prod = Producer(ring, 24)
    got: List[bytes] = []
    with RingBuffer(ring, lambda v: got.append(bytes(v))) as rb:
        assert rb.consume() == 0
        prod.run(100)
        assert read_seq(prod.seq) == 100
        assert rb.consume() == 100
        assert got == prod.expected(1, 100)
        r = rb.ring(0)
        assert r.consumer_pos == r.producer_pos == 100 * 32
        assert r.avail_data() == 0
        assert rb.consume() == 0
    prod.close()


@kernel
def test_views_are_zero_copy_and_copy_gives_bytes(ring: Map) -> None:
    prod = Producer(ring, 13)  # odd size: padded to 8 in the ring
    kinds: List[type] = []
    vals: List[bytes] = []
    with RingBuffer() as rb:
        rb.add(ring, lambda v: (kinds.append(type(v)), vals.append(bytes(v))) and None)
        prod.run(3)
        assert rb.consume() == 3
    assert kinds == [memoryview] * 3 and vals == prod.expected(1, 3)
    kinds.clear()
    vals.clear()
    with RingBuffer(ring, lambda v: (kinds.append(type(v)), vals.append(v)) and None, copy=True) as rb:
        prod.run(3)
        assert rb.consume() == 3
    assert kinds == [bytes] * 3 and vals == prod.expected(4, 6)
    prod.close()


@kernel
def test_discarded_records_are_skipped(ring: Map) -> None:
    prod = Producer(ring, 16, reserve=True, discard_every=3)
    got: List[bytes] = []
    with RingBuffer(ring, lambda v: got.append(bytes(v))) as rb:
        prod.run(30)
        assert rb.consume() == 20
        r = rb.ring(0)
        assert r.consumer_pos == r.producer_pos == 30 * 24  # discarded space released too
    assert seqs(got) == [s for s in range(1, 31) if s % 3]
    assert all(g[8:] == bytes(8) for g in got)
    prod.close()


@kernel
def test_ring_wraps_around_many_times() -> None:
    m = ringbuf(PAGE)
    prod = Producer(m, 40)  # stride 48 does not divide 4096: records straddle the end
    got: List[bytes] = []
    straddled = 0
    with RingBuffer(m, lambda v: got.append(bytes(v))) as rb:
        r = rb.ring(0)
        total = 0
        for rnd in range(150):
            n = 50 + rnd % 30
            prod.run(n)
            start = r.consumer_pos
            straddled += sum(1 for k in range(n) if (start + 48 * k) % PAGE + 48 > PAGE)
            assert rb.consume() == n
            total += n
    assert total * 48 > 100 * PAGE
    assert straddled > 50
    assert got == prod.expected(1, total)
    prod.close()
    m.close()


@kernel
def test_full_ring_drops_and_recovers() -> None:
    m = ringbuf(PAGE)
    prod = Producer(m, 8)  # 16 bytes per record
    got: List[bytes] = []
    with RingBuffer(m, lambda v: got.append(bytes(v))) as rb:
        prod.run(300)
        # the kernel refuses a reservation that would fill the ring to the last byte
        assert rb.consume() == 255
        prod.run(10)
        assert rb.consume() == 10
    assert seqs(got) == list(range(1, 256)) + list(range(301, 311))
    prod.close()
    m.close()


@kernel
def test_several_rings_in_one_poll() -> None:
    maps = [ringbuf(), ringbuf(2 * PAGE), ringbuf()]
    prods = [Producer(m, 16 + 8 * i) for i, m in enumerate(maps)]
    got: List[List[bytes]] = [[], [], []]
    rb = RingBuffer()
    for i, m in enumerate(maps):
        ring_obj = rb.add(m, got[i].append, copy=True)
        assert ring_obj.index == i
    assert rb.poll(0) == 0
    prods[0].run(5)
    prods[2].run(7)
    assert rb.poll(1000) == 12
    assert got == [prods[0].expected(1, 5), [], prods[2].expected(1, 7)]
    prods[1].run(3)
    assert rb.consume_ring(1) == 3 and got[1] == prods[1].expected(1, 3)
    assert len(rb.rings) == 3
    rb.close()
    for p in prods:
        p.close()
    for m in maps:
        m.close()


@kernel
def test_poll_times_out_when_empty(ring: Map) -> None:
    with RingBuffer(ring, lambda v: None) as rb:
        t = time.monotonic()
        assert rb.poll(60) == 0
        assert time.monotonic() - t >= 0.05


@kernel
def test_callback_stop_value(ring: Map) -> None:
    prod = Producer(ring, 16)
    got: List[int] = []

    def cb(v: memoryview) -> int:
        got.append(struct.unpack_from("=Q", v)[0])
        return -42 if len(got) == 3 else 7  # positive values do not stop (libbpf)

    with RingBuffer(ring, cb) as rb:
        prod.run(10)
        assert rb.consume() == -42
        assert got == [1, 2, 3]
        assert rb.ring(0).consumer_pos == 3 * 24  # the record that stopped counts as consumed
        assert rb.poll(0) == 7  # the rest
        assert got == list(range(1, 11))
    prod.close()


@kernel
def test_callback_exception_propagates(ring: Map) -> None:
    prod = Producer(ring, 16)
    got: List[int] = []

    def cb(v: memoryview) -> None:
        got.append(struct.unpack_from("=Q", v)[0])
        if len(got) == 2:
            raise KeyError("boom")

    with RingBuffer(ring, cb) as rb:
        prod.run(5)
        with pytest.raises(KeyError):
            rb.consume()
        assert rb.consume() == 3
    assert got == [1, 2, 3, 4, 5]
    prod.close()


@kernel
def test_epoll_fd_works_with_selectors(ring: Map) -> None:
    prod = Producer(ring, 16)
    with RingBuffer(ring, lambda v: None) as rb, selectors.DefaultSelector() as sel:
        sel.register(rb, selectors.EVENT_READ, "rb")
        assert rb.fileno() == rb.epoll_fd()
        assert sel.select(0) == []
        prod.run(1)
        ready = sel.select(1)
        assert [k.data for k, _ in ready] == ["rb"]
        assert rb.consume() == 1
        assert sel.select(0) == []
        sel.unregister(rb)
    prod.close()


@kernel
def test_batch_callback_gets_lists(ring: Map) -> None:
    prod = Producer(ring, 16, reserve=True, discard_every=4)
    lists: List[List[bytes]] = []
    with RingBuffer(ring, lambda recs: lists.append([bytes(r) for r in recs]), batch=True) as rb:
        prod.run(40)
        assert rb.consume() == 30
    assert len(lists) >= 1
    assert seqs([r for lst in lists for r in lst]) == [s for s in range(1, 41) if s % 4]
    prod.close()


@kernel
def test_fixed_size_batch_on_kernel_ring() -> None:
    m = ringbuf(PAGE)
    prod = Producer(m, 16)
    got: List[bytes] = []
    counts: List[int] = []

    def cb(b: RecordBatch) -> None:
        counts.append(len(b))
        assert b.stride == 24 and b.view.nbytes == 24 * len(b)
        got.extend(bytes(p) for p in b)

    with RingBuffer(m, cb, record_size=16) as rb:
        total = 0
        for n in (100, 170, 3, 150, 170, 1):  # wraps: 4096 is not a multiple of 24
            prod.run(n)
            assert rb.consume() == n
            total += n
    assert got == prod.expected(1, total)
    assert sum(counts) == total
    prod.close()
    m.close()


@kernel
def test_fixed_size_batch_skips_discards(ring: Map) -> None:
    prod = Producer(ring, 16, reserve=True, discard_every=5)
    got: List[bytes] = []
    with RingBuffer(ring, lambda b: got.extend(b.payloads()), record_size=16) as rb:
        prod.run(50)
        assert rb.consume() == 40
    assert seqs(got) == [s for s in range(1, 51) if s % 5]
    prod.close()


@kernel
def test_asyncio_stream_without_threads() -> None:
    maps = [ringbuf(), ringbuf()]
    prods = [Producer(maps[0], 16), Producer(maps[1], 32)]

    async def main() -> List[Tuple[int, bytes]]:
        rb = RingBuffer()
        for m in maps:
            rb.add(m, lambda v: None)
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, prods[0].run, 3)
        loop.call_later(0.04, prods[1].run, 2)
        loop.call_later(0.06, prods[0].run, 1)
        out: List[Tuple[int, bytes]] = []
        try:
            async for idx, rec in rb.stream():
                out.append((idx, bytes(rec)))
                if len(out) == 6:
                    break
        finally:
            rb.close()
        return out

    try:
        out = asyncio.run(asyncio.wait_for(main(), 5))
    finally:
        for p in prods:
            p.close()
        for m in maps:
            m.close()
    # each ring in its own order; how the rings interleave depends on when the
    # loop runs the producers (a loaded machine may run several at once)
    assert [r for i, r in out if i == 0] == prods[0].expected(1, 4)
    assert [r for i, r in out if i == 1] == prods[1].expected(1, 2)
    assert out[0][0] == 0


@kernel
def test_asyncio_poll(ring: Map) -> None:
    prod = Producer(ring, 16)
    got: List[bytes] = []

    async def main() -> Tuple[int, int]:
        with RingBuffer(ring, lambda v: got.append(bytes(v))) as rb:
            empty = await rb.poll_async(timeout=0.05)
            asyncio.get_running_loop().call_later(0.02, prod.run, 4)
            return empty, await rb.poll_async(timeout=5)

    try:
        assert asyncio.run(main()) == (0, 4)
    finally:
        prod.close()
    assert got == prod.expected(1, 4)


@kernel
def test_records_iterator_releases_lazily(ring: Map) -> None:
    prod = Producer(ring, 16)
    with RingBuffer(ring, lambda v: None) as rb:
        r = rb.ring(0)
        prod.run(3)
        it = r.records(copy=True)
        first = next(it)
        assert first == prod.expected(1, 1)[0]
        assert r.consumer_pos == 0  # not released while the loop body runs
        next(it)
        assert r.consumer_pos == 24
        assert list(it) == prod.expected(3, 3)
        assert r.consumer_pos == 72
    prod.close()


@kernel
def test_leaving_the_loop_consumes_the_record_it_had(ring: Map) -> None:
    """break out of records() / stream(): that record is consumed once the
    iterator is closed, never handed out again."""
    prod = Producer(ring, 16)
    got: List[bytes] = []
    with RingBuffer(ring, lambda v: got.append(bytes(v))) as rb:
        prod.run(3)
        for rec in rb.ring(0).records(copy=True):
            assert rec == prod.expected(1, 1)[0]
            break
        assert rb.consume() == 2 and got == prod.expected(2, 3)

        async def main() -> bytes:
            prod.run(3)
            stream = rb.stream(copy=True)
            async for _, rec in stream:  # noqa: B007 - the first record, returned after the loop
                break
            await stream.aclose()
            return rec

        assert asyncio.run(main()) == prod.expected(4, 4)[0]
        assert rb.consume() == 2 and got[2:] == prod.expected(5, 6)
    prod.close()


@kernel
def test_close_and_state(ring: Map) -> None:
    prod = Producer(ring, 16)
    kept: List[memoryview] = []
    rb = RingBuffer(ring, kept.append)
    prod.run(2)
    assert rb.consume() == 2
    rb.close()
    rb.close()  # idempotent
    assert rb.closed
    assert len(bytes(kept[0])) == 16  # a view kept past close stays readable, never dangling
    with pytest.raises(StateError):
        rb.consume()
    with pytest.raises(StateError):
        rb.poll(0)
    with pytest.raises(StateError):
        rb.epoll_fd()
    prod.close()


@kernel
def test_unclosed_ring_buffer_warns(ring: Map) -> None:
    rb = RingBuffer(ring, lambda v: None)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        del rb
        gc.collect()
    assert any(issubclass(x.category, ResourceWarning) for x in w)


@kernel
def test_rejects_other_map_types() -> None:
    with Map.create(MapType.BPF_MAP_TYPE_ARRAY, 4, 4, 1) as m:
        with pytest.raises(BPFError, match="not a BPF_MAP_TYPE_RINGBUF"):
            RingBuffer(m, print)
        with pytest.raises(BPFError, match="USER_RINGBUF"):
            UserRingBuffer(m)


@kernel
def test_same_map_twice_is_an_epoll_error(ring: Map) -> None:
    with RingBuffer(ring, print) as rb:
        with pytest.raises(BPFOSError) as ei:
            rb.add(ring, print)
        assert ei.value.errno == errno.EEXIST
        assert len(rb.rings) == 1


# ---------------------------------------------------------------- user ring buffer
def _drain_prog(user_rb: Map, out: Map) -> Any:
    """XDP program: bpf_user_ringbuf_drain(user_rb, cb, &sum, 0); the callback
    adds each record's first u64 to sum; stores (drained count, sum) in out[0]."""
    from .asm import (
        ADD,
        DW,
        JEQ,
        JNE,
        R0,
        R1,
        R2,
        R3,
        R4,
        R5,
        R6,
        R10,
        W,
        Asm,
        DYNPTR_READ,
        MAP_LOOKUP_ELEM,
        USER_RINGBUF_DRAIN,
        alu,
        alur,
        btf_funcs,
        call,
        exit_,
        ld_func,
        ld_map_fd,
        ldx,
        mov,
        movr,
        st,
        stx,
    )

    from pybpfload import Program, ProgType
    from pybpfload.syscall import commands

    a = Asm()
    a(st(DW, R10, -8, 0), ld_map_fd(R1, user_rb.fd))
    ld_at = a.pc
    a(b"\0" * 16)  # ld_func placeholder, patched below
    a(movr(R3, R10), alu(ADD, R3, -8), mov(R4, 0), call(USER_RINGBUF_DRAIN), movr(R6, R0))
    a(st(W, R10, -12, 0), ld_map_fd(R1, out.fd), movr(R2, R10), alu(ADD, R2, -12), call(MAP_LOOKUP_ELEM))
    a.j(JEQ, R0, 0, "out")
    a(stx(DW, R0, 0, R6), ldx(DW, R1, R10, -8), stx(DW, R0, 8, R1))
    a.label("out")
    a(mov(R0, 2), exit_())
    cb_at = a.pc
    a(movr(R6, R2), movr(R3, R1), movr(R1, R10), alu(ADD, R1, -8), mov(R2, 8), mov(R4, 0), mov(R5, 0), call(DYNPTR_READ))
    a.j(JNE, R0, 0, "ret")
    a(ldx(DW, R1, R10, -8), ldx(DW, R2, R6, 0), alur(ADD, R2, R1), stx(DW, R6, 0, R2))
    a.label("ret")
    a(mov(R0, 0), exit_())
    code = bytearray(a.bytes())
    code[ld_at * 8 : ld_at * 8 + 16] = ld_func(R2, cb_at - ld_at - 1)
    blob, (main_id, cb_id) = btf_funcs([("drain_main", True), ("drain_cb", False)])
    btf_fd, _ = commands.btf_load(blob)
    try:
        p = Program("drain", ProgType.BPF_PROG_TYPE_XDP, bytes(code))
        p._load(prog_btf_fd=btf_fd.fileno(), func_info=struct.pack("=IIII", 0, main_id, cb_at, cb_id), func_info_rec_size=8)
    finally:
        btf_fd.close()
    return p


@pytest.fixture
def user_ring() -> Any:
    """(user ring buffer, drain function), or None where the kernel has no user ring buffers (before 6.1).

    Then creating one must fail with NotSupportedError naming it; the tests end there.
    """
    from pybpfload.syscall.features import map_type_supported

    if not map_type_supported(MapType.BPF_MAP_TYPE_USER_RINGBUF):
        with pytest.raises((BPFOSError, NotSupportedError)) as ei:
            Map.create(MapType.BPF_MAP_TYPE_USER_RINGBUF, 0, 0, PAGE, name="urb").close()
        assert_not_supported(ei.value, "map type user_ringbuf", "BPF_MAP_CREATE", "urb")
        yield None
        return
    m = Map.create(MapType.BPF_MAP_TYPE_USER_RINGBUF, 0, 0, PAGE, name="urb")
    out = Map.create(MapType.BPF_MAP_TYPE_ARRAY, 4, 16, 1, name="drained")
    prog = _drain_prog(m, out)

    def drain() -> Tuple[int, int]:
        prog.test_run(packet(16))
        return struct.unpack("=qQ", bytes(out[0]))

    yield m, drain
    prog.close()
    out.close()
    m.close()


@kernel
def test_user_ringbuf_submit_and_discard_drained_by_program(user_ring: Any) -> None:
    if user_ring is None:  # refused, as the fixture asserted
        return
    m, drain = user_ring
    with UserRingBuffer(m) as urb:
        assert urb.avail_space() == PAGE
        values = [3, 5, 7, 11, 13]
        for i, v in enumerate(values):
            view = urb.reserve(8)
            view[:] = struct.pack("=Q", v)
            (urb.discard if i == 2 else urb.submit)(view)
        urb.write(struct.pack("=QQ", 1000, 99))  # 16 bytes: the program reads the first 8
        assert drain() == (5, 3 + 5 + 11 + 13 + 1000)
        assert urb.avail_space() == PAGE
        assert drain() == (0, 0)


@kernel
def test_user_ringbuf_drain_stops_at_unsubmitted(user_ring: Any) -> None:
    if user_ring is None:  # refused, as the fixture asserted
        return
    m, drain = user_ring
    with UserRingBuffer(m) as urb:
        urb.write(struct.pack("=Q", 1))
        pending = urb.reserve(8)
        pending[:] = struct.pack("=Q", 2)
        urb.write(struct.pack("=Q", 4))
        assert drain() == (1, 1)
        urb.submit(pending)
        assert drain() == (2, 6)


@kernel
def test_user_ringbuf_full_and_too_big(user_ring: Any) -> None:
    if user_ring is None:  # refused, as the fixture asserted
        return
    m, drain = user_ring
    with UserRingBuffer(m) as urb:
        n = 0
        with pytest.raises(BPFOSError) as ei:
            while True:
                urb.write(struct.pack("=Q", n))
                n += 1
        assert ei.value.errno == errno.ENOSPC
        assert n == PAGE // 16
        with pytest.raises(BPFOSError) as ei:
            urb.reserve(PAGE)
        assert ei.value.errno == errno.E2BIG
        t = time.monotonic()
        with pytest.raises(BPFOSError):
            urb.reserve_blocking(8, timeout_ms=50)
        assert time.monotonic() - t >= 0.04
        assert drain() == (n, n * (n - 1) // 2)
        v = urb.reserve_blocking(8, timeout_ms=0)
        urb.submit(v)
        with pytest.raises(StateError):
            urb.submit(v)


@kernel
def test_user_ringbuf_wraps_around(user_ring: Any) -> None:
    if user_ring is None:  # refused, as the fixture asserted
        return
    m, drain = user_ring
    with UserRingBuffer(m) as urb:
        total = 0
        for rnd in range(40):
            vals = [rnd * 100 + k for k in range(70)]
            for v in vals:
                urb.write(struct.pack("=Q", v) + bytes(v % 13))  # varying sizes
            assert drain() == (70, sum(vals))
            total += 70
        assert total * 16 > 10 * PAGE


# ---------------------------------------------------------------- C fixtures loaded by the oracle
@kernel
@pytest.mark.oracle
def _both_refuse(obj: str, bpffs: Path) -> bool:
    """True when libbpf (bpftool) cannot load fixture ``obj`` on this kernel; pybpfload must refuse it too."""
    from pybpfload import Object

    from .conftest import fixture_path

    probe = bpffs / "probe"
    res = subprocess.run([require_tool("bpftool"), "prog", "loadall", str(fixture_path(obj)), str(probe)], capture_output=True, text=True)
    if res.returncode == 0:
        shutil.rmtree(probe)
        return False
    with Object.open(fixture_path(obj)) as ours:
        with pytest.raises(BPFError):
            ours.load()
    return True


def test_fixture_ringbuf_produced_through_bpftool(bpffs: Path, tmp_path: Path) -> None:
    if _both_refuse("ringbuf_emit.bpf.o", bpffs):  # rb_loop: bpf_loop in a syscall program (5.17+)
        return
    progs, maps = bpftool_loadall("ringbuf_emit.bpf.o", bpffs)
    pkt = bytes(range(64))
    (tmp_path / "pkt").write_bytes(pkt)
    got: List[bytes] = []
    with Map.from_pin(str(maps / "events")) as m, RingBuffer(m, lambda v: got.append(bytes(v))) as rb:
        subprocess.run(
            [require_tool("bpftool"), "prog", "run", "pinned", str(progs / "rb_output"), "data_in", str(tmp_path / "pkt"), "repeat", "7"],
            check=True,
            capture_output=True,
        )
        assert rb.poll(1000) == 7
        with Program.from_pin(str(progs / "rb_loop")) as loop:  # SEC("syscall"): bpf_loop, one record
            loop.test_run(ctx=bytes(8), ctx_size_out=0)
        assert rb.consume() == 1
    assert got == [struct.pack("=Q", s) + pkt[8:16] for s in range(1, 8)] + [struct.pack("=Q", 8) + bytes(8)]


@kernel
@pytest.mark.oracle
def test_fixture_user_ringbuf_drained_checked_by_bpftool(bpffs: Path) -> None:
    if _both_refuse("ringbuf_user.bpf.o", bpffs):  # user ring buffers: 6.1+
        return
    progs, maps = bpftool_loadall("ringbuf_user.bpf.o", bpffs)
    values = [10, 20, 30, 40]
    with Map.from_pin(str(maps / "user_rb")) as m, UserRingBuffer(m) as urb:
        for v in values:
            urb.write(struct.pack("=Q", v))
        v = urb.reserve(8)
        v[:] = struct.pack("=Q", 1000)
        urb.discard(v)
        with Program.from_pin(str(progs / "drain")) as drain:
            drain.test_run(ctx=bytes(8), ctx_size_out=0)
    out = subprocess.run(
        [require_tool("bpftool"), "-j", "map", "dump", "pinned", str(maps / "drained")], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out)[0]["formatted"]["value"] == {"count": len(values), "sum": sum(values)}
