#!/usr/bin/env python3
"""Spec section 6, the modern way: read a program's instructions, vary them, load the variants.

obj.program_variants(name, prep, n) calls prep(i, insns) with the loaded
program's relocated instructions and loads what it returns (None skips
instance i); all variants share the object's maps.
"""

import sys

from pybpfload import Object
from pybpfload.demo import bundled_object
from pybpfload.insn import decode, encode

VERDICTS = ("XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX")


def verdict(n, insns):
    """Instance n returns verdict n instead of XDP_PASS; instance 2 is the original, skipped."""
    if n == 2:
        return None
    return encode(i.with_imm(n) if (i.code, i.dst) == (0xB7, 0) else i for i in decode(insns))


with Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
    prog = obj.programs["xdp_count"]
    print(
        f"before load: {prog.insn_cnt} instructions, returns {[str(i) for i in decode(prog.insns) if i.code == 0xB7 and i.dst == 0]}"
    )
    obj.load()
    with obj.program_variants("xdp_count", verdict, len(VERDICTS)) as variants:
        for n, p in enumerate(variants):
            if p is None:
                print(f"instance {n}: not loaded")
                continue
            r = p.test_run(bytes(64))
            print(f"instance {n}: verdict {r.retval} ({VERDICTS[r.retval]})")
    print(f"pkt_count[0] = {obj.maps['pkt_count'][0]}")  # typed from the map's BTF: an int
