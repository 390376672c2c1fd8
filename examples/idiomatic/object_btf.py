#!/usr/bin/env python3
"""Spec section 14, the pythonic way: obj.btf is a pybpfload.btf.Spec."""

import sys

from pybpfload import Object
from pybpfload.btf import types as T
from pybpfload.demo import bundled_object

with Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
    btf = obj.btf
    if btf is None:
        sys.exit("the object has no BTF")
    print(f"Number of BTF types: {len(btf)}")
    func = btf.find("xdp_count", T.Func)
    print(f"{func.name}: {btf.describe(func.type)}")
