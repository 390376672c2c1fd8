"""Typed maps and events: keys, values and records decoded with the object's BTF.

fixtures/src/typed_maps.bpf.c (clang 14 and clang 19 builds): one XDP program,
run with BPF_PROG_TEST_RUN, fills a hash map of struct flow -> struct stats,
a per-CPU array of struct stats, and emits a `struct event` with a 3-byte tail
to a ring buffer and a perf buffer.
"""

from __future__ import annotations

from typing import Any, Iterator, List

import pytest

from pybpfload.errors import BPFError
from pybpfload.kernel.maps import Map
from pybpfload.object import Object

from .conftest import fixture_path

pytestmark = pytest.mark.kernel

FLOW = {"saddr": 0x0A000001, "port": 80, "proto": 6}


@pytest.fixture(params=["typed_maps.bpf.o", "typed_maps.clang19.bpf.o"])
def obj(request: pytest.FixtureRequest) -> Iterator[Object]:
    o = Object.open(fixture_path(request.param), typed=True)
    o.load()
    o.programs["fill"].test_run(bytes(64))
    yield o
    o.close()


def test_struct_keys_and_values(obj: Object) -> None:
    flows = obj.maps["flows"]
    assert flows.typed
    v = flows[FLOW]
    assert v.packets == 1 and v.delta == -5
    assert v.state == 1 and v.state.name == "ST_RUNNING"
    assert v.comm == b"pybpfload" and len(v.comm.raw) == 16
    assert (v.hi, v.lo) == (3, 9)
    assert v.as_u32 == 0x04030201 and v.as_bytes == b"\x01\x02\x03\x04"  # the anonymous union's members
    (k,) = list(flows.keys())
    assert k == FLOW and k.port == 80
    assert flows.dump() == {k: v}
    assert dict(flows.items()) == {k: v}


def test_writes_typed_and_checked(obj: Object) -> None:
    flows = obj.maps["flows"]
    key = {"saddr": 1, "port": 2, "proto": 3}
    flows[key] = {"packets": 5, "comm": "x", "state": "ST_DONE", "as_bytes": b"ab"}
    v = flows[key]
    assert v.packets == 5 and v.state.name == "ST_DONE" and v.as_u32 == 0x6261
    v.delta = -7
    flows[key] = v
    assert flows[key].delta == -7
    with pytest.raises(BPFError, match=r"map 'flows' value\.packets: -1 does not fit"):
        flows[key] = {"packets": -1}
    with pytest.raises(BPFError, match=r"map 'flows' value\.nope: .*no member 'nope'"):
        flows[key] = {"nope": 1}
    assert flows[key].delta == -7  # nothing written
    plain = obj.maps["plain"]
    plain[1] = -3
    assert plain[1] == -3 and plain.dump() == {0: 0, 1: -3, 2: 0, 3: 0}


def test_raw_view_and_formats_still_win(obj: Object) -> None:
    flows = obj.maps["flows"]
    raw = flows.raw.dump()
    (kb,) = raw
    assert isinstance(kb, bytes) and len(kb) == 8 and isinstance(raw[kb], bytes)
    assert flows[kb].packets == 1  # bytes keys still work on a typed map
    plain = obj.maps["plain"]
    plain.value_format = "<q"
    plain[2] = -9
    assert plain[2] == -9
    plain.value_format = None  # back to the BTF type
    assert plain[2] == -9 and plain.raw[(2).to_bytes(4, "little")] == (-9).to_bytes(8, "little", signed=True)
    plain.typed = False
    assert plain[2] == (-9).to_bytes(8, "little", signed=True)


def test_per_cpu_values_are_lists_of_typed_values(obj: Object) -> None:
    per = obj.maps["percpu_stats"][0]
    assert isinstance(per, list) and all(s.packets in (0, 1) for s in per)
    assert sum(s.packets for s in per) == 1
    assert [s.state.name for s in per if s.packets] == ["ST_DONE"]


def test_fd_maps_keep_fd_semantics(obj: Object) -> None:
    assert not obj.maps["pb"].typed and obj.maps["pb"]._vstruct is None
    with Object.open(fixture_path("map_in_map.bpf.o"), typed=True) as o:
        assert o.maps["outer_arr"]._vstruct is None and o.maps["jmp_table"]._vstruct is None


def test_typed_by_default_and_bytes_with_typed_false() -> None:
    """Issue 18: Object.open, open_mem and Map.from_id type maps unless told typed=False."""
    path = fixture_path("typed_maps.bpf.o")
    with Object.open(path) as o:
        assert o.maps["flows"].typed and o.maps["plain"].typed and o.maps["percpu_stats"].typed
        o.load()
        o.programs["fill"].test_run(bytes(64))
        ((k, v),) = o.maps["flows"].items()
        assert k == FLOW and v.packets == 1 and v.comm == b"pybpfload"
        assert o.maps["plain"][0] == 0 and isinstance(o.maps["plain"][0], int)
        with Map.from_id(o.maps["flows"].id) as again:  # typed from the kernel's BTF too
            assert again.typed and again[FLOW] == v._asdict()  # another BTF, another value class: compared as dicts
        with Map.from_id(o.maps["flows"].id, typed=False) as again:
            assert not again.typed and again[bytes(k)] == bytes(v)
    with Object.open_mem(path.read_bytes()) as o:
        assert o.maps["flows"].typed
    with Object.open(path, typed=False) as o:
        flows, plain = o.maps["flows"], o.maps["plain"]
        assert not flows.typed and not plain.typed
        o.load()
        o.programs["fill"].test_run(bytes(64))
        ((k, v),) = flows.items()
        assert isinstance(k, bytes) and len(k) == flows.key_size
        assert isinstance(v, bytes) and len(v) == flows.value_size
        assert plain[0] == bytes(8)
        per = o.maps["percpu_stats"][0]
        assert isinstance(per, list) and all(isinstance(s, bytes) and len(s) == o.maps["percpu_stats"].value_size for s in per)


def test_typed_ring_and_perf_buffer_records(obj: Object) -> None:
    from pybpfload.events.perfbuf import PerfBuffer
    from pybpfload.events.ringbuf import RingBuffer

    ring: List[Any] = []
    perf: List[Any] = []
    rb = RingBuffer(obj.maps["rb"], ring.append, type="struct event")
    pb = PerfBuffer(obj.maps["pb"], lambda cpu, r: perf.append(r), type="event")
    try:
        obj.programs["fill"].test_run(bytes(64))
        rb.consume()
        pb.consume()
    finally:
        rb.close()
        pb.close()
    assert len(ring) == 2 and len(perf) == 1  # the ring also kept the fixture's run
    for rec in ring + perf:
        assert (rec.pid, rec.ret, rec.ts, rec.comm, rec.state.name, rec.tail_len) == (42, -2, 123456789, b"ev", "ST_DONE", 3)
        assert rec._tail[:3] == b"\xaa\xbb\xcc"
    assert ring[0]._tail == b"\xaa\xbb\xcc"  # perf samples are padded to 8 bytes by the kernel
    assert ring[0].tail == b"\xaa\xbb\xcc"  # the flexible array member (u8 tail[]) holds the tail
    with pytest.raises(BPFError, match="no type 'struct nope'"):
        RingBuffer(obj.maps["rb"], ring.append, type="struct nope")


@pytest.mark.kernel
def test_values_of_one_type_compare_across_btfs() -> None:
    """The same struct decoded through two opens of the object, or through the kernel's copy
    of its BTF (Map.from_id): equal, same hash, usable as each other's dict keys."""
    p = fixture_path("typed_maps.bpf.o")
    with Object.open(p) as a, Object.open(p) as b:
        for o in (a, b):
            o.load()
            o.programs["fill"].test_run(bytes(64))
        (ka, va), = a.maps["flows"].items()
        (kb, vb), = b.maps["flows"].items()
        assert type(va) is not type(vb)  # two BTFs, two value classes
        assert va == vb and hash(va) == hash(vb) and {ka: 1}[kb] == 1
        with Map.from_id(a.maps["flows"].id) as m:
            (k2, v2), = m.items()
            assert v2 == va and k2 == ka
        vb.packets += 1  # a different value of the same type
        assert va != vb


def test_per_cpu_struct_values_aggregate_member_by_member(obj: Object) -> None:
    """v.sum() / max() / min() / avg() of a per-CPU struct value, and the toolkit's percpu_*
    on the same map from its BTF alone: numeric members (enums too) reduced, others left out."""
    import random

    from pybpfload.toolkit import percpu

    m = obj.maps["percpu_stats"]
    n = len(m[0])
    rnd = random.Random(5)
    rows = [{"packets": rnd.randrange(1 << 40), "delta": rnd.randrange(-1000, 1000), "state": rnd.randrange(3)} for _ in range(n)]
    m[0] = rows
    v = m[0]
    for how, fn in (("sum", sum), ("max", max), ("min", min)):
        want = {k: fn(r[k] for r in rows) for k in ("packets", "delta", "state")}
        got = getattr(v, how)()
        assert {k: got[k] for k in want} == want and "comm" not in got
        assert getattr(percpu, f"percpu_{how}")(m, 0) == got  # the toolkit, from the BTF layout
    assert v.avg().packets == pytest.approx(sum(r["packets"] for r in rows) / n)
    assert [x.packets for x in percpu.percpu_values(m, 0)] == [r["packets"] for r in rows]
    totals = percpu.percpu_sum_all(m)
    assert sorted(totals) == [0, 1] and totals[0] == v.sum()  # keys decoded as the map decodes them
    assert m.dump()[0].sum() == v.sum()  # the batch path's per-CPU lists aggregate the same
