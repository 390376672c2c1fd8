#!/usr/bin/env python3
"""Spec section 15, the pythonic way: obj.btf_fd after load (-1 before)."""

import sys

from pybpfload import Object
from pybpfload.demo import bundled_object

with Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
    print(f"before load: {obj.btf_fd}")
    obj.load()
    print(f"BTF file descriptor: {obj.btf_fd}")
