#!/usr/bin/env python3
"""Spec section 17, the pythonic way: Map.create, Program.load, RingBuffer."""

import struct

from pybpfload import Map, MapType, Program, ProgType, RingBuffer
from pybpfload.insn import Insn, encode

BPF_FUNC_ringbuf_output = 130

with Map.create(MapType.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, name="events") as events:
    code = encode(
        [
            Insn(0x7A, dst=10, off=-8, imm=0x1234),  # *(u64 *)(r10 - 8) = 0x1234
            Insn(0x18, dst=1, src=1, imm=events.fd),  # r1 = &events
            Insn(0xBF, dst=2, src=10),
            Insn(0x07, dst=2, imm=-8),  # r2 = r10 - 8
            Insn(0xB7, dst=3, imm=8),  # r3 = 8
            Insn(0xB7, dst=4, imm=0),  # r4 = 0
            Insn(0x85, imm=BPF_FUNC_ringbuf_output),
            Insn(0xB7, dst=0, imm=2),  # return XDP_PASS
            Insn(0x95),
        ]
    )
    with Program.load(code, ProgType.BPF_PROG_TYPE_XDP, name="emit") as prog:
        for _ in range(3):
            prog.test_run(bytes(64))
    records = []
    with RingBuffer(events, lambda rec: records.append(struct.unpack("<Q", rec)[0])) as rb:
        print(f"poll: {rb.poll(100)} records: {[hex(v) for v in records]}")
        print(f"consume: {rb.consume()} records")
