"""vmtest: run pybpfload's kernel-marked tests on Debian kernels under qemu.

A test-infrastructure tool of the project (not part of the pybpfload package):
kernels are fetched from Debian's archive by suite (kernels.py), booted with a
small busybox initramfs (initramfs.py) under qemu's software emulation
(qemu.py); the matrix (matrix.py) runs the tests in each guest and records the
results (results.py).  Entry points: ``python -m vmtest`` with tools/ on
PYTHONPATH, and tools/vmtest/run-matrix.sh.
"""
