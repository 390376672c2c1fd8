#!/usr/bin/env python3
"""Spec section 4, the pythonic way: Object.open (closed by the with block)."""

import sys

from pybpfload import BPFError, Object
from pybpfload.demo import bundled_object

path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()
try:
    with Object.open(path) as obj:
        print(f"opened {obj.name}: programs {list(obj.programs)}, maps {list(obj.maps)}")
except BPFError as e:
    sys.exit(f"open ebpf object file failed: {e}")
