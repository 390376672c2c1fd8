#!/usr/bin/env python3
"""Spec section 12, the pythonic way: obj.kversion."""

import sys

from pybpfload import Object
from pybpfload.demo import bundled_object

with Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
    kv = obj.kversion
    print(f"Kernel Version: {kv >> 16 & 0xFF}.{kv >> 8 & 0xFF}.{kv & 0xFF}")
