#!/usr/bin/env python3
"""Spec section 17: the ring buffer API (ring_buffer__new / __poll / __consume / __epoll_fd / __free).

The spec gives no demo.  This one makes a BPF_MAP_TYPE_RINGBUF map and a
small XDP program that calls bpf_ringbuf_output(&rb, &value, 8, 0), runs it
three times with BPF_PROG_TEST_RUN and polls the records back.
"""

import os
import struct
import sys

from pybpfload.insn import Insn
from pybpfload.libbpf import (
    BpfTestRunOpts,
    bpf_map_create,
    bpf_prog_load,
    bpf_prog_test_run_opts,
    ring_buffer__consume,
    ring_buffer__epoll_fd,
    ring_buffer__free,
    ring_buffer__new,
    ring_buffer__poll,
)
from pybpfload.syscall import MapType, ProgType

BPF_FUNC_ringbuf_output = 130


def program(map_fd: int) -> bytes:
    """*(u64 *)(r10 - 8) = 0x1234; bpf_ringbuf_output(map, r10 - 8, 8, 0); return XDP_PASS."""
    insns = [
        Insn(0x7A, dst=10, off=-8, imm=0x1234),
        Insn(0x18, dst=1, src=1, imm=map_fd),  # r1 = map (ld_imm64, BPF_PSEUDO_MAP_FD)
        Insn(0xBF, dst=2, src=10),
        Insn(0x07, dst=2, imm=-8),
        Insn(0xB7, dst=3, imm=8),
        Insn(0xB7, dst=4, imm=0),
        Insn(0x85, imm=BPF_FUNC_ringbuf_output),
        Insn(0xB7, dst=0, imm=2),
        Insn(0x95),
    ]
    return b"".join(i.encode() for i in insns)


def handle_event(ctx, data, size) -> int:
    (value,) = struct.unpack("<Q", data)
    print("%s: record of %d bytes: %#x" % (ctx, size, value))
    return 0


def main() -> int:
    map_fd = bpf_map_create(MapType.BPF_MAP_TYPE_RINGBUF, "events", 0, 0, 4096, None)
    if map_fd < 0:
        sys.stderr.write("Error creating ring buffer map: %d\n" % map_fd)
        return 1
    code = program(map_fd)
    prog_fd = bpf_prog_load(ProgType.BPF_PROG_TYPE_XDP, "emit", "GPL", code, len(code) // 8, None)
    if prog_fd < 0:
        sys.stderr.write("Error loading program: %d\n" % prog_fd)
        os.close(map_fd)
        return 1

    rb = ring_buffer__new(map_fd, handle_event, "events", None)
    if rb is None:
        sys.stderr.write("Error creating ring buffer\n")
        return 1
    print("epoll fd is valid: %s" % (ring_buffer__epoll_fd(rb) >= 0))

    for _ in range(3):
        bpf_prog_test_run_opts(prog_fd, BpfTestRunOpts(data_in=bytes(64)))
    n = ring_buffer__poll(rb, 100)  # timeout in ms
    print("ring_buffer__poll: %d records" % n)
    print("ring_buffer__consume: %d records" % ring_buffer__consume(rb))

    ring_buffer__free(rb)
    os.close(prog_fd)
    os.close(map_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
