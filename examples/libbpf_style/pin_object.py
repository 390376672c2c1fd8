#!/usr/bin/env python3
"""Spec section 10: bpf_object__pin (maps and programs) and its undoing.

As the C demo, unpinning is written out with bpf_object__unpin_programs and
bpf_object__unpin_maps, printing libbpf_strerror's text on failure
(pybpfload.libbpf also has bpf_object__unpin, as libbpf 1.x).
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
    bpf_object__pin,
    bpf_object__unpin_maps,
    bpf_object__unpin_programs,
    libbpf_get_error,
    libbpf_set_print,
    libbpf_strerror,
)


def libbpf_print_fn(level: int, msg: str) -> int:
    return sys.stderr.write(msg)


def object_unpin(obj, path: str) -> int:  # the C demo's own bpf_object__unpin
    buf = bytearray(128)

    err = bpf_object__unpin_programs(obj, path)
    if err:
        libbpf_strerror(err, buf, len(buf))
        sys.stderr.write("%s\n" % buf.split(b"\0")[0].decode())
        return err

    err = bpf_object__unpin_maps(obj, path)
    if err:
        libbpf_strerror(err, buf, len(buf))
        sys.stderr.write("%s\n" % buf.split(b"\0")[0].decode())
        return err

    return 0


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
    # pin the eBPF object (maps and programs) under pin_path
    err = bpf_object__pin(obj, pin_path)
    if err:
        sys.stderr.write("Error pinning BPF object: %d\n" % err)
        bpf_object__close(obj)
        return 1

    print("BPF object pinned at %s: %s" % (pin_path, " ".join(sorted(os.listdir(pin_path)))))

    err = object_unpin(obj, pin_path)
    if err:
        sys.stderr.write("Error unpinning BPF object: %d\n" % err)
        bpf_object__close(obj)
        return 1
    print("BPF object unpinned, left: %s" % (" ".join(sorted(os.listdir(pin_path))) or "nothing"))

    bpf_object__close(obj)
    return 0


if __name__ == "__main__":
    with bpffs_dir() as root:
        status = main(root)
    sys.exit(status)
