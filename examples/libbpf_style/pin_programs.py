#!/usr/bin/env python3
"""Spec section 9: bpf_object__pin_programs / bpf_object__unpin_programs.

The C demo pins under /sys/fs/bpf/progs; this port pins under a private
bpffs directory (see examples/_support.py).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _support import bpffs_dir  # noqa: E402

from pybpfload.demo import bundled_object  # noqa: E402
from pybpfload.libbpf import (  # noqa: E402
    bpf_object__close,
    bpf_object__load,
    bpf_object__open_file,
    bpf_object__pin_programs,
    bpf_object__unpin_programs,
    libbpf_get_error,
    libbpf_set_print,
)


def libbpf_print_fn(level: int, msg: str) -> int:
    return sys.stderr.write(msg)


def main(root: str) -> int:
    libbpf_set_print(libbpf_print_fn)

    path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()
    pin_path = os.path.join(root, "progs")

    obj = bpf_object__open_file(path, None)
    if libbpf_get_error(obj):
        sys.stderr.write("Error loading BPF object from file: %s\n" % path)
        return 1

    err = bpf_object__load(obj)
    if err:
        sys.stderr.write("Error loading BPF object: %d\n" % err)
        bpf_object__close(obj)
        return 1

    err = bpf_object__pin_programs(obj, pin_path)
    if err:
        sys.stderr.write("Error pinning BPF programs: %d\n" % err)
        bpf_object__close(obj)
        return 1

    print("BPF programs pinned at %s: %s" % (pin_path, " ".join(sorted(os.listdir(pin_path)))))

    err = bpf_object__unpin_programs(obj, pin_path)
    if err:
        sys.stderr.write("Error unpinning BPF programs: %d\n" % err)
        bpf_object__close(obj)
        return 1
    print("BPF programs unpinned, left: %s" % (" ".join(sorted(os.listdir(pin_path))) or "nothing"))

    bpf_object__close(obj)
    return 0


if __name__ == "__main__":
    with bpffs_dir() as root:
        status = main(root)
    sys.exit(status)
