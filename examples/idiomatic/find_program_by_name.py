#!/usr/bin/env python3
"""Spec section 16, the pythonic way: obj.programs is a mapping (subprograms excluded)."""

import sys

from pybpfload import Object
from pybpfload.demo import bundled_object

with Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
    prog = obj.programs["xdp_count"]
    print(f"found xdp_count: section {prog.section_name}, {prog.insn_cnt} instructions")
    print(f"no_such_prog: {obj.find_program_by_name('no_such_prog')}")
