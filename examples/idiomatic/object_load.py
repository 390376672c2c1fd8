#!/usr/bin/env python3
"""Spec section 7, the pythonic way: obj.load(); a failure raises with the verifier log."""

import sys

from pybpfload import BPFError, Object
from pybpfload.demo import bundled_object

try:
    with Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
        obj.load()
        print("BPF object loaded successfully")
        for name, p in obj.programs.items():
            print(f"program {name}: fd {p.fd}, id {p.info().id}, tag {p.tag}")
except BPFError as e:
    sys.exit(f"Error loading BPF object: {e}")
