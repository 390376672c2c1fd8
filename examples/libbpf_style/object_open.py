#!/usr/bin/env python3
"""Spec section 4: bpf_object__open."""

import sys

from pybpfload.demo import bundled_object
from pybpfload.libbpf import bpf_object__close, bpf_object__name, bpf_object__open, libbpf_set_print


def libbpf_print_fn(level: int, msg: str) -> int:
    return sys.stderr.write(msg)


def main() -> int:
    libbpf_set_print(libbpf_print_fn)

    path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()
    # open the eBPF object file
    obj = bpf_object__open(path)
    if obj is None:
        sys.stderr.write("open ebpf object file failed")
        return -1
    print("opened %s" % bpf_object__name(obj))
    # close the eBPF object
    bpf_object__close(obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
