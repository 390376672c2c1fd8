#!/usr/bin/env python3
"""Spec section 6: one program loaded as several instances (bpf_program__set_prep / bpf_program__nth_fd).

libbpf 0.x's prep callback is called once per instance with the program's
relocated instructions and returns that instance's.  Here instance n
returns verdict n (XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX) instead of
XDP_PASS, and instance 2 is skipped; every instance counts packets in the
object's one pkt_count map.  (libbpf 1.x removed set_prep: see
examples/idiomatic/multi_instance.py for pybpfload's modern equivalent.)
"""

import ctypes
import sys

from pybpfload.demo import bundled_object
from pybpfload.libbpf import (
    BpfTestRunOpts,
    bpf_map__lookup_elem,
    bpf_object__close,
    bpf_object__find_map_by_name,
    bpf_object__find_program_by_name,
    bpf_object__load,
    bpf_object__open_file,
    bpf_prog_test_run_opts,
    bpf_program__nth_fd,
    bpf_program__set_prep,
    libbpf_get_error,
    libbpf_set_print,
)

NR_INSTANCES = 4
VERDICTS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX"}
BPF_ALU64_MOV_K = 0xB7  # r = imm


def libbpf_print_fn(level: int, msg: str) -> int:
    return sys.stderr.write(msg) if level < 2 else 0


def prep(prog, n, insns, insns_cnt, res) -> int:
    if n == 2:
        return 0  # no instructions: instance 2 is not loaded
    for i in range(insns_cnt):
        if insns[i].code == BPF_ALU64_MOV_K and insns[i].dst_reg == 0:  # r0 = XDP_PASS
            insns[i].imm = n
    res.new_insn_ptr = insns
    res.new_insn_cnt = insns_cnt
    return 0


def main() -> int:
    libbpf_set_print(libbpf_print_fn)
    path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()

    obj = bpf_object__open_file(path, None)
    if libbpf_get_error(obj):
        sys.stderr.write("Error opening BPF object file: %s\n" % path)
        return 1
    prog = bpf_object__find_program_by_name(obj, "xdp_count")
    err = bpf_program__set_prep(prog, NR_INSTANCES, prep)
    if err:
        sys.stderr.write("Error setting prep: %d\n" % err)
        bpf_object__close(obj)
        return 1
    err = bpf_object__load(obj)
    if err:
        sys.stderr.write("Error loading BPF object: %d\n" % err)
        bpf_object__close(obj)
        return 1

    packet = bytes(64)
    for n in range(NR_INSTANCES):
        fd = bpf_program__nth_fd(prog, n)
        if fd < 0:
            print("instance %d: not loaded (%d)" % (n, fd))
            continue
        opts = BpfTestRunOpts(data_in=packet)
        err = bpf_prog_test_run_opts(fd, opts)
        if err:
            sys.stderr.write("Error running instance %d: %d\n" % (n, err))
            bpf_object__close(obj)
            return 1
        print("instance %d: verdict %d (%s)" % (n, opts.retval, VERDICTS.get(opts.retval, "?")))

    key, value = ctypes.c_uint32(0), ctypes.c_uint64(0)
    bpf_map__lookup_elem(bpf_object__find_map_by_name(obj, "pkt_count"), key, 4, value, 8, 0)
    print("pkt_count[0] = %d" % value.value)

    bpf_object__close(obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
