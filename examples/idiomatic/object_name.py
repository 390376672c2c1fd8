#!/usr/bin/env python3
"""Spec section 11, the pythonic way: obj.name."""

import sys

from pybpfload import Object
from pybpfload.demo import bundled_object

with Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
    print(f"object name: {obj.name}")
