#!/usr/bin/env python3
"""Spec section 2, the pythonic way: exceptions carry the message; errors.strerror names a code."""

from pybpfload import BPFError, Object
from pybpfload.errors import LibbpfErrno, error_code, strerror

print(f"{int(LibbpfErrno.FORMAT)}: {strerror(LibbpfErrno.FORMAT)}")
try:
    Object.open_mem(b"not an ELF object")
except BPFError as e:  # every pybpfload error; its libbpf-style code:
    print(f"{type(e).__name__}: code {error_code(e)} ({strerror(error_code(e))})")
