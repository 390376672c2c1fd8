"""PerfBuffer on the kernel: an XDP program (tests/eventprogs.py) calls
bpf_perf_event_output(ctx, map, BPF_F_CURRENT_CPU, ...) once per test run,
with the test pinned to each CPU in turn; expected samples are computed from
the producer's inputs (sequence number + packet bytes)."""

from __future__ import annotations

import gc
import selectors
import struct
import subprocess
import warnings
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from .conftest import require_tool
from .eventprogs import PerfProducer as Producer
from .eventprogs import bpftool_loadall, usable_cpus

from pybpfload import BPFError, Map, MapType, StateError
from pybpfload.kernel.maps import possible_cpus
from pybpfload.events.perfbuf import PerfBuffer, online_cpus

kernel = pytest.mark.kernel


def padded(size: int) -> int:
    """The raw sample size the kernel reports: size + 4 rounded up to 8, minus 4."""
    return ((size + 4 + 7) & ~7) - 4


@kernel
def test_events_from_every_cpu(perf_map: Map) -> None:
    prod = Producer(perf_map, 16)
    got: List[Tuple[int, bytes]] = []
    with PerfBuffer(perf_map, lambda cpu, d: got.append((cpu, bytes(d)))) as pb:
        assert set(pb.cpus) == set(online_cpus()) & set(range(possible_cpus()))
        assert pb.buffer_cnt == len(pb.cpus)
        where: Dict[int, int] = {}
        s = 0
        for cpu in usable_cpus():
            prod.run(5, cpu)
            for _ in range(5):
                s += 1
                where[s] = cpu
        n = 0
        while n < s:
            got_now = pb.poll(1000)
            assert got_now > 0
            n += got_now
        assert n == s
    assert all(len(d) == padded(16) for _, d in got)
    assert sorted((c, d[:16]) for c, d in got) == sorted((where[k], prod.expected(k)) for k in range(1, s + 1))
    prod.close()


@kernel
def test_lost_count_when_the_consumer_is_slow(perf_map: Map) -> None:
    prod = Producer(perf_map, 64)
    samples: List[int] = []
    lost: List[Tuple[int, int]] = []
    cpu = usable_cpus()[0]
    with PerfBuffer(perf_map, lambda c, d: samples.append(struct.unpack_from("=Q", d)[0]), lambda c, n: lost.append((c, n)), page_cnt=1) as pb:
        prod.run(1000, cpu)  # far more than one page holds
        first = pb.consume()
        assert 0 < first < 1000
        assert lost == []  # reported with the next sample that fits
        prod.run(1, cpu)
        assert pb.consume() == 1
    assert samples == list(range(1, first + 1)) + [1001]
    assert lost == [(cpu, 1000 - first)]
    prod.close()


@kernel
def test_records_wrapping_the_perf_ring(perf_map: Map) -> None:
    prod = Producer(perf_map, 40)  # 56-byte records do not divide the ring
    got: List[Any] = []
    cpu = usable_cpus()[0]
    with PerfBuffer(perf_map, lambda c, d: got.append(d), page_cnt=1, copy=True) as pb:
        total = 0
        for rnd in range(40):
            n = 30 + rnd % 20
            prod.run(n, cpu)
            assert pb.consume() == n
            total += n
    assert total * 56 > 10 * 4096
    assert all(type(d) is bytes for d in got)
    assert all(len(d) == padded(40) for d in got)
    # the padding bytes are whatever the ring held before: compare the payloads
    assert [d[:40] for d in got] == [prod.expected(k) for k in range(1, total + 1)]
    prod.close()


@kernel
def test_epoll_fd_selectors_and_timeout(perf_map: Map) -> None:
    prod = Producer(perf_map, 8)
    got: List[bytes] = []
    with PerfBuffer(perf_map, lambda c, d: got.append(bytes(d))) as pb, selectors.DefaultSelector() as sel:
        sel.register(pb, selectors.EVENT_READ)
        assert sel.select(0) == []
        assert pb.poll(30) == 0
        prod.run(1, usable_cpus()[-1])
        assert len(sel.select(1)) == 1
        assert pb.consume() == 1
        assert [d[:8] for d in got] == [prod.expected(1)] and len(got[0]) == padded(8)
        sel.unregister(pb)
    prod.close()


@kernel
def test_consume_buffer_and_fds(perf_map: Map) -> None:
    prod = Producer(perf_map, 8)
    got: List[int] = []
    with PerfBuffer(perf_map, lambda c, d: got.append(c)) as pb:
        cpu = usable_cpus()[-1]
        i = pb.cpus.index(cpu)
        assert pb.buffer_fd(i) > 2
        prod.run(3, cpu)
        others = [j for j in range(pb.buffer_cnt) if j != i]
        assert sum(pb.consume_buffer(j) for j in others) == 0
        assert pb.consume_buffer(i) == 3
        assert got == [cpu] * 3
    prod.close()


@kernel
def test_map_smaller_than_cpu_count() -> None:
    with Map.create(MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 1) as m:
        with PerfBuffer(m, lambda c, d: None) as pb:
            assert pb.cpus == (0,)


@kernel
def test_close_removes_the_fds_from_the_map(perf_map: Map) -> None:
    prod = Producer(perf_map, 8)
    got: List[int] = []
    pb = PerfBuffer(perf_map, lambda c, d: got.append(c))
    pb.close()
    pb.close()
    assert pb.closed
    with pytest.raises(StateError):
        pb.poll(0)
    with PerfBuffer(perf_map, lambda c, d: got.append(c)) as pb2:
        prod.run(2, usable_cpus()[0])
        assert pb2.consume() == 2
    prod.close()


@kernel
def test_rejects_bad_arguments(perf_map: Map) -> None:
    with pytest.raises(ValueError):
        PerfBuffer(perf_map, print, page_cnt=3)
    with Map.create(MapType.BPF_MAP_TYPE_ARRAY, 4, 4, 1) as m:
        with pytest.raises(BPFError, match="PERF_EVENT_ARRAY"):
            PerfBuffer(m, print)


@kernel
def test_unclosed_perf_buffer_warns(perf_map: Map) -> None:
    pb = PerfBuffer(perf_map, print)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        del pb
        gc.collect()
    assert any(issubclass(x.category, ResourceWarning) for x in w)


@kernel
@pytest.mark.oracle
def test_fixture_perfbuf_produced_through_bpftool(bpffs: Path, tmp_path: Path) -> None:
    """libbpf (through bpftool) loads the C fixture, sizes its perf map to the
    CPU count and runs the producer; we read the pinned map's events."""
    progs, maps = bpftool_loadall("perfbuf_emit.bpf.o", bpffs)
    bpftool = require_tool("bpftool")
    pkt = bytes(range(100, 164))
    (tmp_path / "pkt").write_bytes(pkt)
    got: List[Tuple[int, bytes]] = []
    with Map.from_pin(str(maps / "events")) as m, PerfBuffer(m, lambda c, d: got.append((c, bytes(d)))) as pb:
        assert m.max_entries == possible_cpus()
        subprocess.run(
            [bpftool, "prog", "run", "pinned", str(progs / "perf_output"), "data_in", str(tmp_path / "pkt"), "repeat", "5"],
            check=True,
            capture_output=True,
        )
        n = 0
        while n < 5:
            k = pb.poll(1000)
            assert k > 0
            n += k
        assert len({c for c, _ in got}) == 1 and got[0][0] in pb.cpus  # one test run, one CPU
    assert [d[:16] for _, d in got] == [struct.pack("=Q", s) + pkt[8:16] for s in range(1, 6)]


@kernel
def test_asyncio_stream_and_poll(perf_map: Map) -> None:
    """PerfBuffer under asyncio, as RingBuffer: no thread, the producer runs from the loop."""
    import asyncio

    prod = Producer(perf_map, 16)
    cpu = usable_cpus()[0]
    polled: List[bytes] = []

    async def main() -> Tuple[int, int, List[Tuple[int, bytes]]]:
        with PerfBuffer(perf_map, lambda c, d: polled.append(bytes(d))) as pb:
            empty = await pb.poll_async(timeout=0.05)
            asyncio.get_running_loop().call_later(0.02, prod.run, 3, cpu)
            n = await pb.poll_async(timeout=5)
            while n < 3:
                n += await pb.poll_async(timeout=5)
            asyncio.get_running_loop().call_later(0.02, prod.run, 2, cpu)
            out: List[Tuple[int, bytes]] = []
            async for c, data in pb.stream():
                out.append((c, data))
                if len(out) == 2:
                    break
            return empty, n, out

    try:
        empty, n, out = asyncio.run(asyncio.wait_for(main(), 10))
    finally:
        prod.close()
    assert (empty, n) == (0, 3)
    assert [d[:16] for d in polled] == [prod.expected(k) for k in (1, 2, 3)]
    assert [(c, d[:16]) for c, d in out] == [(cpu, prod.expected(k)) for k in (4, 5)]
    assert all(isinstance(d, bytes) for _, d in out)


@kernel
def test_open_at_interpreter_exit_prints_nothing() -> None:
    """A PerfBuffer (or RingBuffer) still open when the interpreter exits: silence, exit code 0."""
    code = (
        "import pybpfload as b\n"
        "from pybpfload import Map, MapType, RingBuffer\n"
        "from pybpfload.kernel.maps import possible_cpus\n"
        "m = Map.create(MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, possible_cpus(), name='pe')\n"
        "pb = b.PerfBuffer(m, lambda cpu, data: None)\n"
        "r = Map.create(MapType.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, name='rb')\n"
        "rb = RingBuffer(r, lambda d: None)\n"
    )
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


@kernel
def test_wrong_map_type_names_map_and_types() -> None:
    from pybpfload import RingBuffer

    with Map.create(MapType.BPF_MAP_TYPE_HASH, 4, 4, 1, name="not_perf") as m:
        with pytest.raises(BPFError) as ei:
            PerfBuffer(m, print)
        text = str(ei.value)
        assert "'not_perf'" in text and "BPF_MAP_TYPE_HASH" in text and "BPF_MAP_TYPE_PERF_EVENT_ARRAY" in text
        with pytest.raises(BPFError) as ei:
            RingBuffer(m, print)
        text = str(ei.value)
        assert "'not_perf'" in text and "BPF_MAP_TYPE_HASH" in text and "BPF_MAP_TYPE_RINGBUF" in text
