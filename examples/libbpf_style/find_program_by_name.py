#!/usr/bin/env python3
"""Spec section 16: bpf_object__find_program_by_name (the spec left this demo empty).

Finds the program, then shows a name that is not there: NULL with errno ENOENT.
"""

import os
import sys

from pybpfload.demo import bundled_object
from pybpfload.libbpf import (
    bpf_object__close,
    bpf_object__find_program_by_name,
    bpf_object__open_file,
    bpf_program__insn_cnt,
    bpf_program__section_name,
    get_errno,
    libbpf_get_error,
)


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else bundled_object()

    obj = bpf_object__open_file(path, None)
    if libbpf_get_error(obj):
        sys.stderr.write("bpf object open failed: %s\n" % path)
        return -1

    prog = bpf_object__find_program_by_name(obj, "xdp_count")
    if prog is None:
        sys.stderr.write("program xdp_count not found\n")
        bpf_object__close(obj)
        return 1
    print("found xdp_count: section %s, %d instructions" % (bpf_program__section_name(prog), bpf_program__insn_cnt(prog)))

    prog = bpf_object__find_program_by_name(obj, "no_such_prog")
    if prog is None:
        err = get_errno()
        print("no_such_prog: NULL, errno %d (%s)" % (err, os.strerror(err)))

    bpf_object__close(obj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
