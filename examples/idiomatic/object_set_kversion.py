#!/usr/bin/env python3
"""Spec section 13, the pythonic way: assign obj.kversion before load."""

import sys

from pybpfload import Object, StateError
from pybpfload.demo import bundled_object

with Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
    obj.kversion = (6 << 16) | (5 << 8) | 0  # KERNEL_VERSION(6, 5, 0) == 394496
    kv = obj.kversion
    print(f"Kernel Version: {kv >> 16 & 0xFF}.{kv >> 8 & 0xFF}.{kv & 0xFF}")
    obj.load()
    try:
        obj.kversion = 0
    except StateError as e:
        print(f"after load: {e}")
