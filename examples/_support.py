"""What the pin examples share: a directory on a bpffs for their pins.

The C demos of the spec pin under /sys/fs/bpf.  These examples use a fresh
directory there when /sys/fs/bpf is a bpffs, and otherwise mount a private
bpffs on a temporary directory; either way everything is removed on exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
from typing import Iterator

from pybpfload.pinning import is_bpffs

MNT_DETACH = 2


@contextlib.contextmanager
def bpffs_dir() -> Iterator[str]:
    """A private directory on a bpffs, removed (or unmounted) afterwards."""
    if is_bpffs("/sys/fs/bpf"):
        d = tempfile.mkdtemp(prefix="pybpfload-example-", dir="/sys/fs/bpf")
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)
        return
    d = tempfile.mkdtemp(prefix="pybpfload-example-bpffs-")  # not the tests' prefix: their mounts are not ours
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", os.fsencode(d), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        os.rmdir(d)
        raise OSError(err, f"mount -t bpf on {d}: {os.strerror(err)}")
    try:
        yield d
    finally:
        libc.umount2(os.fsencode(d), MNT_DETACH)
        os.rmdir(d)
