#!/usr/bin/env python3
"""Spec section 1: libbpf_major_version / libbpf_minor_version / libbpf_version_string."""

import sys

from pybpfload.libbpf import libbpf_major_version, libbpf_minor_version, libbpf_version_string


def main() -> int:
    major = libbpf_major_version()
    minor = libbpf_minor_version()
    version = libbpf_version_string()

    res = "%u-%u-%s" % (major, minor, version)
    print(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
