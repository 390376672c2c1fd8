#!/usr/bin/env python3
"""Spec section 10, the pythonic way: obj.pin / obj.unpin (maps and programs together)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _support import bpffs_dir  # noqa: E402

from pybpfload import BPFError, Object  # noqa: E402
from pybpfload.demo import bundled_object  # noqa: E402

with bpffs_dir() as root, Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
    obj.load()
    pin_path = os.path.join(root, "progs")
    obj.pin(pin_path)
    print(f"BPF object pinned at {pin_path}: {' '.join(sorted(os.listdir(pin_path)))}")
    obj.unpin(pin_path)
    print(f"BPF object unpinned, left: {' '.join(sorted(os.listdir(pin_path))) or 'nothing'}")
    try:
        obj.unpin(pin_path)
    except BPFError as e:  # nothing left to unpin: one clear error
        print(f"unpinning again: {type(e).__name__}, errno {e.errno}")
