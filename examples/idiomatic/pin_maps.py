#!/usr/bin/env python3
"""Spec section 8, the pythonic way: obj.pin_maps / obj.unpin_maps (on a private bpffs directory)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _support import bpffs_dir  # noqa: E402

from pybpfload import Map, Object  # noqa: E402
from pybpfload.demo import bundled_object  # noqa: E402

with bpffs_dir() as root, Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
    obj.load()
    pin_path = os.path.join(root, "map_fd")
    obj.pin_maps(pin_path)
    print(f"maps pinned at {pin_path}: {' '.join(sorted(os.listdir(pin_path)))}")
    with Map.from_pin(os.path.join(pin_path, "pkt_count")) as again:  # another process would do this
        print(f"reopened from the pin: {again.info().name}, {again.info().type_name}")
    obj.unpin_maps(pin_path)
    print(f"maps unpinned, left: {' '.join(sorted(os.listdir(pin_path))) or 'nothing'}")
