"""The BTF queries the ELF model needs, named as libbpf names them.

Sizes, alignment and modifier skipping come from :mod:`pybpfload.btf.query`;
name lookups follow btf__find_by_name / btf__find_by_name_kind.
"""

from __future__ import annotations

from typing import Tuple

from ..btf import Spec
from ..btf import types as T
from ..btf.query import alignof, sizeof, skip_modifiers

__all__ = ["skip_mods", "resolve_size", "align_of", "kind_name", "find_by_name", "find_by_name_kind"]


def kind_name(t: T.Type) -> str:
    return "void" if t.kind == T.Kind.UNKN else t.kind.name.lower()


def skip_mods(btf: Spec, tid: int) -> Tuple[int, T.Type]:
    """(id, type) behind typedefs and cv / type-tag modifiers (libbpf's skip_mods_and_typedefs)."""
    tid = skip_modifiers(btf, tid)
    return tid, btf.type(tid)


def resolve_size(btf: Spec, tid: int) -> int:
    """Size in bytes of type ``tid`` (btf__resolve_size)."""
    return sizeof(btf, tid)


def align_of(btf: Spec, tid: int) -> int:
    """Alignment in bytes of type ``tid`` (btf__align_of)."""
    return alignof(btf, tid)


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
