#!/usr/bin/env python3
"""Spec section 11: bpf_object__name."""

import sys

from pybpfload.demo import bundled_object
from pybpfload.libbpf import bpf_object__close, bpf_object__name, bpf_object__open_file, libbpf_get_error


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()

    obj = bpf_object__open_file(path, None)
    if libbpf_get_error(obj):
        sys.stderr.write("bpf object open failed: %s\n" % path)
        return -1
    # the object's name
    obj_name = bpf_object__name(obj)
    print("object name: %s" % obj_name)

    bpf_object__close(obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
