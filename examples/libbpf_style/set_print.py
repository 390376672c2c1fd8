#!/usr/bin/env python3
"""Spec section 3: libbpf_set_print with a callback printing every level (DEBUG included)."""

import sys

from pybpfload.demo import bundled_object
from pybpfload.libbpf import bpf_object__close, bpf_object__load, bpf_object__open_file, libbpf_set_print

LEVELS = {0: "WARN", 1: "INFO", 2: "DEBUG"}


def libbpf_print_fn(level: int, msg: str) -> int:
    return sys.stdout.write("[%s] %s" % (LEVELS[level], msg))


def main() -> int:
    libbpf_set_print(libbpf_print_fn)
    # ... the program's work: here, open and load the bundled object ...
    obj = bpf_object__open_file(sys.argv[1] if len(sys.argv) > 1 else bundled_object(), None)
    if obj is None:
        return 1
    err = bpf_object__load(obj)
    bpf_object__close(obj)
    return 1 if err else 0


if __name__ == "__main__":
    sys.exit(main())
