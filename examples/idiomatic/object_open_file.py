#!/usr/bin/env python3
"""Spec section 5, the pythonic way: Object.open's keyword options are bpf_object_open_opts."""

import sys

from pybpfload import Object
from pybpfload.demo import bundled_object

path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()
with Object.open(path) as obj:
    print(f"opened {obj.name}")
with Object.open(path, object_name="renamed", kernel_log_level=1) as obj:
    print(f"opened with object_name: {obj.name}")
