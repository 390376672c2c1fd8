"""Threads sharing one Map, RingBuffer, PerfBuffer or UserRingBuffer (issue 16).

bpf(2) runs without the GIL, so before each thread had its own buffers two
threads' lookups/updates wrote the same key and value buffers: threads read
other threads' values and got spurious MapKeyErrors.  Here several threads
hammer one object, each on its own keys (or its own records), and every
value a thread reads must be the one it wrote.  A tiny switch interval makes
the interpreter hand the GIL around between almost every bytecode.
"""

from __future__ import annotations

import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from pybpfload import Map, MapType as MT
from pybpfload.kernel.maps import MapKeyError, possible_cpus
from pybpfload.events.ringbuf import Ring

from .kernel_adapt import hash_lookup_and_delete

pytestmark = pytest.mark.kernel

THREADS = 4


@pytest.fixture(autouse=True)
def busy_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_threads(work: Callable[[int], None], n: int = THREADS) -> None:
    """Run work(0..n-1) in n threads started together; re-raise the first failure."""
    errors: List[BaseException] = []
    start = threading.Barrier(n)

    def body(t: int) -> None:
        try:
            start.wait()
            work(t)
        except BaseException as e:  # noqa: B036 - reported to the test below
            errors.append(e)

    ths = [threading.Thread(target=body, args=(t,)) for t in range(n)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    if errors:
        raise errors[0]


def val(t: int, i: int, rnd: int) -> bytes:
    """The value thread ``t`` writes for its i-th key in round ``rnd``."""
    return struct.pack("=IHH", i, t, rnd)


@pytest.mark.parametrize("mtype", [MT.BPF_MAP_TYPE_HASH, MT.BPF_MAP_TYPE_ARRAY])
def test_element_ops_each_thread_reads_its_own_values(mtype: MT) -> None:
    per = 64
    rounds = 40
    wrong: List[Tuple[int, int, Any, bytes]] = []
    with Map.create(mtype, 4, 8, THREADS * per, name="thr") as m:

        def work(t: int) -> None:
            keys = range(t * per, (t + 1) * per)
            for rnd in range(rounds):
                for k in keys:
                    m.update(k, val(t, k, rnd))
                for k in keys:
                    got = m.lookup(k)
                    if got != val(t, k, rnd):
                        wrong.append((t, k, got, val(t, k, rnd)))
                    if m[struct.pack("=I", k)] != val(t, k, rnd):  # bytes keys too
                        wrong.append((t, k, "bytes key", val(t, k, rnd)))
                if mtype == MT.BPF_MAP_TYPE_HASH and rnd % 2:
                    for k in keys:
                        m.delete(k)  # a spurious MapKeyError fails the test
                    for k in keys:
                        assert k not in m
                        assert m.get(k, b"gone") == b"gone"

        run_threads(work)
    assert not wrong, f"{len(wrong)} values read were not the thread's own, e.g. {wrong[:3]}"


def test_formats_ints_and_lookup_and_delete_under_threads() -> None:
    per = 50
    with Map.create(MT.BPF_MAP_TYPE_HASH, 8, 8, THREADS * per, name="thrf", key_format="=II", value_format="=Q") as m:

        atomic = hash_lookup_and_delete()  # on hash maps from 5.14: else lookup, then delete

        def work(t: int) -> None:
            for rnd in range(30):
                for i in range(per):
                    m[(t, i)] = t << 32 | rnd << 16 | i
                for i in range(per):
                    assert m[(t, i)] == t << 32 | rnd << 16 | i
                for i in range(0, per, 2):
                    if atomic:
                        assert m.lookup_and_delete((t, i)) == t << 32 | rnd << 16 | i
                    else:
                        assert m.lookup((t, i)) == t << 32 | rnd << 16 | i
                        m.delete((t, i))
                    with pytest.raises(MapKeyError):
                        m.lookup((t, i))

        run_threads(work)


def test_percpu_values_under_threads() -> None:
    ncpu = possible_cpus()
    with Map.create(MT.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, THREADS, name="thrpc", value_format="Q") as m:

        def work(t: int) -> None:
            for rnd in range(300):
                vals = [t * 1_000_000 + rnd * 100 + c for c in range(ncpu)]
                m[t] = vals
                assert m[t] == vals

        run_threads(work)


def test_next_key_under_threads() -> None:
    n = 256
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, n, name="thrnk", key_format="I") as m:

        def work(t: int) -> None:
            for _ in range(20):
                for k in range(t, n - 1, THREADS):
                    assert m.next_key(k) == struct.pack("I", k + 1)
                assert m.next_key(n - 1) is None
                assert m.next_key() == struct.pack("I", 0)
            assert list(m.keys()) == list(range(n))

        run_threads(work)


def test_batch_ops_under_threads() -> None:
    per = 100
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 8, THREADS * per, name="thrb", key_format="I") as m:

        def work(t: int) -> None:
            keys = list(range(t * per, (t + 1) * per))
            for rnd in range(25):
                vals = [val(t, k, rnd) for k in keys]
                assert m.update_batch(keys, vals) == per
                for k, v in zip(keys, vals):
                    assert m[k] == v
                d = m.dump()  # the other threads' keys come and go; ours are stable now
                assert [d[k] for k in keys] == vals
                assert dict(kv for kv in m.lookup_batch(chunk=16) if kv[0] in keys) == dict(zip(keys, vals))
                assert m.delete_batch(keys) == per
                for k in keys:
                    assert k not in m

        run_threads(work)


def test_queue_push_pop_under_threads() -> None:
    per = 200
    popped: List[int] = []
    with Map.create(MT.BPF_MAP_TYPE_QUEUE, 0, 8, THREADS * per, name="thrq", value_format="Q") as q:

        def push(t: int) -> None:
            for i in range(per):
                q.push(t * per + i)

        run_threads(push)
        lock = threading.Lock()

        def pop(t: int) -> None:
            mine: List[int] = []
            while True:
                try:
                    mine.append(q.pop())
                except MapKeyError:
                    break
            with lock:
                popped.extend(mine)

        run_threads(pop)
    assert sorted(popped) == list(range(THREADS * per))


def test_format_set_on_one_thread_is_seen_by_the_others() -> None:
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 8, 4, name="thrfmt") as m:
        m[1] = struct.pack("=Q", 77)
        seen: Dict[str, Any] = {}

        def before(t: int) -> None:
            seen["before"] = m[1]

        run_threads(before, 1)
        m.value_format = "=Q"

        def after(t: int) -> None:
            seen["after"] = m[1]

        run_threads(after, 1)
    assert seen == {"before": struct.pack("=Q", 77), "after": 77}


def test_closed_map_fails_in_every_thread() -> None:
    from pybpfload.errors import StateError

    m = Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 4, name="thrclosed")
    m[0] = 1
    m.close()

    def work(t: int) -> None:
        with pytest.raises(StateError, match="closed"):
            m.lookup(0)
        with pytest.raises(StateError, match="closed"):
            m.update(0, 1)

    run_threads(work)


# ---------------------------------------------------------------- buffers
class MemRing:
    """Plain memory laid out as a BPF ring buffer, holding ``n`` 8-byte records (0..n-1)."""

    def __init__(self, n: int) -> None:
        rec = 16  # 8-byte header + 8-byte payload
        self.size = 1 << max(12, (n * rec - 1).bit_length())
        self.cons = bytearray(8)
        self.prod = bytearray(8)
        self.data = bytearray(2 * self.size)
        for i in range(n):
            at = i * rec
            struct.pack_into("=IIQ", self.data, at, 8, 0, i)
            self.data[self.size + at : self.size + at + rec] = self.data[at : at + rec]
        self.prod[:] = struct.pack("=Q", n * rec)

    def ring(self, cb: Callable[[Any], Any], **opts: Any) -> Ring:
        return Ring(0, -1, cb, _memory=(self.cons, self.prod, self.data, self.size), **opts)


@pytest.mark.parametrize("opts", [{}, {"batch": True}, {"record_size": 8}])
def test_ring_consumed_by_several_threads_hands_out_each_record_once(opts: Dict[str, Any]) -> None:
    n = 3000
    got: List[int] = []

    def cb(rec: Any) -> None:
        recs = rec if isinstance(rec, list) else [rec] if not opts.get("record_size") else list(rec)
        for r in recs:
            got.append(struct.unpack("=Q", r)[0])
        time.sleep(0)  # let another consumer run in the middle of a pass

    mem = MemRing(n)
    ring = mem.ring(cb, **opts)
    ring._pass_bytes = ring._batch_bytes = 256  # many short passes

    def work(t: int) -> None:
        while ring.consume():
            pass

    run_threads(work)
    assert sorted(got) == list(range(n)), f"{len(got) - len(set(got))} records handed out twice"
    ring._close()


def test_perf_buffer_consumed_by_several_threads_hands_out_each_record_once(perf_map: Map) -> None:
    from pybpfload.events.perfbuf import PerfBuffer

    from .eventprogs import PerfProducer, usable_cpus

    prod = PerfProducer(perf_map, 8)
    got: List[int] = []

    def cb(cpu: int, data: Any) -> None:
        got.append(struct.unpack_from("=Q", data)[0])
        time.sleep(0)

    with PerfBuffer(perf_map, cb, page_cnt=16) as pb:
        n = 0
        for cpu in usable_cpus()[:2]:
            prod.run(500, cpu)
            n += 500

        def work(t: int) -> None:
            while pb.consume():
                pass

        run_threads(work)
    prod.close()
    assert sorted(got) == list(range(1, n + 1)), f"{len(got) - len(set(got))} records handed out twice"


def test_user_ring_buffer_shared_by_producer_threads() -> None:
    from pybpfload.syscall.features import map_type_supported
    from pybpfload.events.ringbuf import UserRingBuffer

    from .eventprogs import packet
    from .test_ringbuf import _drain_prog

    if not map_type_supported(MT.BPF_MAP_TYPE_USER_RINGBUF):
        pytest.skip("no user ring buffers before 6.1")
    per = 60
    with Map.create(MT.BPF_MAP_TYPE_USER_RINGBUF, 0, 0, 4 * 4096, name="urbthr") as m, Map.create(
        MT.BPF_MAP_TYPE_ARRAY, 4, 16, 1, name="drained"
    ) as out:
        prog = _drain_prog(m, out)
        try:
            with UserRingBuffer(m) as urb:

                def work(t: int) -> None:
                    for i in range(per):
                        v = urb.reserve(8 + (i % 3) * 8)
                        time.sleep(0)
                        v[:8] = struct.pack("=Q", t * 1000 + i)
                        urb.submit(v)

                run_threads(work)
                prog.test_run(packet(16))
                count, total = struct.unpack("=qQ", bytes(out[0]))
        finally:
            prog.close()
    assert count == THREADS * per
    assert total == sum(t * 1000 + i for t in range(THREADS) for i in range(per))
