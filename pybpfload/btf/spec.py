"""Lazy BTF decoder.

:class:`Spec` keeps the raw bytes, walks the type section once to record
where each type starts, and decodes a type into a :mod:`types` object only
when it is asked for.  Finding a type by name searches the string section
(at C speed) and then the array of name offsets: no type is decoded for it.
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import Dict, Iterator, List, Optional, Type as PyType, TypeVar

from ..errors import BTFError
from . import types as T

BTF_MAGIC = 0xEB9F
_HDR = struct.Struct("<HBBIIIII")

# Extra 32-bit words after the 3-word common header, per kind: (fixed, per vlen item).
_EXTRA = {
    T.Kind.INT: (1, 0),
    T.Kind.PTR: (0, 0),
    T.Kind.ARRAY: (3, 0),
    T.Kind.STRUCT: (0, 3),
    T.Kind.UNION: (0, 3),
    T.Kind.ENUM: (0, 2),
    T.Kind.FWD: (0, 0),
    T.Kind.TYPEDEF: (0, 0),
    T.Kind.VOLATILE: (0, 0),
    T.Kind.CONST: (0, 0),
    T.Kind.RESTRICT: (0, 0),
    T.Kind.FUNC: (0, 0),
    T.Kind.FUNC_PROTO: (0, 2),
    T.Kind.VAR: (1, 0),
    T.Kind.DATASEC: (0, 3),
    T.Kind.FLOAT: (0, 0),
    T.Kind.DECL_TAG: (1, 0),
    T.Kind.TYPE_TAG: (0, 0),
    T.Kind.ENUM64: (0, 3),
}
_FIXED = [0] * 32
_PER = [-1] * 32  # -1: unknown kind
for _k, (_f, _p) in _EXTRA.items():
    _FIXED[_k] = _f
    _PER[_k] = _p

TT = TypeVar("TT", bound=T.Type)


class Spec:
    """Types and strings of one BTF blob (optionally split on top of a base)."""

    def __init__(self, data: bytes, base: Optional["Spec"] = None) -> None:
        if len(data) < _HDR.size:
            raise BTFError(f"BTF too short for its header: {len(data)} bytes")
        magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = _HDR.unpack_from(data)
        if magic != BTF_MAGIC:
            if magic == 0x9FEB:
                raise BTFError("big-endian BTF is not supported")
            raise BTFError(f"bad BTF magic {magic:#06x}")
        if version != 1:
            raise BTFError(f"unsupported BTF version {version}")
        if hdr_len < _HDR.size or hdr_len > len(data):
            raise BTFError(f"bad BTF header length {hdr_len}")
        tstart, sstart = hdr_len + type_off, hdr_len + str_off
        if type_off % 4 or tstart + type_len > len(data) or type_len % 4:
            raise BTFError(f"BTF type section out of bounds or misaligned (off {type_off}, len {type_len})")
        if sstart + str_len > len(data):
            raise BTFError(f"BTF string section out of bounds (off {str_off}, len {str_len})")
        self.raw = bytes(data)
        self.base = base
        self.flags = flags
        self.hdr_len = hdr_len
        self._strings = self.raw[sstart : sstart + str_len]
        if base is None and str_len and self._strings[:1] != b"\0":
            raise BTFError("BTF string section does not start with an empty string")
        if str_len and self._strings[-1:] != b"\0":
            raise BTFError("BTF string section is not NUL-terminated")
        self._type_start = tstart
        self._type_len = type_len
        self.first_id = 1 if base is None else len(base)
        self.str_base = 0 if base is None else base.str_base + len(base._strings)
        self._words = memoryview(self.raw[tstart : tstart + type_len]).cast("I")
        if sys.byteorder != "little":  # pragma: no cover - BTF here is little-endian
            raise BTFError("only little-endian hosts are supported")
        self._offsets, self._name_offs = self._index()
        self._cache: Dict[int, T.Type] = {}

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes, base: Optional["Spec"] = None) -> "Spec":
        return cls(data, base)

    @classmethod
    def from_file(cls, path: str, base: Optional["Spec"] = None) -> "Spec":
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise BTFError(f"cannot read BTF from {path}: {e.strerror}") from e
        return cls(data, base)

    def _index(self) -> "tuple[array, array]":
        w = self._words
        n = len(w)
        offsets = array("I")
        names = array("I")
        add_off, add_name = offsets.append, names.append
        fixed, per = _FIXED, _PER
        i = 0
        try:
            while i < n:
                info = w[i + 1]
                kind = (info >> 24) & 0x1F
                p = per[kind]
                if p < 0:
                    raise BTFError(f"unknown BTF kind {kind} at type id {self._first_id_guess() + len(offsets)}")
                add_off(i)
                add_name(w[i])
                i += 3 + fixed[kind] + p * (info & 0xFFFF)
        except IndexError:
            raise BTFError("truncated BTF type record") from None
        if i != n:
            raise BTFError("truncated BTF type record")
        return offsets, names

    def _first_id_guess(self) -> int:
        return 1 if self.base is None else len(self.base)

    # -- strings ----------------------------------------------------------------------
    def string(self, off: int) -> str:
        if off < self.str_base:
            assert self.base is not None
            return self.base.string(off)
        local = off - self.str_base
        s = self._strings
        if local >= len(s) or local < 0:
            raise BTFError(f"BTF string offset {off} out of range")
        end = s.index(b"\0", local)
        return s[local:end].decode("utf-8", "replace")

    # -- types --------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of type ids, void included (btf__type_cnt semantics)."""
        return self.first_id + len(self._offsets)

    type_cnt = property(__len__)

    def type(self, tid: int) -> T.Type:
        t = self._cache.get(tid)
        if t is not None:
            return t
        if tid < self.first_id:
            if tid == 0:
                t = T.Void(0, "void")
            elif self.base is not None:
                return self.base.type(tid)
            else:  # pragma: no cover
                raise BTFError(f"BTF type id {tid} out of range")
        else:
            if tid >= len(self):
                raise BTFError(f"BTF type id {tid} out of range (have {len(self)})")
            t = self._decode(tid)
        self._cache[tid] = t
        return t

    def __iter__(self) -> Iterator[T.Type]:
        for tid in range(self.first_id, len(self)):
            yield self.type(tid)

    def kind_of(self, tid: int) -> T.Kind:
        if tid < self.first_id:
            return T.Kind.UNKN if self.base is None or tid == 0 else self.base.kind_of(tid)
        return T.Kind((self._words[self._offsets[tid - self.first_id] + 1] >> 24) & 0x1F)

    def name_of(self, tid: int) -> str:
        if tid < self.first_id:
            return "void" if self.base is None or tid == 0 else self.base.name_of(tid)
        return self.string(self._name_offs[tid - self.first_id])

    def _decode(self, tid: int) -> T.Type:
        w = self._words
        i = self._offsets[tid - self.first_id]
        name_off, info, size_type = w[i], w[i + 1], w[i + 2]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = self.string(name_off)
        x = i + 3
        K = T.Kind
        if kind == K.INT:
            enc = w[x]
            return T.Int(tid, name, size_type, (enc >> 24) & 0xF, (enc >> 16) & 0xFF, enc & 0xFF)
        if kind == K.PTR:
            return T.Pointer(tid, name, size_type)
        if kind == K.ARRAY:
            return T.Array(tid, name, w[x], w[x + 1], w[x + 2])
        if kind in (K.STRUCT, K.UNION):
            members = []
            for j in range(vlen):
                m = x + 3 * j
                off = w[m + 2]
                if kflag:
                    bits, bitoff = off >> 24, off & 0xFFFFFF
                else:
                    bits, bitoff = 0, off
                members.append(T.Member(self.string(w[m]), w[m + 1], bitoff, bits))
            cls = T.Struct if kind == K.STRUCT else T.Union
            return cls(tid, name, size_type, tuple(members))
        if kind == K.ENUM:
            vals = []
            for j in range(vlen):
                v = w[x + 2 * j + 1]
                if kflag and v >= 1 << 31:
                    v -= 1 << 32
                vals.append(T.EnumValue(self.string(w[x + 2 * j]), v))
            return T.Enum(tid, name, size_type, tuple(vals), kflag)
        if kind == K.ENUM64:
            vals = []
            for j in range(vlen):
                m = x + 3 * j
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
            return T.TypeTag(tid, name, size_type)
        if kind == K.FUNC:
            return T.Func(tid, name, size_type, vlen)
        if kind == K.FUNC_PROTO:
            params = tuple(T.Param(self.string(w[x + 2 * j]), w[x + 2 * j + 1]) for j in range(vlen))
            return T.FuncProto(tid, name, size_type, params)
        if kind == K.VAR:
            return T.Var(tid, name, size_type, w[x])
        if kind == K.DATASEC:
            vs = tuple(T.VarSecinfo(w[x + 3 * j], w[x + 3 * j + 1], w[x + 3 * j + 2]) for j in range(vlen))
            return T.Datasec(tid, name, size_type, vs)
        if kind == K.FLOAT:
            return T.Float(tid, name, size_type)
        if kind == K.DECL_TAG:
            ci = w[x]
            return T.DeclTag(tid, name, size_type, ci - (1 << 32) if ci >= 1 << 31 else ci)
        raise BTFError(f"unknown BTF kind {kind} at type id {tid}")  # pragma: no cover

    # -- queries ------------------------------------------------------------------------
    def find_ids(self, name: str) -> List[int]:
        """Ids of every type called ``name`` (base BTF first), without decoding any."""
        out: List[int] = self.base.find_ids(name) if self.base is not None else []
        needle = b"\0" + name.encode() + b"\0"
        s = self._strings
        start = 0
        names = self._name_offs
        while True:
            pos = s.find(needle, start)
            if pos < 0:
                break
            off = pos + 1 + self.str_base
            j = 0
            while True:
                try:
                    j = names.index(off, j)
                except ValueError:
                    break
                out.append(self.first_id + j)
                j += 1
            start = pos + 1
        return out

    def find(self, name: str, cls: "PyType[TT]") -> TT:
        """The one type called ``name`` of class ``cls`` (e.g. ``T.Struct``)."""
        for tid in self.find_ids(name):
            if self.kind_of(tid) == cls.kind:
                return self.type(tid)  # type: ignore[return-value]
        raise KeyError(f"no {cls.kind.name} named {name!r} in BTF")

    def resolve(self, tid: int) -> T.Type:
        """The type behind typedefs and cv-qualifiers."""
        seen = 0
        t = self.type(tid)
        while isinstance(t, T.MODIFIERS):
            t = self.type(t.type)
            seen += 1
            if seen > 64:
                raise BTFError(f"BTF type {tid}: modifier chain too long (loop?)")
        return t


__all__ = ["Spec", "BTF_MAGIC"]

