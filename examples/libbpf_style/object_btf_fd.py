#!/usr/bin/env python3
"""Spec section 15: bpf_object__btf_fd after load."""

import sys

from pybpfload.demo import bundled_object
from pybpfload.libbpf import bpf_object__btf_fd, bpf_object__close, bpf_object__load, bpf_object__open_file, libbpf_get_error


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()

    obj = bpf_object__open_file(path, None)
    if libbpf_get_error(obj):
        sys.stderr.write("bpf object open failed: %s\n" % path)
        return -1

    err = bpf_object__load(obj)
    if err:
        sys.stderr.write("bpf object load failed \n")
        return err
    # the fd of the object's BTF in the kernel
    btf_fd = bpf_object__btf_fd(obj)
    if btf_fd < 0:
        sys.stderr.write("No BTF file descriptor available for the BPF object\n")
        bpf_object__close(obj)
        return 1

    print("BTF file descriptor: %d" % btf_fd)

    bpf_object__close(obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
