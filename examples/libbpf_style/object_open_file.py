#!/usr/bin/env python3
"""Spec section 5: bpf_object__open_file with (and without) struct bpf_object_open_opts."""

import sys

from pybpfload.demo import bundled_object
from pybpfload.libbpf import BpfObjectOpenOpts, bpf_object__close, bpf_object__name, bpf_object__open_file, libbpf_set_print


def libbpf_print_fn(level: int, msg: str) -> int:
    return sys.stderr.write(msg)


def main() -> int:
    libbpf_set_print(libbpf_print_fn)

    path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()
    obj = bpf_object__open_file(path, None)
    if obj is None:
        sys.stderr.write("open bpf object failed")
        return -1
    # struct bpf_object is opaque in C; here it is a pybpfload.Object
    print("opened %s" % bpf_object__name(obj))
    bpf_object__close(obj)

    opts = BpfObjectOpenOpts(object_name="renamed")
    obj = bpf_object__open_file(path, opts)
    if obj is None:
        sys.stderr.write("open bpf object failed")
        return -1
    print("opened with opts.object_name: %s" % bpf_object__name(obj))
    bpf_object__close(obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
