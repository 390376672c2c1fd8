"""Lazy BTF decoder.

:class:`Spec` copies the type section into an array of 32-bit words, records
where each type starts (see :mod:`._index`; the result is cached on disk for
large blobs such as vmlinux BTF, see :mod:`._cache`) and decodes a type into
a :mod:`types` object only when it is asked for.  Finding a type by name
searches the string section and then the type section at C speed: no type
is decoded for it.
"""

from __future__ import annotations

import os
import re
import struct
import sys
from array import array
from bisect import bisect_left
from typing import Any, Dict, Iterator, List, Optional, Tuple, Type as PyType, TypeVar, Union

from ..errors import BTFError
from . import _cache, _index
from . import types as T

BTF_MAGIC = 0xEB9F
HEADER = struct.Struct("<HBBIIIII")
BTF_MAX_STR_OFFSET = 0x7FFFFFFF
KERNEL_BTF_DIR = "/sys/kernel/btf"

TT = TypeVar("TT", bound=T.Type)
_NUL = re.compile(b"\0")


class _K:
    """Kind numbers as plain ints (IntEnum attribute access is slow on 3.11)."""


for _kind in T.Kind:
    setattr(_K, _kind.name, int(_kind))
Buffer = Union[bytes, bytearray, memoryview]


class TypeNotFoundError(BTFError, KeyError):
    """No type of that name (and kind) exists in the BTF."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "type not found"


class Spec:
    """Types and strings of one BTF blob (optionally split on top of a base).

    ``len(spec)`` counts type ids with void included (``btf__type_cnt``); for
    split BTF, ids continue after the base's and strings offsets after the
    base's string section.  ``cache`` controls the on-disk index cache:
    None (default) uses it for blobs of 256 KiB and more.
    ``unique_strings`` promises that no string occurs twice in the string
    section (true of kernel BTF, which pahole deduplicates): a name lookup
    then stops at the first occurrence instead of scanning every string.
    """

    def __init__(
        self,
        data: Buffer,
        base: Optional["Spec"] = None,
        *,
        cache: Optional[bool] = None,
        unique_strings: bool = False,
        _mapped: bool = False,
        _file_key: Optional[Tuple[int, int, int]] = None,
    ) -> None:
        mv = memoryview(data).cast("B")
        size = len(mv)
        if size < HEADER.size:
            raise BTFError(f"BTF too short for its header: {size} bytes")
        magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = HEADER.unpack_from(mv)
        if magic != BTF_MAGIC:
            if magic == 0x9FEB:
                raise BTFError("big-endian BTF is not supported")
            raise BTFError(f"bad BTF magic {magic:#06x}")
        if version != 1:
            raise BTFError(f"unsupported BTF version {version}")
        if hdr_len < HEADER.size or hdr_len > size:
            raise BTFError(f"bad BTF header length {hdr_len}")
        tstart, sstart = hdr_len + type_off, hdr_len + str_off
        if type_off % 4 or type_len % 4 or tstart + type_len > size:
            raise BTFError(f"BTF type section out of bounds or misaligned (off {type_off}, len {type_len})")
        if sstart + str_len > size:
            raise BTFError(f"BTF string section out of bounds (off {str_off}, len {str_len})")
        if type_off + type_len > str_off:
            raise BTFError("BTF type and string sections overlap or are out of order")
        if str_len > BTF_MAX_STR_OFFSET:
            raise BTFError(f"BTF string section too large ({str_len} bytes)")
        if sys.byteorder != "little":  # pragma: no cover - BTF here is little-endian
            raise BTFError("only little-endian hosts are supported")
        self.base = base
        self.flags = flags
        self.hdr_len = hdr_len
        # Keep the buffer (bytes, or a read-only private mapping of the file):
        # strings are read from it in place; the type words are copied into an
        # array (faster to index) unless the index comes from the cache.
        self._buf: Union[bytes, memoryview] = data if isinstance(data, bytes) else (mv if _mapped else bytes(mv))
        buf = self._buf
        self._sstart, self._send = sstart, sstart + str_len
        self._tstart, self._tend = tstart, tstart + type_len
        if base is None and str_len and buf[sstart] != 0:
            raise BTFError("BTF string section does not start with an empty string")
        if str_len and buf[sstart + str_len - 1] != 0:
            raise BTFError("BTF string section is not NUL-terminated")
        if base is None and not str_len:
            raise BTFError("BTF has no string section")
        self._str_len = str_len
        self._unique_strings = unique_strings
        self.first_id = 1 if base is None else len(base)
        self.str_base: int = 0 if base is None else base.str_base + base._str_len
        self._cache_key: Optional[Tuple[int, int, int]] = _file_key
        self._words: Any = None
        self._names: Optional[bytes] = None  # see _name_words
        self._offsets = self._build_index(mv, cache)
        self._types: Dict[int, T.Type] = {}
        self._scans = 0

    def _build_index(self, mv: memoryview, cache: Optional[bool]) -> "array[int]":
        tsec = mv[self._tstart : self._tend]
        use_cache = cache if cache is not None else len(mv) >= _cache.MIN_CACHED_BYTES
        use_cache = use_cache and _cache.cache_dir() is not None  # disabled (PYBPFLOAD_CACHE_DIR=""): no key, no names
        if mv.readonly and self._tstart % 4 == 0:
            words: Any = tsec.cast("I")  # a read-only blob (a mapped kernel BTF): no 5 MB copy
        else:
            words = array("I")
            words.frombytes(tsec)
        self._words = words
        if use_cache:
            if self._cache_key is None:  # kernel BTF comes with a cheaper key (see from_file)
                self._cache_key = _cache.content_key(mv)
            hit = _cache.load(self._cache_key, words)
            if hit is not None:
                offsets, self._names = hit  # the name words too: name lookups need no scan
                return offsets
        offsets = _index.walk(words)
        if use_cache and self._cache_key is not None:
            self._names = _index.names_of(words, offsets).tobytes()  # kept: as a cache hit has them
            _cache.store(self._cache_key, offsets, self._names)
        return offsets

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: Buffer, base: Optional["Spec"] = None, *, cache: Optional[bool] = None) -> "Spec":
        """Decode raw BTF (header, types, strings)."""
        return cls(data, base, cache=cache)

    @classmethod
    def from_file(cls, path: "str | os.PathLike[str]", base: Optional["Spec"] = None, *, cache: Optional[bool] = None) -> "Spec":
        """Decode a raw BTF file such as /sys/kernel/btf/vmlinux.

        The file is mapped read-only and private when possible (the mapping
        lives as long as the Spec, and holds no fd), and read otherwise.
        Files under /sys/kernel/btf are kernel BTF, whose strings are unique;
        their index cache entry is keyed by the file's identity and the boot
        (:func:`._cache.kernel_file_key`) rather than a CRC of all its bytes.
        """
        from ._mapped import map_file

        unique = os.path.abspath(os.fspath(path)).startswith(KERNEL_BTF_DIR + "/")
        try:
            mapped = map_file(path)
            if mapped is not None:
                keyed = unique and cache is not False and _cache.cache_dir() is not None
                key = _cache.kernel_file_key(path, mapped) if keyed else None
                return cls(mapped, base, cache=cache, unique_strings=unique, _mapped=True, _file_key=key)
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise BTFError(f"cannot read BTF from {path}: {e.strerror}") from e
        return cls(data, base, cache=cache, unique_strings=unique)

    @property
    def raw(self) -> bytes:
        """The BTF blob this Spec was decoded from."""
        return bytes(self._buf)

    @property
    def strings(self) -> bytes:
        """This blob's own string section (without the base's)."""
        return bytes(self._buf[self._sstart : self._send])

    # -- strings ----------------------------------------------------------------------
    def string(self, off: int) -> str:
        """The string at offset ``off`` (offsets below str_base are the base's)."""
        if off < self.str_base:
            assert self.base is not None
            return self.base.string(off)
        local = off - self.str_base
        if local >= self._str_len or local < 0:
            raise BTFError(f"BTF string offset {off} out of range")
        start = self._sstart + local
        buf = self._buf
        m = _NUL.search(buf, start, self._send)
        end = m.start() if m is not None else self._send
        return str(buf[start:end], "utf-8", "replace")

    def string_offset(self, value: str) -> Optional[int]:
        """Offset of an existing string equal to ``value`` (base first), or None."""
        if self.base is not None:
            off = self.base.string_offset(value)
            if off is not None:
                return off
        for local in self._string_hits(value.encode()):
            return self.str_base + local
        return None

    def _string_hits(self, needle: bytes) -> List[int]:
        """Local offsets of every string equal to ``needle``."""
        buf, start, end = self._buf, self._sstart, self._send
        found = []
        if needle and bytes(buf[start : start + len(needle) + 1]) == needle + b"\0":
            found.append(0)
        # "\0name" followed by a NUL that is not consumed, so adjacent hits are all found
        pat = re.compile(b"\0" + re.escape(needle) + b"(?=\0)")
        if self._unique_strings and found:
            return found
        for m in pat.finditer(buf, start, end):
            found.append(m.start() + 1 - start)
            if self._unique_strings:
                break
        return found

    # -- types --------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of type ids, void included (btf__type_cnt semantics)."""
        return self.first_id + len(self._offsets)

    type_cnt = property(__len__)

    def type(self, tid: int) -> T.Type:
        """The type with id ``tid`` (0 is void); decoded on first use."""
        t = self._types.get(tid)
        if t is not None:
            return t
        if tid < self.first_id:
            if tid == 0:
                t = T.Void(0, "void")
            elif self.base is not None and tid > 0:
                return self.base.type(tid)
            else:
                raise BTFError(f"BTF type id {tid} out of range")
        else:
            if tid >= self.first_id + len(self._offsets):
                raise BTFError(f"BTF type id {tid} out of range (have {len(self)})")
            t = self._decode(tid)
        self._types[tid] = t
        return t

    def __iter__(self) -> Iterator[T.Type]:
        """This blob's own types, in id order (void and base types excluded)."""
        for tid in range(self.first_id, len(self)):
            yield self.type(tid)

    def _info(self, tid: int) -> int:
        if tid >= len(self) or tid < self.first_id:
            raise BTFError(f"BTF type id {tid} out of range (have {len(self)})")
        return self._words[self._offsets[tid - self.first_id] + 1]

    def kind_of(self, tid: int) -> T.Kind:
        """The kind of a type, without decoding it."""
        if tid < self.first_id:
            if tid == 0:
                return T.Kind.UNKN
            if self.base is None or tid < 0:
                raise BTFError(f"BTF type id {tid} out of range")
            return self.base.kind_of(tid)
        return T.Kind((self._info(tid) >> 24) & 0x1F)

    def name_of(self, tid: int) -> str:
        """The name of a type ('' when anonymous, 'void' for 0), without decoding it."""
        if tid < self.first_id:
            if tid == 0:
                return "void"
            if self.base is None or tid < 0:
                raise BTFError(f"BTF type id {tid} out of range")
            return self.base.name_of(tid)
        self._info(tid)
        return self.string(self._words[self._offsets[tid - self.first_id]])

    def _decode(self, tid: int) -> T.Type:
        w = self._words
        i = self._offsets[tid - self.first_id]
        name_off, info, size_type = w[i], w[i + 1], w[i + 2]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = self.string(name_off)
        x = i + 3
        K: Any = _K  # plain ints (see _K), set by name below its class
        if kind == K.INT:
            enc = w[x]
            return T.Int(tid, name, size_type, (enc >> 24) & 0xF, (enc >> 16) & 0xFF, enc & 0xFF)
        if kind == K.PTR:
            return T.Pointer(tid, name, size_type)
        if kind == K.ARRAY:
            return T.Array(tid, name, w[x], w[x + 1], w[x + 2])
        if kind == K.STRUCT or kind == K.UNION:
            members = []
            string = self.string
            for m in range(x, x + 3 * vlen, 3):
                off = w[m + 2]
                if kflag:
                    members.append(T.Member(string(w[m]), w[m + 1], off & 0xFFFFFF, off >> 24))
                else:
                    members.append(T.Member(string(w[m]), w[m + 1], off, 0))
            cls = T.Struct if kind == K.STRUCT else T.Union
            return cls(tid, name, size_type, tuple(members), kflag)
        if kind == K.ENUM:
            vals = []
            for m in range(x, x + 2 * vlen, 2):
                v = w[m + 1]
                if kflag and v >= 1 << 31:
                    v -= 1 << 32
                vals.append(T.EnumValue(self.string(w[m]), v))
            return T.Enum(tid, name, size_type, tuple(vals), kflag)
        if kind == K.ENUM64:
            vals = []
            for m in range(x, x + 3 * vlen, 3):
                v = w[m + 1] | (w[m + 2] << 32)
                if kflag and v >= 1 << 63:
                    v -= 1 << 64
                vals.append(T.EnumValue(self.string(w[m]), v))
            return T.Enum64(tid, name, size_type, tuple(vals), kflag)
        if kind == K.FWD:
            return T.Fwd(tid, name, kflag)
        if kind == K.TYPEDEF:
            return T.Typedef(tid, name, size_type)
        if kind == K.VOLATILE:
            return T.Volatile(tid, name, size_type)
        if kind == K.CONST:
            return T.Const(tid, name, size_type)
        if kind == K.RESTRICT:
            return T.Restrict(tid, name, size_type)
        if kind == K.TYPE_TAG:
            return T.TypeTag(tid, name, size_type, kflag)
        if kind == K.FUNC:
            return T.Func(tid, name, size_type, vlen)
        if kind == K.FUNC_PROTO:
            params = tuple(T.Param(self.string(w[m]), w[m + 1]) for m in range(x, x + 2 * vlen, 2))
            return T.FuncProto(tid, name, size_type, params)
        if kind == K.VAR:
            return T.Var(tid, name, size_type, w[x])
        if kind == K.DATASEC:
            vs = tuple(T.VarSecinfo(w[m], w[m + 1], w[m + 2]) for m in range(x, x + 3 * vlen, 3))
            return T.Datasec(tid, name, size_type, vs)
        if kind == K.FLOAT:
            return T.Float(tid, name, size_type)
        if kind == K.DECL_TAG:
            ci = w[x]
            return T.DeclTag(tid, name, size_type, ci - (1 << 32) if ci >= 1 << 31 else ci, kflag)
        raise BTFError(f"unknown BTF kind {kind} at type id {tid}")  # pragma: no cover - the walk rejects it

    # -- name lookup --------------------------------------------------------------------
    # name lookups answered by scanning the type section before the name_off words are gathered
    _SCANS_BEFORE_INDEX = 3

    def _ids_with_name_offset(self, off: int) -> List[int]:
        """Ids of the records whose name_off is ``off``.

        The first few lookups of a Spec search the whole type section for the
        word (one regex scan, 1-13 ms on vmlinux: most hits are not names,
        2048 is a common size) and keep the hits that start a record.  Then
        the name_off words of all records are gathered once into one buffer
        (:meth:`_name_words`, ~10 ms on vmlinux), where every aligned hit is a
        record: later lookups (a CO-RE object's candidate search asks for many
        names) take ~0.3 ms.
        """
        first = self.first_id
        names = self._names
        if names is None:
            self._scans += 1
            if self._scans > self._SCANS_BEFORE_INDEX:
                names = self._name_words()
        if names is not None:  # native words
            pattern = re.compile(re.escape(off.to_bytes(4, sys.byteorder)))
            return [first + (m.start() >> 2) for m in pattern.finditer(names) if m.start() & 3 == 0]
        pattern = re.compile(re.escape(off.to_bytes(4, "little")))  # the blob's words
        out: List[int] = []
        offsets = self._offsets
        n = len(offsets)
        tstart = self._tstart
        for m in pattern.finditer(self._buf, tstart, self._tend):
            rel = m.start() - tstart
            if rel & 3 == 0:
                k = bisect_left(offsets, rel >> 2)
                if k < n and offsets[k] == rel >> 2:
                    out.append(first + k)
        return out

    def _find(self, needle: bytes, start: int, end: int) -> int:
        """``bytes.find`` over the raw BTF (a mapped file's too, without copying it)."""
        buf = self._buf
        if isinstance(buf, bytes):
            return buf.find(needle, start, end)
        from ._mapped import find

        return find(buf, needle, start, end)

    def _name_words(self) -> bytes:
        """The name_off word of every record, in id order, as native 32-bit words."""
        names = self._names
        if names is None:
            w = self._words
            names = self._names = array("I", map(w.__getitem__, self._offsets)).tobytes()
        return names

    def find_ids(self, name: str) -> List[int]:
        """Ids of every type called ``name`` (base BTF first), without decoding any."""
        out: List[int] = self.base.find_ids(name) if self.base is not None else []
        if not name:
            return out
        found = self._string_hits(name.encode())
        for local in found:
            out.extend(self._ids_with_name_offset(self.str_base + local))
        if len(found) > 1:
            out.sort()
        return out

    def find_all(self, name: str, cls: "Optional[PyType[TT]]" = None) -> List[T.Type]:
        """Every type called ``name``, optionally only of ``cls``'s kind."""
        return [self.type(i) for i in self.find_ids(name) if cls is None or self.kind_of(i) == cls.kind]

    def find_id(self, name: str, kind: "Optional[T.Kind]" = None) -> int:
        """The id of the first type called ``name`` (of ``kind``); btf__find_by_name_kind."""
        for tid in self.find_ids(name):
            if kind is None or self.kind_of(tid) == kind:
                return tid
        what = kind.name if kind is not None else "type"
        raise TypeNotFoundError(f"no {what} named {name!r} in BTF")

    def find(self, name: str, cls: "PyType[TT]") -> TT:
        """The first type called ``name`` of class ``cls`` (e.g. ``T.Struct``)."""
        return self.type(self.find_id(name, cls.kind))  # type: ignore[return-value]

    def ids_of_kind(self, kind: T.Kind) -> List[int]:
        """Ids of this blob's own types of one kind (no type is decoded)."""
        w, first = self._words, self.first_id
        return [first + j for j, o in enumerate(self._offsets) if (w[o + 1] >> 24) & 0x1F == kind]

    # -- queries (see :mod:`.query`) -----------------------------------------------------
    def resolve(self, tid: int) -> T.Type:
        """The type behind typedefs, cv-qualifiers and type tags."""
        from .query import skip_modifiers

        return self.type(skip_modifiers(self, tid))

    def size(self, tid: int) -> int:
        """sizeof() of a type, like btf__resolve_size."""
        from .query import sizeof

        return sizeof(self, tid)

    def align(self, tid: int) -> int:
        """The natural alignment of a type, like btf__align_of."""
        from .query import alignof

        return alignof(self, tid)

    def describe(self, tid: int) -> str:
        """A readable one-line description, e.g. ``struct task_struct (id 42, size 9792)``."""
        from .query import describe

        return describe(self, tid)

    def __repr__(self) -> str:
        split = f", split on {len(self.base)} base types" if self.base is not None else ""
        return f"<Spec {len(self)} types{split}>"

    def __getstate__(self) -> Dict[str, Any]:  # pragma: no cover - convenience
        return {"raw": self.raw, "base": self.base}

    def __setstate__(self, state: Dict[str, Any]) -> None:  # pragma: no cover
        self.__init__(state["raw"], state["base"])  # type: ignore[misc]


__all__ = ["Spec", "BTF_MAGIC", "HEADER", "TypeNotFoundError"]
