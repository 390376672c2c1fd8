#!/usr/bin/env python3
"""Spec section 1, the pythonic way: pybpfload's version and the libbpf API level it mirrors."""

import pybpfload
from pybpfload import libbpf

print(f"pybpfload {pybpfload.__version__}, mirroring libbpf {libbpf.libbpf_version_string()}")
