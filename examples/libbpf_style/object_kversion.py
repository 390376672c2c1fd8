#!/usr/bin/env python3
"""Spec section 12: bpf_object__kversion."""

import sys

from pybpfload.demo import bundled_object
from pybpfload.libbpf import bpf_object__close, bpf_object__kversion, bpf_object__open_file, libbpf_get_error


def print_kernel_version(kern_version: int) -> None:
    # KERNEL_VERSION(major, minor, patch) is major << 16 | minor << 8 | patch
    major = (kern_version >> 16) & 0xFF
    minor = (kern_version >> 8) & 0xFF
    patch = kern_version & 0xFF

    print("Kernel Version: %u.%u.%u" % (major, minor, patch))


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()

    obj = bpf_object__open_file(path, None)
    if libbpf_get_error(obj):
        sys.stderr.write("bpf object open failed: %s\n" % path)
        return -1

    obj_kv = bpf_object__kversion(obj)
    print_kernel_version(obj_kv)

    bpf_object__close(obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
