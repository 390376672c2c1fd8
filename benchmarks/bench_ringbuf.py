#!/usr/bin/env python3
"""Ring buffer consumer speed, every method against the same producer, in one run.

    sudo python3 benchmarks/bench_ringbuf.py [--events 400000] [--rounds 5]

The producer is an XDP program run with BPF_PROG_TEST_RUN (repeat=N) that
calls bpf_ringbuf_output once per run; each round fills the ring (untimed),
then one consumer drains it (timed).  Rounds interleave the methods so they
see the same machine state.  Callbacks are no-ops.

- floor: a bare pure-Python loop over the mmapped ring (header, BUSY/DISCARD
  bits, zero-copy slice, callback call, consumer_pos store) - the fastest
  per-record consumer pure Python allows;
- api: RingBuffer(map, cb).consume(), one memoryview per record;
- api copy: the same with copy=True (bytes per record);
- batch: add(..., batch=True), one list of views per pass;
- fixed: add(..., record_size=N), one RecordBatch view of all records;
- libbpf C: ring_buffer__consume in C (built here when clang and libbpf-dev exist).

Figures are events/s of each method's best round (the C harness: over all
rounds); compare the ratios.
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.eventprogs import packet, ringbuf_output_prog, seq_map  # noqa: E402

from pybpfload import Map, MapType  # noqa: E402
from pybpfload.events.ringbuf import RingBuffer  # noqa: E402

PAGE = mmap.PAGESIZE


def floor_consumer(map_fd: int, size: int, cb: Callable[[Any], Any]) -> Tuple[Callable[[], int], Callable[[], None]]:
    """The bare loop: its own mappings, nothing but the work a consumer must do."""
    cm = mmap.mmap(map_fd, PAGE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
    pm = mmap.mmap(map_fd, PAGE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=PAGE)
    dm = mmap.mmap(map_fd, 2 * size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=2 * PAGE)
    cq = memoryview(cm).cast("Q")
    pq = memoryview(pm).cast("Q")
    data = memoryview(dm)
    u32 = data.cast("I")
    mask = size - 1

    def consume(cq: memoryview = cq, pq: memoryview = pq, u32: memoryview = u32, data: memoryview = data,
                mask: int = mask, cb: Callable[[Any], Any] = cb) -> int:
        # every name a fast local, as in any tuned Python loop
        n = 0
        cons = cq[0]
        prod = pq[0]
        while cons < prod:
            off = cons & mask
            ln = u32[off >> 2]
            if ln & 0xC0000000:  # rare: BUSY (stop) or DISCARD (skip)
                if ln & 0x80000000:
                    break
                cons += ((ln & 0x3FFFFFFF) + 15) & ~7
                continue
            cons += (ln + 15) & ~7
            off += 8
            cb(data[off : off + ln])
            n += 1
        cq[0] = cons
        return n

    def close() -> None:
        for v in (cq, pq, u32, data):
            v.release()
        for m in (cm, pm, dm):
            m.close()

    return consume, close


def build_libbpf_harness(tmp: Path) -> Optional[Path]:
    clang = shutil.which("clang")
    if clang is None or not Path("/usr/include/bpf/libbpf.h").exists():
        return None
    exe = tmp / "bench_ringbuf_libbpf"
    src = Path(__file__).with_name("bench_ringbuf_libbpf.c")
    r = subprocess.run([clang, "-O2", "-o", str(exe), str(src), "-lbpf"], capture_output=True, text=True)
    if r.returncode:
        print(f"(libbpf harness not built: {r.stderr.strip()[:200]})", file=sys.stderr)
        return None
    return exe


def noop(_: Any) -> None:
    return None


def run_size(rec: int, events: int, rounds: int, harness: Optional[Path]) -> Dict[str, float]:
    stride = (rec + 8 + 7) & ~7
    ring_size = 1 << max(12, (events * stride - 1).bit_length())
    m = Map.create(MapType.BPF_MAP_TYPE_RINGBUF, 0, 0, ring_size, name="bench_rb")
    seq = seq_map()
    prog = ringbuf_output_prog(m.fd, seq.fd, rec)
    pkt = packet(rec)

    floor, floor_close = floor_consumer(m.fd, ring_size, noop)
    consumers: Dict[str, Callable[[], int]] = {"floor": floor}
    rbs: List[RingBuffer] = []
    for name, opts in (
        ("api", {}),
        ("api copy", {"copy": True}),
        ("batch", {"batch": True}),
        ("fixed", {"record_size": rec}),
    ):
        rb = RingBuffer(m, noop, **opts)
        rbs.append(rb)
        consumers[name] = rb.consume
    best = {k: float("inf") for k in consumers}
    for _ in range(rounds):
        for name, consume in consumers.items():
            prog.test_run(pkt, repeat=events)
            t = time.perf_counter()
            n = consume()
            best[name] = min(best[name], time.perf_counter() - t)
            if n != events:
                raise SystemExit(f"{name}: consumed {n} of {events} records")
    rates = {k: events / best[k] for k in consumers}
    if harness is not None:
        r = subprocess.run(
            [str(harness), str(m.fd), str(prog.fd), str(events), str(rounds), str(len(pkt))],
            pass_fds=(m.fd, prog.fd),
            capture_output=True,
            text=True,
        )
        if r.returncode == 0:
            n_s, t_s = r.stdout.split()
            rates["libbpf C"] = int(n_s) / float(t_s)
        else:
            print(f"(libbpf harness failed: {r.stderr.strip()[:200]})", file=sys.stderr)
    for rb in rbs:
        rb.close()
    floor_close()
    prog.close()
    seq.close()
    m.close()
    return rates


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=400_000, help="records per round for 16-byte records")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (bpf(2))", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as d:
        harness = build_libbpf_harness(Path(d))
        for rec in (16, 256):
            events = args.events if rec == 16 else max(args.events // 8, 1000)
            rates = run_size(rec, events, args.rounds, harness)
            floor = rates["floor"]
            print(f"{rec}-byte records, {events} per round x {args.rounds} rounds:")
            for name, rate in rates.items():
                print(f"  {name:10s} {rate / 1e6:9.2f} M events/s   {rate / floor:7.2f} x floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
