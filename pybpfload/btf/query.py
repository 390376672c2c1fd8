"""Queries over a :class:`~pybpfload.btf.spec.Spec`: sizes, alignment, fields, names.

The semantics follow libbpf: :func:`sizeof` is ``btf__resolve_size``,
:func:`alignof` is ``btf__align_of`` (a struct whose members are not
naturally aligned is packed and aligns to 1), and pointer size is 8.
Every walk is bounded, so reference loops in malformed BTF raise BTFError.
"""

from __future__ import annotations

import re
from typing import List, Optional, Protocol, Tuple

from ..abi.record import Record, _set
from ..errors import BTFError
from . import types as T



class Spec(Protocol):
    """What the queries read of a BTF (a :class:`~pybpfload.btf.spec.Spec` is one;
    the queries do not import it, which lets Spec offer them as methods)."""

    def type(self, tid: int) -> T.Type: ...

    def resolve(self, tid: int) -> T.Type: ...

MAX_DEPTH = 32  # libbpf's MAX_RESOLVE_DEPTH
PTR_SIZE = 8


def _loop(tid: int) -> BTFError:
    return BTFError(f"BTF type {tid}: reference chain too long (loop?)")


def _skip(spec: "Spec", tid: int, kinds: Tuple[type, ...]) -> int:
    start = tid
    for _ in range(MAX_DEPTH):
        t = spec.type(tid)
        if not isinstance(t, kinds):
            return tid
        tid = t.type  # type: ignore[attr-defined]
    raise _loop(start)


def skip_modifiers(spec: "Spec", tid: int) -> int:
    """The id behind typedefs, const/volatile/restrict and type tags."""
    return _skip(spec, tid, T.MODIFIERS)


def skip_qualifiers(spec: "Spec", tid: int) -> int:
    """The id behind const/volatile/restrict and type tags (typedefs kept)."""
    return _skip(spec, tid, T.QUALIFIERS)


def sizeof(spec: "Spec", tid: int) -> int:
    """Size in bytes of a type; BTFError for void, functions and forward declarations."""
    start, nelems = tid, 1
    for _ in range(MAX_DEPTH):
        t = spec.type(tid)
        if isinstance(t, (T.Int, T.Struct, T.Union, T.Enum, T.Enum64, T.Datasec, T.Float)):
            size = t.size
            break
        if isinstance(t, T.Pointer):
            size = PTR_SIZE
            break
        if isinstance(t, (T.Typedef, T.Volatile, T.Const, T.Restrict, T.TypeTag, T.Var, T.DeclTag)):
            tid = t.type
            continue
        if isinstance(t, T.Array):
            if t.nelems and nelems > 0xFFFFFFFF // t.nelems:
                raise BTFError(f"BTF type {start}: array size overflows")
            nelems *= t.nelems
            tid = t.type
            continue
        raise BTFError(f"BTF type {start} ({_describe(spec, start, with_size=False)}) has no size")
    else:
        raise _loop(start)
    if nelems and size > 0xFFFFFFFF // nelems:
        raise BTFError(f"BTF type {start}: size overflows")
    return nelems * size


def alignof(spec: "Spec", tid: int, _depth: int = 0) -> int:
    """Natural alignment of a type in bytes (1 for packed structs)."""
    if _depth > MAX_DEPTH:
        raise _loop(tid)
    t = spec.type(tid)
    if isinstance(t, (T.Int, T.Enum, T.Enum64, T.Float)):
        return max(1, min(PTR_SIZE, t.size))
    if isinstance(t, T.Pointer):
        return PTR_SIZE
    if isinstance(t, (T.Typedef, T.Volatile, T.Const, T.Restrict, T.TypeTag)):
        return alignof(spec, t.type, _depth + 1)
    if isinstance(t, T.Array):
        return alignof(spec, t.type, _depth + 1)
    if isinstance(t, T.COMPOSITES):
        best = 1
        for m in t.members:
            a = alignof(spec, m.type, _depth + 1)
            best = max(best, a)
            if m.bitfield_size == 0 and m.bit_offset % (8 * a):
                return 1
        return 1 if t.size % best else best
    raise BTFError(f"BTF type {tid} ({_describe(spec, tid, with_size=False)}) has no alignment")


def is_packed(spec: "Spec", tid: int) -> bool:
    """True when a struct/union needs __attribute__((packed)) to get its layout."""
    t = spec.type(tid)
    if not isinstance(t, T.COMPOSITES):
        return False
    return alignof(spec, tid) == 1 and any(alignof(spec, m.type) > 1 for m in t.members if m.bitfield_size == 0)


class Field(Record):
    """A resolved member access: its type and where it lives in the outer type."""

    __slots__ = ("type", "bit_offset", "bitfield_size")
    _fields = ("type", "bit_offset", "bitfield_size")
    type: int
    bit_offset: int
    bitfield_size: int  # 0 unless a bitfield

    def __init__(self, type: int, bit_offset: int, bitfield_size: int) -> None:
        _set(self, "type", type)
        _set(self, "bit_offset", bit_offset)
        _set(self, "bitfield_size", bitfield_size)

    @property
    def offset(self) -> int:
        """Byte offset (of the storage unit start for bitfields)."""
        return self.bit_offset // 8


_STEP = re.compile(r"\s*(?:\.?\s*([A-Za-z_]\w*)|\[\s*(\d+)\s*\])")


def _find_member(spec: "Spec", t: T.Type, name: str, depth: int = 0) -> Optional[Tuple[int, int, int]]:
    """(type id, bit offset, bitfield size) of member ``name``, looking into anonymous members."""
    if depth > MAX_DEPTH:
        raise _loop(t.id)
    assert isinstance(t, T.COMPOSITES)
    for m in t.members:
        if m.name == name:
            return m.type, m.bit_offset, m.bitfield_size
    for m in t.members:
        if not m.name:
            inner = spec.resolve(m.type)
            if isinstance(inner, T.COMPOSITES):
                hit = _find_member(spec, inner, name, depth + 1)
                if hit is not None:
                    return hit[0], m.bit_offset + hit[1], hit[2]
    return None


def field(spec: "Spec", tid: int, path: str) -> Field:
    """Resolve an access path such as ``"se.vruntime"`` or ``"comm[3]"`` from type ``tid``.

    Anonymous struct/union members are looked through, as C does.
    """
    bit, bits, cur = 0, 0, tid
    pos = 0
    path = path.strip()
    if not path:
        raise BTFError("empty field path")
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            raise BTFError(f"bad field path {path!r} at {pos}")
        pos = m.end()
        t = spec.resolve(cur)
        if m.group(1) is not None:
            if not isinstance(t, T.COMPOSITES):
                raise BTFError(f"{path!r}: {describe(spec, cur)} has no members")
            hit = _find_member(spec, t, m.group(1))
            if hit is None:
                raise BTFError(f"{path!r}: {describe(spec, t.id)} has no member {m.group(1)!r}")
            cur, off, bits = hit
            bit += off
        else:
            if not isinstance(t, T.Array):
                raise BTFError(f"{path!r}: {describe(spec, cur)} is not an array")
            idx = int(m.group(2))
            bit += idx * sizeof(spec, t.type) * 8
            cur, bits = t.type, 0
    return Field(cur, bit, bits)


def members(spec: "Spec", tid: int) -> List[Tuple[str, Field]]:
    """Every named member of a struct/union with its offset, anonymous members flattened."""
    t = spec.resolve(tid)
    if not isinstance(t, T.COMPOSITES):
        raise BTFError(f"{describe(spec, tid)} has no members")
    out: List[Tuple[str, Field]] = []

    def walk(rec: T.Type, base: int, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _loop(tid)
        assert isinstance(rec, T.COMPOSITES)
        for m in rec.members:
            if m.name:
                out.append((m.name, Field(m.type, base + m.bit_offset, m.bitfield_size)))
            else:
                inner = spec.resolve(m.type)
                if isinstance(inner, T.COMPOSITES):
                    walk(inner, base + m.bit_offset, depth + 1)

    walk(t, 0, 0)
    return out


# ---------------------------------------------------------------- names
_KEYWORD = {T.Kind.STRUCT: "struct", T.Kind.UNION: "union", T.Kind.ENUM: "enum", T.Kind.ENUM64: "enum"}


# Types spelled for one type_name() at most: prototypes whose parameters are prototypes
# (malformed BTF) would otherwise spell out exponentially.
MAX_SPELLED = 4096


def type_name(spec: "Spec", tid: int, inner: str = "", _depth: int = 0) -> str:
    """A C spelling of a type, e.g. ``const char *`` or ``int (*)(void *, long)``.

    BTFError for reference loops and for types too complex to spell (over
    :data:`MAX_SPELLED` types in the spelling).
    """
    return _spell(spec, tid, inner, _depth, [MAX_SPELLED])


def _spell(spec: "Spec", tid: int, inner: str, _depth: int, budget: List[int]) -> str:
    if _depth > MAX_DEPTH:
        raise _loop(tid)
    budget[0] -= 1
    if budget[0] < 0:
        raise BTFError(f"BTF type {tid}: too complex to spell (over {MAX_SPELLED} types)")
    t = spec.type(tid)
    d = _depth + 1

    def join(base: str) -> str:
        return f"{base} {inner}".rstrip() if inner else base

    if isinstance(t, T.Void):
        return join("void")
    if isinstance(t, (T.Int, T.Float, T.Typedef)):
        return join(t.name)
    if isinstance(t, (T.Struct, T.Union, T.Enum, T.Enum64)):
        return join(f"{_KEYWORD[t.kind]} {t.name or '(anon)'}")
    if isinstance(t, T.Fwd):
        return join(f"{'union' if t.is_union else 'struct'} {t.name}")
    if isinstance(t, T.Pointer):
        target = spec.type(t.type)
        star = "*" + inner
        if isinstance(target, (T.Array, T.FuncProto)):
            star = f"({star})"
        return _spell(spec, t.type, star, d, budget)
    if isinstance(t, (T.Const, T.Volatile, T.Restrict)):
        q = {T.Const: "const", T.Volatile: "volatile", T.Restrict: "restrict"}[type(t)]
        target = spec.type(t.type)
        if isinstance(target, T.Pointer):
            return _spell(spec, t.type, f"{q} {inner}".rstrip(), d, budget)
        return f"{q} " + _spell(spec, t.type, inner, d, budget)
    if isinstance(t, T.TypeTag):
        return _spell(spec, t.type, inner, d, budget)
    if isinstance(t, T.Array):
        return _spell(spec, t.type, f"{inner}[{t.nelems}]", d, budget)
    if isinstance(t, T.FuncProto):
        params = ", ".join(
            "..." if (p.type == 0 and i == len(t.params) - 1) else _spell(spec, p.type, "", d, budget)
            for i, p in enumerate(t.params)
        )
        return _spell(spec, t.return_type, f"{inner}({params or 'void'})", d, budget)
    if isinstance(t, T.Func):
        return _spell(spec, t.type, t.name, d, budget)
    if isinstance(t, T.Var):
        return _spell(spec, t.type, t.name, d, budget)
    if isinstance(t, T.Datasec):
        return f"SEC(\"{t.name}\")"
    if isinstance(t, T.DeclTag):
        return f"btf_decl_tag(\"{t.name}\")"
    return f"<kind {int(t.kind)}>"  # pragma: no cover


def describe(spec: "Spec", tid: int) -> str:
    """One line for error messages: C spelling, kind, id and size when it has one.

    Never raises: a type that cannot be spelled or sized (a loop in
    malformed BTF, ``const void``, a typedef of a function prototype) is
    described without that part.
    """
    return _describe(spec, tid, with_size=True)


def _describe(spec: "Spec", tid: int, with_size: bool) -> str:
    # sizeof's and alignof's own errors use with_size=False: describing a
    # type must never ask for its size again (the two would recurse forever).
    try:
        t = spec.type(tid)
    except BTFError:
        return f"<invalid type id {tid}>"
    try:
        spelled = type_name(spec, tid)
    except BTFError:
        spelled = t.name or "(anon)"
    extra = [f"{t.kind.name.lower()} id {tid}"]
    if with_size and not isinstance(t, (T.Void, T.Func, T.FuncProto, T.Fwd, T.DeclTag)):
        try:
            extra.append(f"size {sizeof(spec, tid)}")
        except BTFError:
            pass
    return f"{spelled} ({', '.join(extra)})"


__all__ = [
    "skip_modifiers",
    "skip_qualifiers",
    "sizeof",
    "alignof",
    "is_packed",
    "Field",
    "field",
    "members",
    "type_name",
    "describe",
]
