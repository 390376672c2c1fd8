"""An arena map's memory in this process: :class:`ArenaMapping` (``Map.arena``).

A BPF_MAP_TYPE_ARENA map (6.9+) is memory the programs and user space share:
the process mmaps the whole arena (``max_entries`` pages) once, and from then
on the arena's user address range is that mapping.  A pointer the program
stores in the arena (``bpf_arena_alloc_pages``'s result, an ``__arena``
pointer) is a user address inside it; :meth:`ArenaMapping.offset_of` turns
one into an offset.

Where the arena is mapped, as libbpf's load does it:

- ``map_extra`` 0: wherever the kernel picks (``mmap(NULL, ...)``); the first
  mapping fixes the arena's address for every later one.
- ``map_extra`` set: exactly there.  libbpf passes MAP_FIXED, which would
  replace whatever this process has mapped at that address; we pass
  MAP_FIXED_NOREPLACE instead, so an address in use is refused (EEXIST).

Python's :mod:`mmap` cannot map at an address, so the mapping is made with
libc's mmap and read and written through ctypes.  The map owns it: closing the
map unmaps it, after which every access raises StateError.

Pages no program allocated read as zeros (the kernel allocates them on first
touch) unless the arena was made with BPF_F_SEGV_ON_FAULT, where touching one
kills the process with SIGSEGV, as it would a C program.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
from typing import Any, Optional, Union

from ..errors import SyscallError, StateError

__all__ = ["ArenaMapping"]

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value
MAP_FIXED_NOREPLACE = 0x100000  # Linux 4.17+; older kernels take it as a hint (checked below)


class ArenaMapping:
    """The user mapping of one arena map: ``size`` bytes at ``address``.

    Indexing reads and writes bytes (``a[off]`` an int, ``a[start:stop]`` bytes;
    ``a[start:stop] = data`` of the same length).  ``globals_offset`` and
    ``globals_size`` say where the object's ``__arena`` globals are (zero for an
    arena made by hand); see :mod:`pybpfload.reloc.arena_globals`.
    """

    __slots__ = ("address", "size", "name", "globals_offset", "globals_size", "_buf")

    address: int
    size: int
    name: str
    globals_offset: int
    globals_size: int
    _buf: Optional[Any]  # a ctypes char array over the mapping; None once unmapped

    def __init__(self, fd: int, size: int, address: int = 0, name: str = "") -> None:
        """Map ``size`` bytes of the arena ``fd`` at ``address`` (0: where the kernel picks)."""
        flags = mmap.MAP_SHARED | (MAP_FIXED_NOREPLACE if address else 0)
        got = _mmap(address or None, size, mmap.PROT_READ | mmap.PROT_WRITE, flags, fd, 0)
        if got is None or got == _MAP_FAILED:
            err = ctypes.get_errno() or errno.EINVAL
            detail = f"{size} bytes" + (f" at {address:#x} (the arena's map_extra)" if address else "")
            raise SyscallError(err, "mmap", name, detail=detail)
        if address and got != address:  # a kernel without MAP_FIXED_NOREPLACE placed it elsewhere
            _munmap(got, size)
            raise SyscallError(errno.EEXIST, "mmap", name, detail=f"{address:#x} (the arena's map_extra) is in use")
        self.address = got
        self.size = size
        self.name = name
        self.globals_offset = 0
        self.globals_size = 0
        self._buf = (ctypes.c_char * size).from_address(got)

    # ------------------------------------------------------------ access
    @property
    def closed(self) -> bool:
        return self._buf is None

    def buffer(self) -> Any:
        """The mapping as a writable buffer (a ctypes char array); StateError once unmapped.

        Do not keep it past the map's close: the memory is gone then.
        """
        buf = self._buf
        if buf is None:
            raise StateError(f"arena {self.name!r}: unmapped (the map is closed)")
        return buf

    def view(self, offset: int, size: int) -> Any:
        """``size`` bytes at ``offset`` as a writable buffer (see :meth:`buffer`)."""
        buf = self.buffer()
        if offset < 0 or size < 0 or offset + size > self.size:
            raise IndexError(f"arena {self.name!r}: {size} bytes at offset {offset} are outside its {self.size} bytes")
        return (ctypes.c_char * size).from_buffer(buf, offset)

    def read(self, offset: int, size: int) -> bytes:
        return bytes(self.view(offset, size))

    def write(self, offset: int, data: Union[bytes, bytearray, memoryview]) -> None:
        data = bytes(data)
        self.view(offset, len(data))[:] = data

    def offset_of(self, address: int) -> int:
        """The offset of the user ``address`` (a pointer the program stored) in the arena."""
        off = address - self.address
        if not 0 <= off < self.size:
            raise ValueError(f"arena {self.name!r}: address {address:#x} is outside {self.address:#x}..{self.address + self.size:#x}")
        return off

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: Union[int, slice]) -> Any:
        buf = self.buffer()
        if isinstance(key, slice):
            return buf[key]
        return buf[key][0]

    def __setitem__(self, key: Union[int, slice], value: Any) -> None:
        buf = self.buffer()
        if isinstance(key, slice):
            start, stop, step = key.indices(self.size)
            data = bytes(value)
            if step != 1 or len(data) != stop - start:
                raise ValueError(f"arena {self.name!r}: a slice assignment must keep the length ({stop - start} bytes)")
            buf[start:stop] = data
            return
        buf[key] = bytes((value,))

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Unmap (the map's close does it)."""
        if self._buf is None:
            return
        self._buf = None
        _munmap(self.address, self.size)

    def __repr__(self) -> str:
        state = "unmapped" if self._buf is None else f"{self.size} bytes at {self.address:#x}"
        return f"<ArenaMapping {self.name!r} {state}>"
