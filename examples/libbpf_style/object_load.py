#!/usr/bin/env python3
"""Spec section 7: bpf_object__load."""

import sys

from pybpfload.demo import bundled_object
from pybpfload.libbpf import bpf_object__close, bpf_object__load, bpf_object__open_file, libbpf_get_error, libbpf_set_print


def libbpf_print_fn(level: int, msg: str) -> int:
    return sys.stderr.write(msg)


def main() -> int:
    libbpf_set_print(libbpf_print_fn)

    path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()

    obj = bpf_object__open_file(path, None)
    if libbpf_get_error(obj):
        sys.stderr.write("Error loading BPF object from file: %s\n" % path)
        return 1

    err = bpf_object__load(obj)
    if err:
        sys.stderr.write("Error loading BPF object: %d\n" % err)
        bpf_object__close(obj)
        return 1

    print("BPF object loaded successfully")

    bpf_object__close(obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
