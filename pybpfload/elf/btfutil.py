"""Small BTF queries the ELF model needs: sizes, alignment, modifier skipping.

They follow libbpf's btf__resolve_size / btf__align_of /
skip_mods_and_typedefs and raise :class:`BTFError` where those fail.
"""

from __future__ import annotations

from typing import Tuple

from ..btf import Spec
from ..btf import types as T
from ..errors import BTFError

__all__ = ["skip_mods", "resolve_size", "align_of", "kind_name", "find_by_name", "find_by_name_kind"]

MAX_RESOLVE_DEPTH = 32
PTR_SIZE = 8  # BTF of BPF objects: 8-byte pointers

_MODS = (T.Typedef, T.Volatile, T.Const, T.Restrict, T.TypeTag)


def kind_name(t: T.Type) -> str:
    return "void" if t.kind == T.Kind.UNKN else t.kind.name.lower()


def skip_mods(btf: Spec, tid: int) -> Tuple[int, T.Type]:
    """(id, type) behind typedefs and cv / type-tag modifiers."""
    t = btf.type(tid)
    for _ in range(MAX_RESOLVE_DEPTH):
        if not isinstance(t, _MODS):
            return tid, t
        tid = t.type
        t = btf.type(tid)
    raise BTFError(f"BTF type {tid}: modifier chain too long (loop?)")


def resolve_size(btf: Spec, tid: int) -> int:
    """Size in bytes of type ``tid`` (btf__resolve_size)."""
    nelems = 1
    t = btf.type(tid)
    for _ in range(MAX_RESOLVE_DEPTH):
        if isinstance(t, (T.Int, T.Struct, T.Union, T.Enum, T.Enum64, T.Datasec, T.Float)):
            size = t.size
            break
        if isinstance(t, T.Pointer):
            size = PTR_SIZE
            break
        if isinstance(t, (T.Typedef, T.Volatile, T.Const, T.Restrict, T.Var, T.DeclTag, T.TypeTag)):
            t = btf.type(t.type)
            continue
        if isinstance(t, T.Array):
            if nelems and t.nelems > 0xFFFFFFFF // nelems:
                raise BTFError(f"BTF type {tid}: array too large")
            nelems *= t.nelems
            t = btf.type(t.type)
            continue
        raise BTFError(f"BTF type {tid}: cannot size a {kind_name(t)}")
    else:
        raise BTFError(f"BTF type {tid}: type chain too long (loop?)")
    if nelems and size > 0xFFFFFFFF // nelems:
        raise BTFError(f"BTF type {tid}: size too large")
    return nelems * size


def align_of(btf: Spec, tid: int, _depth: int = 0) -> int:
    """Alignment in bytes of type ``tid`` (btf__align_of)."""
    if _depth > MAX_RESOLVE_DEPTH:
        raise BTFError(f"BTF type {tid}: type chain too long (loop?)")
    t = btf.type(tid)
    if isinstance(t, (T.Int, T.Enum, T.Enum64, T.Float)):
        return max(1, min(PTR_SIZE, t.size))
    if isinstance(t, T.Pointer):
        return PTR_SIZE
    if isinstance(t, (T.Typedef, T.Volatile, T.Const, T.Restrict, T.TypeTag)):
        return align_of(btf, t.type, _depth + 1)
    if isinstance(t, T.Array):
        return align_of(btf, t.type, _depth + 1)
    if isinstance(t, (T.Struct, T.Union)):
        best = 1
        for m in t.members:
            a = align_of(btf, m.type, _depth + 1)
            best = max(best, a)
            if m.bitfield_size == 0 and m.bit_offset % (8 * a):
                return 1  # packed
        if t.size % best:
            return 1
        return best
    raise BTFError(f"BTF type {tid}: no alignment for a {kind_name(t)}")


def find_by_name(btf: Spec, name: str) -> int:
    """Id of the first type called ``name`` of any kind, or -1 (btf__find_by_name)."""
    ids = btf.find_ids(name)
    return min(ids) if ids else -1


def find_by_name_kind(btf: Spec, name: str, kind: T.Kind) -> int:
    """Id of the first type called ``name`` of kind ``kind``, or -1."""
    for tid in sorted(btf.find_ids(name)):
        if btf.kind_of(tid) == kind:
            return tid
    return -1
