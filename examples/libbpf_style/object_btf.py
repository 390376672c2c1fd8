#!/usr/bin/env python3
"""Spec section 14: bpf_object__btf and btf__type_cnt."""

import sys

from pybpfload.demo import bundled_object
from pybpfload.libbpf import bpf_object__btf, bpf_object__close, bpf_object__open_file, btf__type_cnt, libbpf_get_error


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()

    obj = bpf_object__open_file(path, None)
    if libbpf_get_error(obj):
        sys.stderr.write("bpf object open failed: %s\n" % path)
        return -1
    # struct btf is opaque in C; here it is a pybpfload.libbpf.Btf
    btf_info = bpf_object__btf(obj)
    if libbpf_get_error(btf_info):
        sys.stderr.write("bpf object btf fetch failed\n")
        return -1

    # the number of BTF types
    type_count = btf__type_cnt(btf_info)
    print("Number of BTF types: %d" % type_count)

    bpf_object__close(obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
