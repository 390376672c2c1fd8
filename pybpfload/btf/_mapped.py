"""Read-only private mappings of BTF files that hold no file descriptor.

Python's :class:`mmap.mmap` keeps a duplicate of the file's fd for its whole
life; a process-wide vmlinux Spec would then hold an fd forever.  Here the
file is mapped with libc's mmap(2) through ctypes, the fd is closed at once,
and the mapping is unmapped when the last buffer view of it is released.
The mapping is exposed only as a read-only memoryview (which keeps the
ctypes array, and so the mapping, alive), so no raw pointer escapes.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref
from typing import Any, Optional

_libc: Any = None


def _lib() -> Any:
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.memmem.restype = ctypes.c_void_p
        libc.memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
        _libc = libc
    return _libc


_MAP_FAILED = ctypes.c_void_p(-1).value


def map_file(path: "str | os.PathLike[str]") -> Optional[Any]:
    """A read-only byte view of the whole file, or None when it cannot be mapped.

    OSError from opening the file propagates.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size <= 0:
            return None
        try:
            libc = _lib()
        except OSError:  # pragma: no cover - no libc
            return None
        flags = mmap.MAP_PRIVATE | getattr(mmap, "MAP_POPULATE", 0)
        addr = libc.mmap(None, size, mmap.PROT_READ, flags, fd, 0)
        if addr is None or addr == _MAP_FAILED:
            return None
    finally:
        os.close(fd)
    arr = (ctypes.c_char * size).from_address(addr)
    weakref.finalize(arr, libc.munmap, addr, size)
    return memoryview(arr).cast("B").toreadonly()


def find(view: Any, needle: bytes, start: int, end: int) -> int:
    """``bytes.find`` over a view made by :func:`map_file` (libc's memmem, no copy); -1 when absent."""
    obj = getattr(view, "obj", None)
    if not isinstance(obj, ctypes.Array) or not 0 <= start <= end <= len(view):
        i = bytes(view[start:end]).find(needle)
        return i + start if i >= 0 else -1
    base = ctypes.addressof(obj)
    hit = _lib().memmem(base + start, end - start, needle, len(needle))
    return -1 if not hit else hit - base
