"""Raw element access for the toolkit: keys and values as bytes, in the toolkit's own buffers.

The toolkit reads maps whatever their ``key_format`` / ``value_format`` say,
and per-CPU values as one flat buffer (no per-CPU list), so it does its own
BPF_MAP_LOOKUP_ELEM with pybpfload.syscall; keys are walked with the public
:meth:`pybpfload.Map.next_key`.
"""

from __future__ import annotations

import ctypes
import errno
import struct
import sys
from typing import TYPE_CHECKING, Any, Iterator, Optional, Tuple

from ..errors import BPFError, SyscallError

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel.maps import Map

__all__ = ["RawMap", "map_name"]

_BO = sys.byteorder
_PERCPU_TYPES = frozenset({5, 6, 10, 21})  # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE


def map_name(m: Any) -> str:
    return repr(getattr(m, "name", "?"))


class RawMap:
    """One map's raw view: ``lookup(key) -> memoryview`` of the value buffer (all CPUs' values for per-CPU maps).

    The returned view is this object's buffer: it is overwritten by the next lookup.
    """

    def __init__(self, m: "Map") -> None:
        from ..kernel.maps import Map, possible_cpus
        from ..abi import uapi as t

        if not isinstance(m, Map):
            raise BPFError(f"expected a pybpfload.Map, not {type(m).__name__}")
        self.map = m
        self.fd = m.fileno()  # StateError when not created or closed
        self.name = m.name
        self.key_size = m.key_size
        self.value_size = m.value_size
        self.percpu = int(m.type) in _PERCPU_TYPES
        self.ncpu = possible_cpus() if self.percpu else 1
        self.stride = (self.value_size + 7) & ~7 if self.percpu else self.value_size
        self.kbuf = ctypes.create_string_buffer(max(self.key_size, 1))
        self.vbuf = ctypes.create_string_buffer(max(self.stride * self.ncpu, 1))
        self.view = memoryview(self.vbuf).cast("B")[: self.stride * self.ncpu]
        self._attr = t.MapElemAttr(map_fd=self.fd, key=ctypes.addressof(self.kbuf), value=ctypes.addressof(self.vbuf))
        self._kstruct: Optional[struct.Struct] = struct.Struct(m.key_format) if m.key_format else None

    def encode_key(self, key: Any) -> bytes:
        """``key`` as the map's key bytes: bytes as they are, ints native-endian, tuples by the map's key_format."""
        if isinstance(key, (bytes, bytearray, memoryview)):
            b = bytes(key)
        elif isinstance(key, int) and self._kstruct is None:
            try:
                b = key.to_bytes(self.key_size, _BO, signed=key < 0)
            except OverflowError:
                raise BPFError(f"map {self.name!r}: key {key} does not fit in {self.key_size} bytes") from None
        elif self._kstruct is not None:
            try:
                b = self._kstruct.pack(*key) if isinstance(key, tuple) else self._kstruct.pack(key)
            except struct.error as e:
                raise BPFError(f"map {self.name!r}: cannot pack key {key!r} with key_format {self.map.key_format!r}: {e}") from None
        else:
            raise BPFError(f"map {self.name!r}: cannot use {type(key).__name__} as a key (set the map's key_format for tuples)")
        if len(b) != self.key_size:
            raise BPFError(f"map {self.name!r}: key is {len(b)} bytes, the map's keys are {self.key_size}")
        return b

    def lookup(self, key: Any) -> memoryview:
        """The raw value of ``key``; MapKeyError (a KeyError) when absent."""
        from ..kernel.maps import MapKeyError
        from ..syscall import Cmd, bpf

        self.kbuf.raw = self.encode_key(key) if key.__class__ is not bytes or len(key) != self.key_size else key
        try:
            bpf(Cmd.BPF_MAP_LOOKUP_ELEM, self._attr, name=self.name)
        except SyscallError as e:
            if e.errno == errno.ENOENT:
                raise MapKeyError(e.errno, "BPF_MAP_LOOKUP_ELEM", self.name) from None
            raise
        return self.view

    def lookup_raw_key(self, kb: bytes) -> Optional[memoryview]:
        """The raw value of the raw key ``kb``, or None when it is gone."""
        from ..syscall import Cmd, bpf

        self.kbuf.raw = kb
        try:
            bpf(Cmd.BPF_MAP_LOOKUP_ELEM, self._attr, name=self.name)
        except SyscallError as e:
            if e.errno == errno.ENOENT:
                return None
            raise
        return self.view

    def raw_keys(self) -> Iterator[bytes]:
        k = self.map.next_key(None)
        while k is not None:
            yield k
            k = self.map.next_key(k)

    def raw_items(self) -> Iterator[Tuple[bytes, memoryview]]:
        """(raw key, raw value view) for every element (the view is reused: read it before the next step)."""
        for k in self.raw_keys():
            v = self.lookup_raw_key(k)
            if v is not None:
                yield k, v
