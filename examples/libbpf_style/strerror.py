#!/usr/bin/env python3
"""Spec section 2: libbpf_strerror into a 20-byte buffer."""

import sys

from pybpfload.libbpf import LIBBPF_ERRNO__FORMAT, libbpf_strerror


def main() -> int:
    size = 20
    buf = bytearray(size)
    # 1. below __LIBBPF_ERRNO__START: the system's strerror_r
    # 2. __LIBBPF_ERRNO__START .. __LIBBPF_ERRNO__END: libbpf's own messages
    # 3. anything else: unknown error
    err_code = libbpf_strerror(LIBBPF_ERRNO__FORMAT, buf, size)
    print("ErrCode %d: info %s" % (err_code, buf.split(b"\0")[0].decode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
