#!/usr/bin/env python3
"""Spec section 9, the pythonic way: obj.pin_programs / obj.unpin_programs."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _support import bpffs_dir  # noqa: E402

from pybpfload import Object, Program  # noqa: E402
from pybpfload.demo import bundled_object  # noqa: E402

with bpffs_dir() as root, Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
    obj.load()
    pin_path = os.path.join(root, "progs")
    obj.pin_programs(pin_path)
    print(f"BPF programs pinned at {pin_path}: {' '.join(sorted(os.listdir(pin_path)))}")
    with Program.from_pin(os.path.join(pin_path, "xdp_count")) as again:
        print(f"reopened from the pin: same program: {again.info().id == obj.programs['xdp_count'].info().id}")
    obj.unpin_programs(pin_path)
    print(f"BPF programs unpinned, left: {' '.join(sorted(os.listdir(pin_path))) or 'nothing'}")
