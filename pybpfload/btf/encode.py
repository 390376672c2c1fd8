"""Encoding BTF: the type model back to bytes, and an editable BTF.

:func:`encode_type` writes one type record; :class:`StringTable` interns
names; :class:`Builder` holds an editable list of types (start empty, or
from a :class:`Spec`) whose :meth:`Builder.encode` output is byte-identical
to the input when nothing was changed.
"""

from __future__ import annotations

from array import array
from typing import Dict, Iterable, Iterator, List, Optional, Union

from ..errors import BTFError
from . import types as T
from .spec import BTF_MAGIC, HEADER, Spec

MAX_VLEN = 0xFFFF


class StringTable:
    """A BTF string section under construction; offsets of existing strings are kept.

    ``base_len`` is the length of the base BTF's strings for split BTF: this
    table's offsets start there.  Strings of the base are not duplicated when
    ``base`` (a Spec) is given.
    """

    def __init__(self, data: bytes = b"\0", base: Optional[Spec] = None) -> None:
        if base is None and data[:1] != b"\0":
            raise BTFError("a BTF string section starts with an empty string")
        if data and data[-1:] != b"\0":
            raise BTFError("a BTF string section ends with a NUL")
        self._data = bytearray(data)
        self._base = base
        self.base_len = 0 if base is None else base.str_base + len(base.strings)
        self._index: Optional[Dict[bytes, int]] = None

    def _build_index(self) -> Dict[bytes, int]:
        index: Dict[bytes, int] = {}
        pos = 0
        for s in bytes(self._data).split(b"\0")[:-1]:
            index.setdefault(s, pos)
            pos += len(s) + 1
        self._index = index
        return index

    def add(self, s: str) -> int:
        """The offset of ``s``, appended if it is not there yet (btf__add_str)."""
        if not s:
            return 0
        if self._base is not None:
            off = self._base.string_offset(s)
            if off is not None:
                return off
        raw = s.encode()
        if b"\0" in raw:
            raise BTFError(f"BTF strings cannot contain NUL: {s!r}")
        index = self._index if self._index is not None else self._build_index()
        off = index.get(raw)
        if off is None:
            off = len(self._data)
            self._data += raw + b"\0"
            index[raw] = off
        return self.base_len + off

    def find(self, s: str) -> Optional[int]:
        """The offset of ``s`` if present (btf__find_str)."""
        index = self._index if self._index is not None else self._build_index()
        off = index.get(s.encode())
        return None if off is None else self.base_len + off

    def __bytes__(self) -> bytes:
        return bytes(self._data)

    def __len__(self) -> int:
        return len(self._data)


def _check_vlen(t: T.Type, n: int) -> int:
    if n > MAX_VLEN:
        raise BTFError(f"BTF type {t.name or t.id!r}: {n} items exceed the vlen limit {MAX_VLEN}")
    return n


def _u32(v: int) -> int:
    return v & 0xFFFFFFFF


def encode_type(t: T.Type, strings: StringTable, out: "array[int]") -> None:
    """Append the record of ``t`` (32-bit words) to ``out``."""
    name = strings.add(t.name) if t.name else 0
    kind = t.kind

    def head(vlen: int, size_type: int, kflag: bool = False) -> None:
        out.extend((name, (int(kflag) << 31) | (int(kind) << 24) | vlen, _u32(size_type)))

    if isinstance(t, T.Int):
        if t.bits > 128 or t.offset + t.bits > 8 * t.size:
            raise BTFError(f"bad INT {t.name!r}: {t.bits} bits at {t.offset} in {t.size} bytes")
        head(0, t.size)
        out.append((t.encoding << 24) | (t.offset << 16) | t.bits)
    elif isinstance(t, (T.Pointer, T.Typedef, T.Volatile, T.Const, T.Restrict)):
        head(0, t.type)
    elif isinstance(t, T.TypeTag):
        head(0, t.type, t.kflag)
    elif isinstance(t, T.Array):
        head(0, 0)
        out.extend((t.type, t.index_type, _u32(t.nelems)))
    elif isinstance(t, T.COMPOSITES):
        kflag = t.kflag or any(m.bitfield_size for m in t.members)
        head(_check_vlen(t, len(t.members)), t.size, kflag)
        for m in t.members:
            if kflag:
                if m.bitfield_size > 255 or m.bit_offset > 0xFFFFFF:
                    raise BTFError(f"member {m.name!r} of {t.name!r}: bitfield does not fit the encoding")
                off = (m.bitfield_size << 24) | m.bit_offset
            else:
                off = m.bit_offset
            out.extend((strings.add(m.name) if m.name else 0, m.type, _u32(off)))
    elif isinstance(t, T.Enum):
        head(_check_vlen(t, len(t.values)), t.size, t.signed)
        for v in t.values:
            out.extend((strings.add(v.name), _u32(v.value)))
    elif isinstance(t, T.Enum64):
        head(_check_vlen(t, len(t.values)), t.size, t.signed)
        for v in t.values:
            u = v.value & 0xFFFFFFFFFFFFFFFF
            out.extend((strings.add(v.name), u & 0xFFFFFFFF, u >> 32))
    elif isinstance(t, T.Fwd):
        head(0, 0, t.is_union)
    elif isinstance(t, T.Func):
        head(t.linkage, t.type)
    elif isinstance(t, T.FuncProto):
        head(_check_vlen(t, len(t.params)), t.return_type)
        for p in t.params:
            out.extend((strings.add(p.name) if p.name else 0, p.type))
    elif isinstance(t, T.Var):
        head(0, t.type)
        out.append(t.linkage)
    elif isinstance(t, T.Datasec):
        head(_check_vlen(t, len(t.vars)), t.size)
        for sv in t.vars:
            out.extend((sv.type, _u32(sv.offset), _u32(sv.size)))
    elif isinstance(t, T.Float):
        head(0, t.size)
    elif isinstance(t, T.DeclTag):
        head(0, t.type, t.kflag)
        out.append(_u32(t.component_idx))
    else:
        raise BTFError(f"cannot encode {type(t).__name__}")


def encode(types: Iterable[T.Type], strings: StringTable, flags: int = 0) -> bytes:
    """A complete BTF blob: header, the types' records in order, then ``strings``."""
    words = array("I")
    for t in types:
        encode_type(t, strings, words)
    tsec = words.tobytes()
    ssec = bytes(strings)
    return HEADER.pack(BTF_MAGIC, 1, flags, HEADER.size, 0, len(tsec), len(tsec), len(ssec)) + tsec + ssec


TypeRef = Union[int, T.Type]


class Builder:
    """An editable BTF: a list of types with ids, and a string table.

    Start empty (``Builder()``), from a Spec (``Builder.from_spec(spec)``), or
    split on top of a base Spec (``Builder(base=vmlinux)``).  Types are the
    immutable records of :mod:`types`; their ``id`` field is assigned here.
    """

    def __init__(self, base: Optional[Spec] = None, strings: Optional[StringTable] = None, flags: int = 0) -> None:
        self.base = base
        self.first_id = 1 if base is None else len(base)
        self.strings = strings if strings is not None else StringTable(b"\0" if base is None else b"", base)
        self.flags = flags
        self._types: List[T.Type] = []

    @classmethod
    def from_spec(cls, spec: Spec) -> "Builder":
        """Every type and string of ``spec``, ready to be edited."""
        b = cls(spec.base, StringTable(spec.strings, spec.base), spec.flags)
        b._types = list(spec)
        return b

    # -- access -----------------------------------------------------------------------
    def __len__(self) -> int:
        """Type count with void included (and base types, for split BTF)."""
        return self.first_id + len(self._types)

    def __iter__(self) -> Iterator[T.Type]:
        return iter(self._types)

    def type(self, tid: int) -> T.Type:
        if tid == 0:
            return T.Void(0, "void")
        if tid < self.first_id:
            assert self.base is not None
            return self.base.type(tid)
        try:
            return self._types[tid - self.first_id]
        except IndexError:
            raise BTFError(f"BTF type id {tid} out of range (have {len(self)})") from None

    def find_id(self, name: str, kind: Optional[T.Kind] = None) -> Optional[int]:
        """The first own type called ``name`` (of ``kind``), or None."""
        for t in self._types:
            if t.name == name and (kind is None or t.kind == kind):
                return t.id
        return None

    # -- editing --------------------------------------------------------------------------
    @staticmethod
    def _normalise(t: T.Type, tid: int) -> T.Type:
        if isinstance(t, T.COMPOSITES) and not t.kflag and any(m.bitfield_size for m in t.members):
            return T.replace(t, id=tid, kflag=True)  # bitfields need the kind_flag encoding
        return T.replace(t, id=tid)

    def add(self, t: T.Type) -> int:
        """Append a type; returns its new id (the ``id`` it carried is ignored)."""
        tid = len(self)
        self._types.append(self._normalise(t, tid))
        return tid

    def replace(self, tid: int, t: T.Type) -> None:
        """Put ``t`` in place of type ``tid`` (which keeps its id)."""
        if tid < self.first_id or tid >= len(self):
            raise BTFError(f"cannot replace BTF type {tid}: not one of this BTF's own types")
        self._types[tid - self.first_id] = self._normalise(t, tid)

    def add_string(self, s: str) -> int:
        """Intern a string; returns its offset."""
        return self.strings.add(s)

    # -- output ---------------------------------------------------------------------------
    def encode(self) -> bytes:
        """The BTF blob."""
        return encode(self._types, self.strings, self.flags)

    def spec(self) -> Spec:
        """A Spec decoded from :meth:`encode` (on the same base)."""
        return Spec.from_bytes(self.encode(), self.base, cache=False)


__all__ = ["StringTable", "encode_type", "encode", "Builder"]
