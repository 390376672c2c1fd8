"""BPF maps: create, access, iterate, batch, pin — with or without an ELF object.

A :class:`Map` starts as a definition (name, type, sizes, flags...) whose
attributes can be changed until it is created in the kernel; from then on it
owns one fd.  ``Map.create(...)`` does both steps for maps made by hand.

Keys and values are raw bytes by default.  Ints are accepted anywhere a key or
value is expected (packed in native byte order to the key or value size), and
``key_format`` / ``value_format`` (:mod:`struct` formats, which may be set or
changed at any time, before or after creation) turn values back into Python
numbers or tuples.  Per-CPU maps take and return one value per possible CPU,
as a list.  An array's ``initial_value`` is written to element 0 when the map
is created, and reads back that element's live contents from then on.

Threads: a Map may be used from several threads at once.  Each thread gets
its own key / value buffers and prebuilt bpf(2) attributes (made on its first
call), so the element operations, iteration and batch operations of one
thread never see another's data, and bpf(2) runs without the GIL.  Closing a
map that other threads are still using is a race, as with any fd: their next
call raises StateError, a call already under way may fail with EBADF.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import mmap as _mmap
import struct
import sys
import _thread  # threading.Lock and threading.local, without importing threading (~1 ms)
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from ..syscall import pinning
from .._fdobject import FdObject
from .._strict import Strict
from ..errors import BPFError, PinError, StateError, SyscallError
from ..syscall import commands
from ..syscall._raw import NR_BPF, get_errno, syscall
from .typedmaps import PerCpu
from ..abi.record import Record, _set
from ..abi.names import map_type_name as _type_name
from ..abi.uapi import Cmd, MapElemAttr, MapInfo as _MapInfo, MapType
from ..syscall.fd import Fd

if TYPE_CHECKING:  # pragma: no cover
    from ..syscall.token import Token
    from .arena import ArenaMapping

__all__ = ["Map", "MapType", "MapInfo", "MapKeyError", "possible_cpus", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_F_LOCK"]

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

BPF_F_NO_PREALLOC = 1 << 0
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
BPF_F_MMAPABLE = 1 << 10

_BO = sys.byteorder
_ENOTSUPP = 524  # the kernel's internal 'operation not supported'
_ELEM_SIZE = ctypes.sizeof(MapElemAttr)
_PENDING: Any = object()  # Map._typed: typed, codecs not built yet (see Map._type_lazily)
_TYPED_LOCK = _thread.allocate_lock()

_PERCPU = frozenset(
    {
        MapType.BPF_MAP_TYPE_PERCPU_HASH,
        MapType.BPF_MAP_TYPE_PERCPU_ARRAY,
        MapType.BPF_MAP_TYPE_LRU_PERCPU_HASH,
        MapType.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
    }
)
# Maps whose elements have no key (push / pop / peek).
_KEYLESS = frozenset({MapType.BPF_MAP_TYPE_QUEUE, MapType.BPF_MAP_TYPE_STACK, MapType.BPF_MAP_TYPE_BLOOM_FILTER})
# Maps whose values are fds on the way in and ids on the way out.
_FD_VALUES = frozenset(
    {
        MapType.BPF_MAP_TYPE_PROG_ARRAY,
        MapType.BPF_MAP_TYPE_ARRAY_OF_MAPS,
        MapType.BPF_MAP_TYPE_HASH_OF_MAPS,
        MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY,
        MapType.BPF_MAP_TYPE_CGROUP_ARRAY,
    }
)


@lru_cache(maxsize=1)
def possible_cpus() -> int:
    """Number of possible CPUs (the set bits of /sys/devices/system/cpu/possible)."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    n = 0
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            n += int(hi) - int(lo) + 1
        elif part:
            n += 1
    return n


class MapKeyError(SyscallError, KeyError):
    """The key is not in the map (errno ENOENT); also a KeyError."""

    def __str__(self) -> str:
        return SyscallError.__str__(self)


class MapInfo(Record):
    """What the kernel reports about a map (BPF_OBJ_GET_INFO_BY_FD).

    An immutable record (:mod:`pybpfload.abi.record`), not a dataclass: ``==``,
    hash and repr field by field; ``_asdict()`` gives the fields as a dict.
    """

    __slots__ = _fields = (
        "type", "id", "key_size", "value_size", "max_entries", "flags", "name", "ifindex",
        "btf_id", "btf_key_type_id", "btf_value_type_id", "map_extra",
    )  # fmt: skip
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str
    ifindex: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    map_extra: int

    def __init__(
        self,
        type: int,
        id: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        flags: int,
        name: str,
        ifindex: int,
        btf_id: int,
        btf_key_type_id: int,
        btf_value_type_id: int,
        map_extra: int,
    ) -> None:
        _set(self, "type", type)
        _set(self, "id", id)
        _set(self, "key_size", key_size)
        _set(self, "value_size", value_size)
        _set(self, "max_entries", max_entries)
        _set(self, "flags", flags)
        _set(self, "name", name)
        _set(self, "ifindex", ifindex)
        _set(self, "btf_id", btf_id)
        _set(self, "btf_key_type_id", btf_key_type_id)
        _set(self, "btf_value_type_id", btf_value_type_id)
        _set(self, "map_extra", map_extra)

    @property
    def type_name(self) -> str:
        return _type_name(self.type)


Key = Union[bytes, bytearray, memoryview, int, Tuple[Any, ...]]



def _map_type_refused(e: SyscallError, map_type: int, token: Optional["Token"] = None) -> BPFError:
    """``e`` (a failed BPF_MAP_CREATE) as NotSupportedError when the kernel lacks the map type
    (any errno: the loader's own probe decides)."""
    from ..syscall.features import refusal

    return refusal(e, "map", map_type, _type_name(map_type), token)


class _Bufs:
    """One thread's buffers for one map: the key, the next key, the value, and
    bpf(2) attributes pointing at them (prebuilt: the hot paths only fill the
    buffers and make the syscall)."""

    __slots__ = (
        "ksize", "vsize", "vlen", "kbuf", "kmv", "nbuf", "vbuf", "vmv", "kpack", "vpack",
        "lookup_ref", "flag_attr", "flag_ref", "del_ref", "next_ref", "next_first_ref", "_attrs",
    )  # fmt: skip

    def __init__(self, fd: int, key_size: int, value_size: int, vsize: int) -> None:
        # the sizes, fixed once the map is created, at hand for the hot paths
        self.ksize = key_size
        self.vsize = value_size
        self.vlen = vsize  # the value buffer: value_size, or the stride times the CPUs for per-CPU maps
        self.kbuf = ctypes.create_string_buffer(max(key_size, 1))
        self.kmv = memoryview(self.kbuf).cast("B")[:key_size]
        self.nbuf = ctypes.create_string_buffer(max(key_size, 1))  # next key
        self.vbuf = ctypes.create_string_buffer(max(vsize, 1))
        self.vmv = memoryview(self.vbuf).cast("B")[:vsize]
        # an int key / value written straight into its buffer (struct.error when it does not fit)
        self.kpack = _int_packer(key_size, self.kmv)
        self.vpack = _int_packer(value_size, self.vmv)
        ka = ctypes.addressof(self.kbuf) if key_size else 0
        va = ctypes.addressof(self.vbuf)
        na = ctypes.addressof(self.nbuf)
        lookup = MapElemAttr(map_fd=fd, key=ka, value=va)
        self.flag_attr = MapElemAttr(map_fd=fd, key=ka, value=va)
        delete = MapElemAttr(map_fd=fd, key=ka)  # DELETE_ELEM checks that value is 0
        nxt = MapElemAttr(map_fd=fd, key=ka, next_key=na)
        first = MapElemAttr(map_fd=fd, key=0, next_key=na)
        self._attrs = (lookup, delete, nxt, first)  # byref() keeps its object alive too; explicit is clearer
        self.lookup_ref = ctypes.byref(lookup)
        self.flag_ref = ctypes.byref(self.flag_attr)
        self.del_ref = ctypes.byref(delete)
        self.next_ref = ctypes.byref(nxt)
        self.next_first_ref = ctypes.byref(first)


_UNSIGNED = {1: struct.Struct("=B").pack_into, 2: struct.Struct("=H").pack_into, 4: struct.Struct("=I").pack_into, 8: struct.Struct("=Q").pack_into}


def _int_packer(size: int, view: memoryview) -> Callable[[Any, int, int], None]:
    """pack_into(buffer, 0, n) for an unsigned ``size``-byte int (~40 % faster than
    int.to_bytes and a slice store); other sizes go through to_bytes into ``view``."""
    pack = _UNSIGNED.get(size)
    if pack is not None:
        return pack

    def to_bytes(buf: Any, off: int, n: int) -> None:
        try:
            view[:] = n.to_bytes(size, _BO)
        except OverflowError as e:
            raise struct.error(str(e)) from None

    return to_bytes


class ZeroImage:
    """An all-zero initial image of ``size`` bytes, never materialised unless read:
    a NOBITS ``.bss`` may claim 1 GiB that nothing in the file backs, and the kernel
    zero-fills a new array anyway (``initial_value`` still reads as bytes)."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def count(self, byte: int) -> int:
        return self.size if byte == 0 else 0

    def __bytes__(self) -> bytes:
        return bytes(self.size)

    def __repr__(self) -> str:
        return f"ZeroImage({self.size})"


class Map(Strict, FdObject):
    """One BPF map: a definition until created, then the owner of its fd.

    Attributes are checked: a name the map does not have (``m.value_fromat =
    ...``) raises :class:`~pybpfload.errors.UnknownAttributeError` instead of
    adding an attribute that nothing reads.
    """

    def __init__(
        self,
        name: str = "",
        type: int = MapType.BPF_MAP_TYPE_HASH,
        key_size: int = 0,
        value_size: int = 0,
        max_entries: int = 0,
        flags: int = 0,
        *,
        numa_node: Optional[int] = None,
        map_extra: int = 0,
        inner_map: Optional["Map"] = None,
        btf_key_type_id: int = 0,
        btf_value_type_id: int = 0,
        btf_vmlinux_value_type_id: int = 0,
        ifindex: int = 0,
        pinning: int = 0,
        pin_path: Optional[str] = None,
        initial_value: Optional[bytes] = None,
        key_format: Optional[str] = None,
        value_format: Optional[str] = None,
        autocreate: bool = True,
    ) -> None:
        super().__init__(name)
        self.__dict__["_kmv"] = None
        self.__dict__["_arena"] = None  # an arena's user mapping (Map.arena), owned
        self.__dict__["_arena_globals"] = (0, 0)  # where the object's __arena globals are in it (offset, size)
        self.type = type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.numa_node = numa_node
        self.map_extra = map_extra
        self.inner_map = inner_map
        self.btf_key_type_id = btf_key_type_id
        self.btf_value_type_id = btf_value_type_id
        self.btf_vmlinux_value_type_id = btf_vmlinux_value_type_id
        self.ifindex = ifindex
        self.pinning = pinning
        self.pin_path = pin_path
        self.initial_value = initial_value
        self.key_format = key_format
        self.value_format = value_format
        self.autocreate = autocreate  # an object's load creates the map (bpf_map__set_autocreate)
        # struct_ops maps: the module BTF fd of the kernel's value type (0: vmlinux), set at load
        self.value_type_btf_obj_fd = 0
        # struct_ops maps: the kernel value with program fds, prepared at load (libbpf's kern_vdata)
        self.struct_ops_value: Optional[bytes] = None

    # ------------------------------------------------------------ definition
    _SPEC_FIELDS = frozenset(
        {
            "name",
            "type",
            "key_size",
            "value_size",
            "max_entries",
            "flags",
            "numa_node",
            "map_extra",
            "inner_map",
            "btf_key_type_id",
            "btf_value_type_id",
            "btf_vmlinux_value_type_id",
            "ifindex",
            "initial_value",
            "autocreate",
            "value_type_btf_obj_fd",
        }
    )

    def __setattr__(self, key: str, value: Any) -> None:
        d = self.__dict__
        if key in Map._SPEC_FIELDS:
            if d.get("_fd") is not None:
                hint = ""
                if key == "initial_value":
                    frozen = self.__dict__.get("flags", 0) & BPF_F_RDONLY_PROG
                    hint = (
                        " (a read-only map, frozen at load: its value cannot change; libbpf: -EBUSY)"
                        if frozen
                        else " (write element 0 of the map instead; libbpf: -EBUSY)"
                    )
                raise StateError(f"map {d.get('name')!r}: cannot change {key} after the map was created{hint}")
        elif key[:1] != "_" and key not in d and "_sealed" in d and not hasattr(type(self), key):
            raise self._unknown_attribute(key)  # Strict's check, inline: this is on hot paths
        object.__setattr__(self, key, value)

    # ------------------------------------------------------------ formats and initial value
    @property
    def key_format(self) -> Optional[str]:
        """A :mod:`struct` format for keys (None: bytes); takes effect at once, also on a created map."""
        return self._key_format

    @key_format.setter
    def key_format(self, fmt: Optional[str]) -> None:
        self._set_format("key", fmt)

    @property
    def value_format(self) -> Optional[str]:
        """A :mod:`struct` format for values (None: bytes); takes effect at once, also on a created map."""
        return self._value_format

    @value_format.setter
    def value_format(self, fmt: Optional[str]) -> None:
        self._set_format("value", fmt)

    # Set by __init__, never class attributes: a class attribute of the same name would make
    # every self._kstruct / self._vstruct read in the hot paths take CPython's slow path.
    _key_format: Optional[str]
    _value_format: Optional[str]
    _kstruct: Optional[struct.Struct]
    _vstruct: Optional[struct.Struct]
    _kdec: Optional[Callable[..., Any]]  # the BTF codecs' decode(buffer, offset=0) (typed maps), else None
    _vdec: Optional[Callable[..., Any]]
    _plain: bool  # no value_format and not per-CPU: a value is its bytes

    def _set_format(self, which: str, fmt: Optional[str]) -> None:
        """Check ``fmt`` and install its codec; on a created map its size must fit, before creation only its syntax."""
        if fmt is not None and not isinstance(fmt, str):
            raise BPFError(f"map {self.name!r}: {which}_format must be a struct format string or None, not {type(fmt).__name__}")
        try:
            st = struct.Struct(fmt) if fmt else None
        except struct.error as e:
            raise BPFError(f"map {self.name!r}: bad {which}_format {fmt!r}: {e}") from None
        if st is not None and self.created:
            self._check_format_size(which, fmt, st)
        d = self.__dict__
        d["_" + which + "_format"] = fmt
        if st is None and d.get("_typed"):
            st = d.get("_typed_" + which)  # a typed map: the BTF codec where no format is set
        d["_kstruct" if which == "key" else "_vstruct"] = st
        # a BTF codec decodes straight from a buffer (one C call for ctypes-backed structs)
        d["_kdec" if which == "key" else "_vdec"] = getattr(st, "decode", None)
        d["_plain"] = d.get("_vstruct") is None and not d.get("_percpu", False)

    def _check_format_size(self, which: str, fmt: Optional[str], st: struct.Struct) -> None:
        if which == "key":
            if st.size != self.key_size:
                raise BPFError(f"map {self.name!r}: key_format {fmt!r} is {st.size} bytes, key is {self.key_size}")
        elif st.size not in (self.value_size, (self.value_size + 7) & ~7):
            raise BPFError(f"map {self.name!r}: value_format {fmt!r} is {st.size} bytes, value is {self.value_size}")

    @property
    def typed(self) -> bool:
        """Keys and values decoded with the map's BTF types (value objects, ints); see
        :mod:`pybpfload.kernel.typedmaps`.  ``key_format`` / ``value_format`` still win.
        An object's maps are typed by default (``Object.open(..., typed=False)``: bytes)."""
        if self.__dict__.get("_typed") is _PENDING:
            self._resolve_typed()
        return bool(self.__dict__.get("_typed"))

    @typed.setter
    def typed(self, on: bool) -> None:
        d = self.__dict__
        if on:
            from .typedmaps import typed_formats

            d["_typed_key"], d["_typed_value"] = typed_formats(self)
        d["_typed"] = bool(on)
        self._set_format("key", self._key_format)
        self._set_format("value", self._value_format)

    def _type_lazily(self) -> None:
        """Typed by default (an object's maps with BTF key/value types): the codecs are
        built on the map's first use, so opening and loading pay nothing for them."""
        self.__dict__["_typed"] = _PENDING

    def _resolve_typed(self) -> None:
        with _TYPED_LOCK:
            d = self.__dict__
            if d.get("_typed") is not _PENDING:
                return
            from .typedmaps import typed_formats

            try:
                k, v = typed_formats(self)
            except BPFError:  # no BTF after all, or a type the codecs refuse: bytes, as untyped maps
                d["_typed"] = False
                return
            d["_typed_key"], d["_typed_value"] = k, v
            self._set_format("key", self._key_format)  # reads _typed: still true-ish (pending)
            self._set_format("value", self._value_format)
            d["_typed"] = True

    @property
    def raw(self) -> Any:
        """This map as bytes in, bytes out (``m.raw[key] = value_bytes``), whatever its formats."""
        from .typedmaps import RawView

        return RawView(self)

    @property
    def initial_value(self) -> Optional[bytes]:
        """The initial contents of a global data map (element 0), of a struct_ops map, or
        of an object's ``__arena`` globals (an arena map's ``.addr_space.1``).

        Before the map is created: the image it will be created with (settable).
        Once created, for an array: the live value, as the kernel holds it now
        (what libbpf's ``bpf_map__initial_value`` pointer into the mmapped map
        shows); for an arena, the globals' bytes in the mapping now.  Setting
        it then raises StateError (libbpf: -EBUSY).  A struct_ops map keeps the
        object's struct.
        """
        image = self._initial_value
        if image is not None and self.type == MapType.BPF_MAP_TYPE_ARENA and self.created:
            return self._arena_globals_view().raw
        if image is None or self.type != MapType.BPF_MAP_TYPE_ARRAY or not self.created:
            return bytes(image) if isinstance(image, ZeroImage) else image
        return self._lookup_raw(0)

    @initial_value.setter
    def initial_value(self, value: Optional[bytes]) -> None:
        if isinstance(value, ZeroImage):
            self.__dict__["_initial_value"] = value
            return
        if value is not None:
            try:
                value = bytes(memoryview(value).cast("B"))
            except TypeError:
                raise BPFError(f"map {self.name!r}: initial_value must be bytes-like or None, not {type(value).__name__}") from None
        self.__dict__["_initial_value"] = value

    _initial_value: "Optional[Union[bytes, ZeroImage]]"

    @classmethod
    def create(
        cls,
        type: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        flags: int = 0,
        *,
        name: str = "",
        btf_fd: int = 0,
        token: Optional["Token"] = None,
        **kwargs: Any,
    ) -> "Map":
        """Create a map in the kernel (cilium/ebpf's NewMap); see :class:`Map` for options.

        ``token``: a :class:`~pybpfload.syscall.token.Token` to create it through.
        """
        m = cls(name, type, key_size, value_size, max_entries, flags, **kwargs)
        return m._create(btf_fd=btf_fd, token=token)

    def _create(self, btf_fd: int = 0, name: Optional[str] = None, token: Optional["Token"] = None) -> "Map":
        """Create the map from its definition; returns self.

        ``name`` is the name given to the kernel when it differs from
        :attr:`name` (internal maps of an object); ``token``: a BPF token to
        create it (and an inner map template) through.
        """
        token_fd = token.fd if token is not None else 0
        self._check_definable()
        self._check_formats()
        init = self._initial_value if self.type == MapType.BPF_MAP_TYPE_ARRAY else None
        if isinstance(init, ZeroImage) and len(init) == self.value_size:
            init = None  # the kernel zero-fills a new array: nothing to write
        if init is not None and len(init) != self.value_size:
            raise BPFError(f"map {self.name!r}: initial value is {len(init)} bytes, the map's value is {self.value_size}")
        inner_fd = 0
        inner_tmp: Optional[Fd] = None
        if self.inner_map is not None:
            if self.inner_map._fd is not None:
                inner_fd = self.inner_map._fd.fileno()
            else:  # a template: create it for the duration of the call, as libbpf does
                im = self.inner_map
                inner_tmp = commands.map_create(
                    im.type, im.key_size, im.value_size, im.max_entries or 1, name=im.name, flags=im.flags, token_fd=token_fd
                )
                inner_fd = inner_tmp.fileno()
        try:
            fd = commands.map_create(
                int(self.type),
                self.key_size,
                self.value_size,
                self.max_entries,
                name=self.name if name is None else name,
                flags=self.flags,
                inner_map_fd=inner_fd,
                numa_node=self.numa_node,
                ifindex=self.ifindex,
                btf_fd=btf_fd,
                btf_key_type_id=self.btf_key_type_id if btf_fd else 0,
                btf_value_type_id=self.btf_value_type_id if btf_fd else 0,
                btf_vmlinux_value_type_id=self.btf_vmlinux_value_type_id,
                value_type_btf_obj_fd=self.value_type_btf_obj_fd,
                map_extra=self.map_extra,
                token_fd=token_fd,
            )
        except SyscallError as e:
            raise _map_type_refused(e, int(self.type), token) from None
        finally:
            if inner_tmp is not None:
                inner_tmp.close()
        self._adopt(fd)
        if init is not None:  # an array starts with its initial value (libbpf populates global data maps)
            try:
                assert isinstance(init, bytes)  # a ZeroImage of the right size was dropped above
                self._put_initial(init)
            except BaseException:
                self._uncreate()
                raise
        return self

    def attach_struct_ops(self) -> Any:
        """Register this struct_ops map of a loaded object (bpf_map__attach_struct_ops); see :mod:`pybpfload.link.struct_ops`."""
        from ..link.struct_ops import attach_struct_ops

        return attach_struct_ops(self)

    def reuse_fd(self, fd: int) -> None:
        """Use an existing map (a dup of ``fd``) instead of creating one (bpf_map__reuse_fd).

        The definition is replaced by what the kernel reports for that map.
        """
        self._check_definable()
        self._adopt(Fd(_dup(fd)), from_kernel=True)

    def _adopt(self, fd: Fd, from_kernel: bool = False) -> None:
        try:
            self._adopt_unsafe(fd, from_kernel)
        except BaseException:
            object.__setattr__(self, "_fd", None)
            self.__dict__["_kmv"] = None
            fd.close()
            raise

    def _uncreate(self) -> None:
        """Close the fd just created and be a definition again."""
        self._unmap_arena()
        fd = self._fd
        self.__dict__["_kmv"] = None
        object.__setattr__(self, "_fd", None)
        if fd is not None:
            fd.close()

    def _adopt_unsafe(self, fd: Fd, from_kernel: bool) -> None:
        if from_kernel:
            info = _info(fd.fileno(), self.name)
            d = self.__dict__
            d["name"] = info.name
            d["type"] = info.type
            d["key_size"] = info.key_size
            d["value_size"] = info.value_size
            d["max_entries"] = info.max_entries
            d["flags"] = info.flags
            d["map_extra"] = info.map_extra
            d["btf_key_type_id"], d["btf_value_type_id"] = info.btf_key_type_id, info.btf_value_type_id
            d["_kernel_btf_id"] = info.btf_id  # typed from it (_type_from_kernel_btf)
        self._own(fd)
        self._setup_buffers()

    def _setup_buffers(self) -> None:
        assert self._fd is not None
        self._check_formats()
        t = self.type
        self._percpu = t in _PERCPU
        self._plain = self._vstruct is None and not self._percpu  # values are returned as the raw bytes
        self._ncpu = possible_cpus() if self._percpu else 1
        self._stride = (self.value_size + 7) & ~7 if self._percpu else self.value_size
        self._vbuf_size = self._stride * self._ncpu
        # Each thread's buffers (_Bufs) hang off this, made on the thread's first call.  The
        # name is historical: None (until created, after close) sends the fast paths to _bufs().
        self.__dict__["_kmv"] = _thread._local()  # .b: the thread's _Bufs (a plain local: the fastest to read)

    def _check_formats(self) -> None:
        """The formats' sizes against the map's (they may have changed since the formats were set)."""
        if self._kstruct is not None:
            self._check_format_size("key", self._key_format, self._kstruct)
        if self._vstruct is not None:
            self._check_format_size("value", self._value_format, self._vstruct)

    def _bufs(self) -> _Bufs:
        """The calling thread's buffers, made on its first call (StateError when not created or closed)."""
        fd = self._live()
        tls = self.__dict__.get("_kmv")
        if tls is None:  # created, but not through _adopt()
            tls = self.__dict__["_kmv"] = _thread._local()
        try:
            return tls.b
        except AttributeError:
            if self.__dict__.get("_typed") is _PENDING:
                self._resolve_typed()
            b = tls.b = _Bufs(fd.fileno(), self.key_size, self.value_size, self._vbuf_size)
            return b

    # ------------------------------------------------------------ fd ownership
    _KIND = "map"

    @property
    def created(self) -> bool:
        return self._fd is not None and not self._fd.closed

    _kmv: Optional[_thread._local]  # None until created and after close: fast paths then fail over to _bufs()

    def close(self) -> None:
        self.__dict__["_kmv"] = None
        self._unmap_arena()
        super().close()

    def __repr__(self) -> str:
        tname = _type_name(self.type)
        return (
            f"<Map {self.name!r} {tname} key={self.key_size} value={self.value_size} "
            f"max_entries={self.max_entries} fd={self.fd}>"
        )

    # ------------------------------------------------------------ opening existing maps
    @classmethod
    def from_fd(cls, fd: int, **kwargs: Any) -> "Map":
        """A Map owning a duplicate of ``fd`` (the caller keeps its own fd).

        ``from_fd``, ``from_id`` and ``from_pin`` give typed maps (``typed``) when the
        kernel keeps BTF key/value types for the map; ``typed=False``: bytes."""
        return cls._from_owned_fd(Fd(_dup(fd)), **kwargs)

    @classmethod
    def _from_owned_fd(cls, fd: Fd, typed: bool = True, **kwargs: Any) -> "Map":
        try:
            m = cls(**kwargs)
            m._adopt(fd, from_kernel=True)
        except BaseException:
            fd.close()
            raise
        if typed:
            m._type_from_kernel_btf()
        return m

    def _type_from_kernel_btf(self) -> None:
        """Typed (lazily) with the BTF the kernel keeps for this map, as bpftool formats it."""
        d = self.__dict__
        btf_id = d.get("_kernel_btf_id", 0)  # read with the rest of the map's info at adoption
        if not btf_id or not (self.btf_key_type_id or self.btf_value_type_id):
            return
        got: List[Any] = []

        def btf_getter() -> Any:
            if not got:
                from ..syscall.btf_handle import BtfHandle

                with BtfHandle.from_id(btf_id) as h:
                    got.append(h.spec())
            return got[0]

        d["_btf_getter"] = btf_getter
        self._type_lazily()

    @classmethod
    def from_id(cls, map_id: int, **kwargs: Any) -> "Map":
        return cls._from_owned_fd(commands.get_fd_by_id("map", map_id), **kwargs)

    @classmethod
    def from_pin(cls, path: str, **kwargs: Any) -> "Map":
        """Open the map pinned at ``path``; it knows that pin (``pinned``, ``pinned_at``,
        ``unpin()`` without a path removes it).  Closing it leaves the pin alone."""
        m = cls._from_owned_fd(pinning.open_pinned(path), **kwargs)
        m._pinned_at = path
        return m

    @staticmethod
    def ids() -> Iterator[int]:
        """Ids of every map in the system."""
        return iter(commands.iter_ids("map"))

    def info(self) -> MapInfo:
        return _info(self._live().fileno(), self.name)

    @property
    def id(self) -> int:
        return self.info().id

    # ------------------------------------------------------------ pinning
    def pin(self, path: Optional[str] = None) -> None:  # type: ignore[override]
        """Pin at ``path`` (default: the map's pin_path) on bpffs (bpf_map__pin).

        As libbpf: a map whose pin_path is set cannot be pinned elsewhere;
        pinning again where it is pinned is a no-op; the parent directory is
        created.
        """
        from ..syscall import pinning

        if path and self.pin_path and path != self.pin_path:
            raise PinError(errno.EINVAL, f"map {self.name!r} already has pin path {self.pin_path!r}", path)
        path = path or self.pin_path
        if not path:
            raise PinError(errno.EINVAL, f"map {self.name!r}: no path to pin at", "")
        if self._pinned_at == path:
            return
        pinning.make_parent_dir(path)
        super().pin(path)
        self.pin_path = path

    def unpin(self, path: Optional[str] = None) -> None:
        """Remove the pin (bpf_map__unpin); ``path`` must match pin_path when both are set."""
        if path and self.pin_path and path != self.pin_path:
            raise PinError(errno.EINVAL, f"map {self.name!r} has pin path {self.pin_path!r}", path)
        super().unpin(path or self.pin_path or self._pinned_at)

    @property
    def pinned(self) -> bool:
        return self._pinned_at is not None

    # ------------------------------------------------------------ key / value conversion
    def _set_key(self, key: Key, buf: memoryview) -> None:
        try:
            buf[:] = key  # type: ignore[assignment]
            return
        except TypeError:
            pass
        except ValueError:
            raise BPFError(
                f"map {self.name!r}: key is {memoryview(key).nbytes} bytes, the map's keys are {self.key_size}"  # type: ignore[arg-type]
            ) from None
        ks = self._kstruct
        if ks is not None:
            try:
                if isinstance(key, tuple):
                    ks.pack_into(buf, 0, *key)
                else:
                    ks.pack_into(buf, 0, key)
            except struct.error as e:
                raise BPFError(f"map {self.name!r}: key {key!r} does not fit key_format {self.key_format!r}: {e}") from None
        elif isinstance(key, int):
            try:
                buf[:] = key.to_bytes(self.key_size, _BO, signed=key < 0)
            except OverflowError:
                raise BPFError(f"map {self.name!r}: key {key} does not fit in {self.key_size} bytes") from None
        else:
            raise TypeError(f"map {self.name!r}: cannot use {type(key).__name__} as a key")

    def _value_bytes(self, value: Any) -> bytes:
        """One value (not per-CPU) as bytes of value_size."""
        vs = self._vstruct
        if isinstance(value, Map) or (hasattr(value, "fileno") and not isinstance(value, (bytes, bytearray, memoryview, int))):
            b = value.fileno().to_bytes(4, _BO)  # map-in-map / prog array: an fd in, whatever the format
        elif vs is not None and not isinstance(value, (bytes, bytearray, memoryview)):
            try:
                b = vs.pack(*value) if isinstance(value, tuple) else vs.pack(value)
            except struct.error as e:
                raise BPFError(f"map {self.name!r}: value {value!r} does not fit value_format {self.value_format!r}: {e}") from None
        elif isinstance(value, int):
            try:
                b = value.to_bytes(self.value_size, _BO, signed=value < 0)
            except OverflowError:
                raise BPFError(f"map {self.name!r}: value {value} does not fit in {self.value_size} bytes") from None
        else:
            b = bytes(value)
        if len(b) != self.value_size and not (self._percpu and len(b) == self._stride):
            raise BPFError(f"map {self.name!r}: value is {len(b)} bytes, the map's values are {self.value_size}")
        return b

    def _set_value(self, value: Any, mv: memoryview) -> None:
        if self._percpu:
            vals = value if isinstance(value, (list, tuple)) and not (self._vstruct and isinstance(value, tuple)) else None
            if vals is None:
                vals = [value] * self._ncpu
            if len(vals) != self._ncpu:
                raise BPFError(f"map {self.name!r}: {len(vals)} per-CPU values for {self._ncpu} possible CPUs")
            st = self._stride
            for i, v in enumerate(vals):
                b = self._value_bytes(v)
                mv[i * st : i * st + len(b)] = b
            return
        if value.__class__ is bytes and len(value) == self.value_size:
            mv[:] = value
        else:
            mv[:] = self._value_bytes(value)

    def _get_value(self, vbuf: Any) -> Any:
        if self._percpu:
            raw = vbuf.raw
            st, vs = self._stride, self.value_size
            vd = self._vdec
            if vd is not None:
                return PerCpu([vd(raw, i * st) for i in range(self._ncpu)])
            return PerCpu([self._decode(raw[i * st : i * st + vs]) for i in range(self._ncpu)])
        vd = self._vdec
        if vd is not None:
            return vd(vbuf)  # offset 0 by default: one argument less to pass
        return self._decode(vbuf.raw[: self.value_size])

    def _decode(self, b: bytes) -> Any:
        vd = self._vdec
        if vd is not None:
            return vd(b)
        vs = self._vstruct
        if vs is None:
            return b
        t = vs.unpack(b[: vs.size])
        return t[0] if len(t) == 1 else t

    def _decode_key(self, b: bytes) -> Any:
        kd = self._kdec
        if kd is not None:
            return kd(b)
        ks = self._kstruct
        if ks is None:
            return b
        t = ks.unpack(b)
        return t[0] if len(t) == 1 else t

    def _fail(self, cmd: str, key_missing_ok: bool = True) -> SyscallError:
        err = get_errno()
        if err == errno.ENOENT and key_missing_ok:
            return MapKeyError(err, cmd, self.name)
        if err in (errno.EOPNOTSUPP, _ENOTSUPP):
            return SyscallError(err, cmd, self.name, detail=f"this kernel does not support it on {_type_name(self.type)} maps")
        return SyscallError(err, cmd, self.name)

    # ------------------------------------------------------------ element operations
    # The hot paths take the calling thread's buffers (self._kmv.b) and fall back to
    # _bufs() on the thread's first call, or to its StateError when the map is not usable.
    def lookup(self, key: Key, flags: int = 0) -> Any:
        """The value for ``key``; raises MapKeyError (a KeyError) when absent."""
        try:
            b: _Bufs = self._kmv.b  # type: ignore[union-attr]
        except AttributeError:
            b = self._bufs()
        try:
            if key.__class__ is int and self._kstruct is None:
                b.kpack(b.kbuf, 0, key)
            else:
                b.kmv[:] = key  # type: ignore[assignment]
        except (TypeError, ValueError, struct.error):  # a negative or oversized int: _set_key says which
            self._set_key(key, b.kmv)
        if flags:
            b.flag_attr.flags = flags
            ret = syscall(NR_BPF, Cmd.BPF_MAP_LOOKUP_ELEM, b.flag_ref, _ELEM_SIZE)
        else:
            ret = syscall(NR_BPF, 1, b.lookup_ref, _ELEM_SIZE)
        if ret < 0:
            self._live()
            raise self._fail("BPF_MAP_LOOKUP_ELEM")
        if self._plain:
            return b.vbuf.raw[: b.vsize]
        return self._get_value(b.vbuf)

    __getitem__ = lookup

    def get(self, key: Key, default: Any = None) -> Any:
        try:
            return self.lookup(key)
        except MapKeyError:
            return default

    def update(self, key: Key, value: Any, flags: int = BPF_ANY) -> None:
        """Insert or replace (BPF_ANY), insert only (BPF_NOEXIST), replace only (BPF_EXIST), + BPF_F_LOCK."""
        # the fast paths are repeated from lookup() on purpose: a helper call costs ~5% of a lookup
        try:
            b: _Bufs = self._kmv.b  # type: ignore[union-attr]
        except AttributeError:
            b = self._bufs()
        try:
            if key.__class__ is int and self._kstruct is None:
                b.kpack(b.kbuf, 0, key)
            else:
                b.kmv[:] = key  # type: ignore[assignment]
        except (TypeError, ValueError, struct.error):  # a negative or oversized int: _set_key says which
            self._set_key(key, b.kmv)
        vc = value.__class__
        if vc is bytes and len(value) == b.vlen:
            b.vmv[:] = value
        elif vc is int and self._plain:
            try:
                b.vpack(b.vbuf, 0, value)
            except struct.error:
                self._set_value(value, b.vmv)
        else:
            self._set_value(value, b.vmv)
        if flags:
            b.flag_attr.flags = flags
            ret = syscall(NR_BPF, 2, b.flag_ref, _ELEM_SIZE)
        else:  # BPF_ANY: the lookup attr (flags 0, same key and value) saves a ctypes field store
            ret = syscall(NR_BPF, 2, b.lookup_ref, _ELEM_SIZE)
        if ret < 0:
            self._live()
            raise self._fail("BPF_MAP_UPDATE_ELEM", key_missing_ok=flags == BPF_EXIST)

    def __setitem__(self, key: Key, value: Any) -> None:
        self.update(key, value)

    def delete(self, key: Key) -> None:
        b = self._bufs_key(key)
        if syscall(NR_BPF, Cmd.BPF_MAP_DELETE_ELEM, b.del_ref, _ELEM_SIZE) < 0:
            raise self._fail("BPF_MAP_DELETE_ELEM")

    __delitem__ = delete

    def __contains__(self, key: Key) -> bool:
        try:
            self.lookup(key)
        except MapKeyError:
            return False
        return True

    def lookup_and_delete(self, key: Key, flags: int = 0) -> Any:
        """Atomically read and remove ``key``."""
        b = self._bufs_key(key)
        b.flag_attr.flags = flags
        if syscall(NR_BPF, Cmd.BPF_MAP_LOOKUP_AND_DELETE_ELEM, b.flag_ref, _ELEM_SIZE) < 0:
            raise self._fail("BPF_MAP_LOOKUP_AND_DELETE_ELEM")
        return self._get_value(b.vbuf)

    def _bufs_key(self, key: Key) -> _Bufs:
        """The calling thread's buffers, with ``key`` in the key buffer."""
        try:
            b: _Bufs = self._kmv.b  # type: ignore[union-attr]
        except AttributeError:
            b = self._bufs()
        self._set_key(key, b.kmv)
        return b

    def _lookup_raw(self, key: Key) -> bytes:
        """The value for ``key`` as bytes, whatever value_format says."""
        b = self._bufs_key(key)
        if syscall(NR_BPF, Cmd.BPF_MAP_LOOKUP_ELEM, b.lookup_ref, _ELEM_SIZE) < 0:
            raise self._fail("BPF_MAP_LOOKUP_ELEM")
        return b.vbuf.raw[: self._vbuf_size]

    def _put_initial(self, value: bytes) -> None:
        """Write an array's element 0 at creation without the thread's buffers: making them
        builds a typed map's codecs (:meth:`_bufs`), which a load never needs."""
        key = ctypes.create_string_buffer(max(self.key_size, 4))  # key 0
        val = ctypes.create_string_buffer(value, len(value))
        a = MapElemAttr(map_fd=self.fileno(), key=ctypes.addressof(key), value=ctypes.addressof(val), flags=BPF_ANY)
        if syscall(NR_BPF, Cmd.BPF_MAP_UPDATE_ELEM, ctypes.byref(a), _ELEM_SIZE) < 0:
            raise self._fail("BPF_MAP_UPDATE_ELEM (initial value)", key_missing_ok=False)

    def _update_raw(self, key: Key, value: bytes, what: str) -> None:
        """Write ``value`` (bytes of the buffer's size) at ``key``."""
        b = self._bufs_key(key)
        b.vmv[:] = value
        b.flag_attr.flags = BPF_ANY
        if syscall(NR_BPF, Cmd.BPF_MAP_UPDATE_ELEM, b.flag_ref, _ELEM_SIZE) < 0:
            raise self._fail(what, key_missing_ok=False)

    # queue / stack / bloom filter
    def _keyless(self, cmd: int, b: _Bufs, flags: int = 0) -> bool:
        """One call without a key (key 0) on the value buffer of ``b``; False when it failed."""
        a = MapElemAttr(map_fd=self.fileno(), key=0, value=ctypes.addressof(b.vbuf), flags=flags)
        return syscall(NR_BPF, cmd, ctypes.byref(a), _ELEM_SIZE) >= 0

    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        """Add a value to a queue, stack or bloom filter (BPF_EXIST overwrites the oldest when full)."""
        b = self._bufs()
        self._set_value(value, b.vmv)
        if not self._keyless(Cmd.BPF_MAP_UPDATE_ELEM, b, flags):
            raise self._fail("BPF_MAP_UPDATE_ELEM (push)", key_missing_ok=False)

    def pop(self) -> Any:
        """Remove and return the next value of a queue or stack; MapKeyError when empty."""
        b = self._bufs()
        if not self._keyless(Cmd.BPF_MAP_LOOKUP_AND_DELETE_ELEM, b):
            raise self._fail("BPF_MAP_LOOKUP_AND_DELETE_ELEM (pop)")
        return self._get_value(b.vbuf)

    def peek(self) -> Any:
        """The next value of a queue or stack without removing it; MapKeyError when empty.

        On a bloom filter, ``peek(value)``-style membership is :meth:`contains_value`.
        """
        b = self._bufs()
        if not self._keyless(Cmd.BPF_MAP_LOOKUP_ELEM, b):
            raise self._fail("BPF_MAP_LOOKUP_ELEM (peek)")
        return self._get_value(b.vbuf)

    def contains_value(self, value: Any) -> bool:
        """Bloom filter membership test (may give false positives, never false negatives)."""
        b = self._bufs()
        self._set_value(value, b.vmv)
        if not self._keyless(Cmd.BPF_MAP_LOOKUP_ELEM, b):
            err = get_errno()
            if err == errno.ENOENT:
                return False
            raise SyscallError(err, "BPF_MAP_LOOKUP_ELEM (bloom filter)", self.name)
        return True

    # ------------------------------------------------------------ iteration
    def next_key(self, key: Optional[Key] = None) -> Optional[bytes]:
        """The key after ``key`` (the first key when None); None at the end."""
        try:
            b: _Bufs = self._kmv.b  # type: ignore[union-attr]
        except AttributeError:
            b = self._bufs()
        if key is None:
            ref = b.next_first_ref
        else:
            self._set_key(key, b.kmv)
            ref = b.next_ref
        if syscall(NR_BPF, Cmd.BPF_MAP_GET_NEXT_KEY, ref, _ELEM_SIZE) < 0:
            err = get_errno()
            if err == errno.ENOENT:
                return None
            raise SyscallError(err, "BPF_MAP_GET_NEXT_KEY", self.name)
        return b.nbuf.raw[: self.key_size]

    def _raw_keys(self) -> Iterator[bytes]:
        k = self.next_key(None)
        while k is not None:
            yield k
            k = self.next_key(k)

    def keys(self) -> Iterator[Any]:
        """Every key (by BPF_MAP_GET_NEXT_KEY; a deleted current key restarts as the kernel does)."""
        for k in self._raw_keys():
            yield self._decode_key(k)

    __iter__ = keys

    def items(self) -> Iterator[Tuple[Any, Any]]:
        for k in self._raw_keys():
            try:
                v = self.lookup(k)
            except MapKeyError:  # deleted meanwhile
                continue
            yield self._decode_key(k), v

    def values(self) -> Iterator[Any]:
        for _, v in self.items():
            yield v

    def __bool__(self) -> bool:
        """A Map is always true (``if not m`` must not count its keys, or fail before creation)."""
        return True

    def __len__(self) -> int:
        """Number of keys, counted by iteration."""
        return sum(1 for _ in self._raw_keys())

    def clear(self) -> None:
        """Delete every key (arrays cannot delete: they are left as they are)."""
        for k in list(self._raw_keys()):
            try:
                self.delete(k)
            except MapKeyError:
                pass

    # ------------------------------------------------------------ batch operations
    def _batch_buffers(self, count: int) -> Tuple[ctypes.Array, ctypes.Array]:
        keys = ctypes.create_string_buffer(max(self.key_size * count, 1))
        vals = ctypes.create_string_buffer(max(self._vbuf_size * count, 1))
        return keys, vals

    def _batch_walk(self, cmd: int, chunk: Optional[int], elem_flags: int) -> Iterator[Tuple[ctypes.Array, ctypes.Array, int]]:
        """Yield (keys buffer, values buffer, n) per kernel batch until the map is exhausted.

        The buffers are reused: read them before asking for the next batch.
        """
        fd = self._live().fileno()
        chunk = self._auto_chunk(chunk)
        keys, vals = self._batch_buffers(chunk)
        # The batch token is opaque; its size is the key size for hash maps, 4 for arrays: use the max.
        tok_size = max(self.key_size, 8)
        in_tok = ctypes.create_string_buffer(tok_size)
        out_tok = ctypes.create_string_buffer(tok_size)
        first = True
        name = self.name
        while True:
            try:
                n, end = commands.map_batch(
                    cmd,
                    fd,
                    in_batch=0 if first else ctypes.addressof(in_tok),
                    out_batch=ctypes.addressof(out_tok),
                    keys=ctypes.addressof(keys),
                    values=ctypes.addressof(vals),
                    count=chunk,
                    elem_flags=elem_flags,
                    name=name,
                )
            except SyscallError as e:
                if e.errno == errno.ENOSPC and chunk < (1 << 20):  # a bucket larger than the chunk
                    chunk *= 2
                    keys, vals = self._batch_buffers(chunk)
                    continue
                raise
            if n:
                yield keys, vals, n
            if end:
                return
            ctypes.memmove(in_tok, out_tok, tok_size)
            first = False

    def _auto_chunk(self, chunk: Optional[int]) -> int:
        """Elements per batch call: as asked, else about 1 MiB of keys and values."""
        if chunk:
            return chunk
        # the whole map in one call when its keys and values fit in 4 MiB
        cap = (4 << 20) // max(1, self.key_size + self._vbuf_size)
        return max(256, min(self.max_entries or cap, cap))

    def lookup_batch(self, chunk: Optional[int] = None, elem_flags: int = 0) -> Iterator[Tuple[Any, Any]]:
        """(key, value) pairs read with BPF_MAP_LOOKUP_BATCH, ``chunk`` elements per call."""
        for ks, vs in self._batch_columns(Cmd.BPF_MAP_LOOKUP_BATCH, chunk, elem_flags):
            yield from zip(ks, vs)

    def lookup_and_delete_batch(self, chunk: Optional[int] = None, elem_flags: int = 0) -> Iterator[Tuple[Any, Any]]:
        """Read and remove every element with BPF_MAP_LOOKUP_AND_DELETE_BATCH."""
        for ks, vs in self._batch_columns(Cmd.BPF_MAP_LOOKUP_AND_DELETE_BATCH, chunk, elem_flags):
            yield from zip(ks, vs)

    def _batch_columns(self, cmd: int, chunk: Optional[int], elem_flags: int) -> Iterator[Tuple[Sequence[Any], Sequence[Any]]]:
        """Per batch: (decoded keys, decoded values), split at C speed where the layout allows."""
        if self.__dict__.get("_typed") is _PENDING:
            self._resolve_typed()
        ks, vsz = self.key_size, self._vbuf_size
        kfmt = self.key_format if self._kstruct is not None else None
        vfmt = self.value_format if (self._vstruct is not None and not self._percpu) else None
        kd, vd = self._kdec, self._vdec
        for kbuf, vbuf, n in self._batch_walk(cmd, chunk, elem_flags):
            if kfmt is None and kd is not None:  # typed (BTF): decoded in place
                keys: Sequence[Any] = [kd(kbuf, i * ks) for i in range(n)]
            else:
                keys = _splitter(kfmt, ks, n)(kbuf)
            if vd is not None and (vfmt is None or self._percpu):
                if self._percpu:
                    st, ncpu = self._stride, self._ncpu
                    values: Sequence[Any] = [PerCpu([vd(vbuf, i * vsz + c * st) for c in range(ncpu)]) for i in range(n)]
                else:
                    values = [vd(vbuf, i * vsz) for i in range(n)]
            elif self._percpu:
                st, vs, ncpu = self._stride, self.value_size, self._ncpu
                raw = vbuf.raw
                values = [PerCpu([self._decode(raw[i * vsz + c * st : i * vsz + c * st + vs]) for c in range(ncpu)]) for i in range(n)]
            else:
                values = _splitter(vfmt, vsz, n)(vbuf)
            yield keys, values

    def dump(self, chunk: Optional[int] = None) -> Dict[Any, Any]:
        """The whole map as a dict, by batch lookup (falls back to iteration where unsupported)."""
        keys: List[Sequence[Any]] = []
        values: List[Sequence[Any]] = []
        try:
            for ks, vs in self._batch_columns(Cmd.BPF_MAP_LOOKUP_BATCH, chunk, 0):
                keys.append(ks)
                values.append(vs)
            if len(keys) == 1:
                return dict(zip(keys[0], values[0]))
            return dict(zip(itertools.chain.from_iterable(keys), itertools.chain.from_iterable(values)))
        except SyscallError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, _ENOTSUPP):
                raise
        return dict(self.items())

    def update_batch(self, keys: Sequence[Key], values: Sequence[Any], elem_flags: int = 0, flags: int = 0) -> int:
        """BPF_MAP_UPDATE_BATCH; returns how many elements were written."""
        n = len(keys)
        if len(values) != n:
            raise BPFError(f"map {self.name!r}: {n} keys but {len(values)} values")
        kbuf, vbuf = self._pack_keys(keys), bytearray()
        mv = self._bufs().vmv
        for v in values:
            self._set_value(v, mv)
            vbuf += mv
        kc = ctypes.create_string_buffer(bytes(kbuf), len(kbuf) or 1)
        vc = ctypes.create_string_buffer(bytes(vbuf), len(vbuf) or 1)
        done, _ = commands.map_batch(
            Cmd.BPF_MAP_UPDATE_BATCH,
            self._live().fileno(),
            keys=ctypes.addressof(kc),
            values=ctypes.addressof(vc),
            count=n,
            elem_flags=elem_flags,
            flags=flags,
            name=self.name,
        )
        return done

    def delete_batch(self, keys: Sequence[Key], elem_flags: int = 0) -> int:
        """BPF_MAP_DELETE_BATCH; returns how many elements were deleted."""
        kbuf = self._pack_keys(keys)
        kc = ctypes.create_string_buffer(bytes(kbuf), len(kbuf) or 1)
        done, _ = commands.map_batch(
            Cmd.BPF_MAP_DELETE_BATCH,
            self._live().fileno(),
            keys=ctypes.addressof(kc),
            count=len(keys),
            elem_flags=elem_flags,
            name=self.name,
        )
        return done

    def _pack_keys(self, keys: Iterable[Key]) -> bytearray:
        mv = self._bufs().kmv
        out = bytearray()
        for k in keys:
            self._set_key(k, mv)
            out += mv
        return out

    # ------------------------------------------------------------ special operations
    def freeze(self) -> None:
        """Make the map read-only for user space (BPF_MAP_FREEZE)."""
        commands.map_freeze(self._live().fileno(), name=self.name)

    def mmap(self, writable: bool = True) -> _mmap.mmap:
        """Memory-map a BPF_F_MMAPABLE array; the caller owns (and closes) the mapping.

        An arena's memory is :attr:`arena` (one mapping, the map's own).
        """
        if self.type == MapType.BPF_MAP_TYPE_ARENA:
            raise BPFError(f"map {self.name!r} is an arena: its memory is map.arena (mapped once, owned by the map)")
        if not self.flags & BPF_F_MMAPABLE:
            raise BPFError(f"map {self.name!r} was not created with BPF_F_MMAPABLE")
        size = ((self.value_size + 7) & ~7) * self.max_entries
        page = _mmap.PAGESIZE
        size = max(page, (size + page - 1) // page * page)
        prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
        try:
            return _mmap.mmap(self._live().fileno(), size, _mmap.MAP_SHARED, prot)
        except OSError as e:
            raise SyscallError(e.errno or errno.EINVAL, "mmap", self.name) from None


    # ------------------------------------------------------------ arena (BPF_MAP_TYPE_ARENA, 6.9+)
    @property
    def arena(self) -> "ArenaMapping":
        """An arena map's memory in this process (:class:`~pybpfload.kernel.arena.ArenaMapping`).

        An object's load maps it right after creating the map, as libbpf does
        (programs that use the arena need its user address); a map made by hand
        is mapped on first use.  At ``map_extra`` when set, else where the
        kernel picks.  The map owns the mapping: :meth:`close` unmaps it.
        """
        a: Optional["ArenaMapping"] = self.__dict__.get("_arena")
        if a is not None:
            return a
        if self.type != MapType.BPF_MAP_TYPE_ARENA:
            raise BPFError(f"map {self.name!r} is not an arena ({_type_name(self.type)})")
        return self._map_arena()

    def _map_arena(self) -> "ArenaMapping":
        """mmap the whole arena (``max_entries`` pages), at ``map_extra`` when set."""
        from .arena import ArenaMapping

        fd = self._live()
        a = ArenaMapping(fd.fileno(), _mmap.PAGESIZE * self.max_entries, self.map_extra, self.name)
        a.globals_offset, a.globals_size = self.__dict__.get("_arena_globals", (0, 0))
        self.__dict__["_arena"] = a
        return a

    def _arena_globals_view(self) -> Any:
        """The object's __arena globals in the mapping, as a writable buffer."""
        a = self.arena
        return a.view(a.globals_offset, a.globals_size)

    def _unmap_arena(self) -> None:
        a = self.__dict__.get("_arena")
        if a is not None:
            self.__dict__["_arena"] = None
            a.close()


@lru_cache(maxsize=64)
def _splitter(fmt: Optional[str], size: int, n: int) -> Callable[[Any], Sequence[Any]]:
    """A function splitting a buffer of n records of ``size`` bytes into n Python values.

    Raw records become bytes; a :mod:`struct` format with one field gives
    numbers, with several fields tuples.
    """
    if fmt is None:
        return struct.Struct(f"{size}s" * n).unpack_from
    one = struct.Struct(fmt)
    if len(one.unpack(bytes(one.size))) == 1:
        prefix = fmt[0] if fmt[0] in "@=<>!" else ""
        body = fmt[len(prefix) :]
        if struct.calcsize(prefix + body * 2) == 2 * one.size:
            return struct.Struct(prefix + body * n).unpack_from
    total = size * n

    def split(buf: Any) -> Sequence[Any]:
        return list(one.iter_unpack(memoryview(buf).cast("B")[:total]))

    return split


def _dup(fd: int) -> int:
    import fcntl

    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError as e:
        raise SyscallError(e.errno or errno.EBADF, "dup", f"fd {fd}") from None


def _info(fd: int, name: Optional[str]) -> MapInfo:
    i = commands.obj_get_info_by_fd(fd, _MapInfo(), name=name)
    return MapInfo(
        type=i.type,
        id=i.id,
        key_size=i.key_size,
        value_size=i.value_size,
        max_entries=i.max_entries,
        flags=i.map_flags,
        name=i.name.decode("utf-8", "replace"),
        ifindex=i.ifindex,
        btf_id=i.btf_id,
        btf_key_type_id=i.btf_key_type_id,
        btf_value_type_id=i.btf_value_type_id,
        map_extra=i.map_extra,
    )
