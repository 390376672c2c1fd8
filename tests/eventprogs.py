"""Hand-assembled XDP programs that produce ring/perf buffer events.

Each run (``prog.test_run(packet, repeat=N)``) bumps a u64 sequence number
kept at key 0 of a one-entry ARRAY map ``seq`` and emits one record of
``size`` bytes: the sequence number (native u64) followed by bytes 8.. of
the test packet, so both contents and order are checked by the tests.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .asm import (
    ADD,
    B,
    DW,
    JEQ,
    JGT,
    MOD,
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R10,
    W,
    Asm,
    MAP_LOOKUP_ELEM,
    PERF_EVENT_OUTPUT,
    RINGBUF_DISCARD,
    RINGBUF_OUTPUT,
    RINGBUF_RESERVE,
    RINGBUF_SUBMIT,
    alu,
    call,
    exit_,
    ld_map_fd,
    ldx,
    mov,
    mov32,
    movr,
    st,
    stx,
)

from pybpfload import Map, MapType, Program, ProgType

XDP_PASS = 2
PKT_MIN = 14  # XDP test runs need at least an Ethernet header
MAX_SIZE = 496  # records are staged on the 512-byte stack


def seq_map() -> Map:
    """The one-entry ARRAY map holding the sequence number."""
    return Map.create(MapType.BPF_MAP_TYPE_ARRAY, 4, 8, 1, name="seq")


def read_seq(m: Map) -> int:
    return struct.unpack("=Q", bytes(m[0]))[0]


def _bump_seq(a: Asm, seq_fd: int) -> None:
    """r6 = ctx, r7 = ++seq (jumps to 'out' if the lookup fails)."""
    a(movr(R6, R1), st(W, R10, -4, 0), ld_map_fd(R1, seq_fd), movr(R2, R10), alu(ADD, R2, -4), call(MAP_LOOKUP_ELEM))
    a.j(JEQ, R0, 0, "out")
    a(ldx(DW, R7, R0, 0), alu(ADD, R7, 1), stx(DW, R0, 0, R7))


def _packet(a: Asm, size: int) -> None:
    """Copy the packet's first ``size`` bytes (rounded up to 8) to the stack
    with the sequence number in front; r2 = their stack address."""
    if not 8 <= size <= MAX_SIZE:
        raise ValueError(f"record size must be in 8..{MAX_SIZE}")
    n = (size + 7) & ~7
    a(ldx(W, R2, R6, 0), ldx(W, R3, R6, 4), movr(R4, R2), alu(ADD, R4, n))
    a.jr(JGT, R4, R3, "out")
    a(stx(DW, R10, -n, R7))
    for off in range(8, n, 8):
        a(ldx(DW, R5, R2, off), stx(DW, R10, off - n, R5))
    a(movr(R2, R10), alu(ADD, R2, -n))


def _finish(a: Asm) -> bytes:
    a.label("out")
    a(mov(R0, XDP_PASS), exit_())
    return a.bytes()


def ringbuf_output_prog(ring_fd: int, seq_fd: int, size: int) -> Program:
    """bpf_ringbuf_output(ring, packet, size, 0) per run."""
    a = Asm()
    _bump_seq(a, seq_fd)
    _packet(a, size)
    a(ld_map_fd(R1, ring_fd), mov(R3, size), mov(R4, 0), call(RINGBUF_OUTPUT))
    return Program.load(_finish(a), ProgType.BPF_PROG_TYPE_XDP, name="rb_output")


def ringbuf_reserve_prog(ring_fd: int, seq_fd: int, size: int, discard_every: int = 0) -> Program:
    """bpf_ringbuf_reserve(ring, size); record = sequence number then zeros;
    discarded (bpf_ringbuf_discard) when seq % discard_every == 0, else submitted."""
    if size < 8:
        raise ValueError("records carry a u64 sequence number: size >= 8")
    a = Asm()
    _bump_seq(a, seq_fd)
    a(ld_map_fd(R1, ring_fd), mov(R2, size), mov(R3, 0), call(RINGBUF_RESERVE))
    a.j(JEQ, R0, 0, "out")
    a(stx(DW, R0, 0, R7))
    for off in range(8, size - size % 8, 8):
        a(st(DW, R0, off, 0))
    for off in range(size - size % 8, size):
        a(st(B, R0, off, 0))
    a(movr(R1, R0), mov(R2, 0))
    if discard_every:
        a(movr(R3, R7), alu(MOD, R3, discard_every))
        a.j(JEQ, R3, 0, "discard")
    a(call(RINGBUF_SUBMIT))
    a(mov(R0, 0))
    a.j(JEQ, R0, 0, "out")  # always taken
    a.label("discard")
    a(call(RINGBUF_DISCARD))
    return Program.load(_finish(a), ProgType.BPF_PROG_TYPE_XDP, name="rb_reserve")


def perf_output_prog(perf_fd: int, seq_fd: int, size: int) -> Program:
    """bpf_perf_event_output(ctx, perf_map, BPF_F_CURRENT_CPU, packet, size) per run."""
    a = Asm()
    _bump_seq(a, seq_fd)
    _packet(a, size)
    a(movr(R4, R2), movr(R1, R6), ld_map_fd(R2, perf_fd), mov32(R3, -1), mov(R5, size), call(PERF_EVENT_OUTPUT))
    return Program.load(_finish(a), ProgType.BPF_PROG_TYPE_XDP, name="perf_output")


def packet(size: int, fill: Optional[Sequence[int]] = None) -> bytes:
    """A test packet: zeros for the sequence number, then a recognisable pattern."""
    n = max((size + 7) & ~7, PKT_MIN)
    body = bytes(fill) if fill is not None else bytes((i * 7 + 3) & 0xFF for i in range(n))
    return bytes(8) + body[8:n] if len(body) >= n else bytes(8) + body[8:] + bytes(n - len(body))


def expected_record(seq: int, pkt: bytes, size: int) -> bytes:
    return struct.pack("=Q", seq) + pkt[8:size]


def bpftool_loadall(obj: str, bpffs: Path) -> Tuple[Path, Path]:
    """libbpf (through bpftool, the oracle) loads fixture ``obj`` and pins its
    programs under bpffs/progs and its maps under bpffs/maps."""
    from .conftest import fixture_path, require_tool  # pytest only: the benchmark imports this module too

    bpftool = require_tool("bpftool")
    progs, maps = bpffs / "progs", bpffs / "maps"
    subprocess.run([bpftool, "prog", "loadall", str(fixture_path(obj)), str(progs), "pinmaps", str(maps)], check=True, capture_output=True)
    return progs, maps


class PerfProducer:
    """perf_output_prog writing ``size``-byte records to ``m`` on the CPU it runs on; records numbered from 1."""

    def __init__(self, m: Map, size: int) -> None:
        self.seq = seq_map()
        self.size = size
        self.pkt = packet(size)
        self.prog = perf_output_prog(m.fd, self.seq.fd, size)
        self.n = 0

    def run(self, n: int, cpu: int) -> List[bytes]:
        """``n`` records on ``cpu``; the records expected from this run."""
        old = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
        try:
            self.prog.test_run(self.pkt, repeat=n)
        finally:
            os.sched_setaffinity(0, old)
        self.n += n
        return [self.expected(s) for s in range(self.n - n + 1, self.n + 1)]

    def expected(self, s: int) -> bytes:
        return expected_record(s, self.pkt, self.size)

    def close(self) -> None:
        self.prog.close()
        self.seq.close()


def usable_cpus() -> List[int]:
    """Online CPUs this process may run on."""
    from pybpfload.events.perfbuf import online_cpus

    return sorted(set(online_cpus()) & os.sched_getaffinity(0))
