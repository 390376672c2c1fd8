"""struct_ops maps at open: one map per variable of a struct_ops section (no syscalls).

As libbpf's init_struct_ops_maps and bpf_object__collect_st_ops_relos: the
sections ``.struct_ops``, ``.struct_ops.link`` and their ``?``-prefixed forms
(maps not created by default) hold variables of a struct type; each becomes a
BPF_MAP_TYPE_STRUCT_OPS map named after the variable, keyed by a 4-byte int,
whose value is the struct (resized to the kernel's value type at load).  The
relocations of the section name the program behind each function pointer.
What depends on the kernel's BTF is done at load by :mod:`pybpfload.reloc.struct_ops_plan`.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from ..abi.record import replace
from ..btf import Spec
from ..btf import types as T
from ..errors import ELFError
from ..abi.uapi import MapType, ProgType
from .btfutil import skip_mods
from .model import DatasecInfo, MapKind, MapSpec, StructOpsSpec
from .reader import SHN_LORESERVE, ElfFile, Section, Symbol

__all__ = ["STRUCT_OPS_SECTIONS", "BPF_F_LINK", "struct_ops_maps", "collect_st_ops_relos"]

STRUCT_OPS_SEC = ".struct_ops"
STRUCT_OPS_LINK_SEC = ".struct_ops.link"
STRUCT_OPS_SECTIONS = (STRUCT_OPS_SEC, STRUCT_OPS_LINK_SEC, "?" + STRUCT_OPS_SEC, "?" + STRUCT_OPS_LINK_SEC)
BPF_F_LINK = 1 << 13


def _resolve(btf: Spec, tid: int) -> int:
    """btf__resolve_type: the type behind VARs, typedefs and modifiers."""
    seen = 0
    while True:
        t = btf.type(tid)
        if isinstance(t, T.Var):
            tid = t.type
        elif isinstance(t, (T.Typedef, T.Volatile, T.Const, T.Restrict, T.TypeTag)):
            tid = t.type
        else:
            return tid
        seen += 1
        if seen > 32:
            raise ELFError(f"struct_ops init: cannot resolve type [{tid}]: loop of modifiers")


def struct_ops_maps(btf: Optional[Spec], sec: Section, ds: Optional[DatasecInfo]) -> List[MapSpec]:
    """The maps of struct_ops section ``sec`` (its DATASEC ``ds`` has libbpf's offset fix-ups applied)."""
    name = sec.name
    if btf is None:
        raise ELFError(f"section {name!r}: struct_ops maps need BTF, and the object has no .BTF section")
    if ds is None:
        raise ELFError(f"struct_ops init: DATASEC {name} not found")
    autocreate = not name.startswith("?")
    plain = name.lstrip("?")
    # libbpf strips the '?' inside its loop over the variables, so that only the
    # first variable of a '?' section is left with autocreate off; here every
    # variable of the section is, as the section's name says.
    data = sec.data
    out = []
    for i, v in enumerate(ds.vars):
        tid = _resolve(btf, v.type_id)
        t = btf.type(tid)
        if not t.name:
            raise ELFError("struct_ops init: anonymous type is not supported")
        if not isinstance(t, T.Struct):
            raise ELFError(f"struct_ops init: {t.name} is not a struct")
        if v.offset + t.size > len(data):
            raise ELFError(f"struct_ops init: var {v.name} is beyond the end of DATASEC {plain}")
        out.append(
            MapSpec(
                name=v.name,
                kind=MapKind.STRUCT_OPS,
                type=MapType.BPF_MAP_TYPE_STRUCT_OPS,
                key_size=4,
                value_size=t.size,
                max_entries=1,
                flags=BPF_F_LINK if plain == STRUCT_OPS_LINK_SEC else 0,
                btf_value_type_id=tid,
                initial_value=bytes(data[v.offset : v.offset + t.size]),
                sec_idx=sec.index,
                sec_offset=v.offset,
                btf_var_idx=i,
                struct_ops=StructOpsSpec(
                    type_name=t.name,
                    type_id=tid,
                    members=tuple(m.name for m in t.members),
                    programs=(None,) * len(t.members),
                    section=plain,
                ),
                autocreate=autocreate,
            )
        )
    return out


def _is_func_ptr(btf: Spec, tid: int) -> bool:
    _, t = skip_mods(btf, tid)
    if not isinstance(t, T.Pointer):
        return False
    _, p = skip_mods(btf, t.type)
    return isinstance(p, T.FuncProto)


def collect_st_ops_relos(
    elf: ElfFile,
    rel_sec: Section,
    maps: List[MapSpec],
    btf: Spec,
    programs: Sequence[Tuple[Symbol, Section]],
    prog_types: Sequence[int],
) -> None:
    """Record in ``maps`` (replaced in place) the program behind each relocated function pointer.

    ``programs`` are every function of every executable section with
    ``prog_types`` their program types (UNSPEC for .text functions).
    """
    target = rel_sec.info
    at: Dict[Tuple[int, int], int] = {(sec.index, sym.value // 8): i for i, (sym, sec) in enumerate(programs)}
    for rel in elf.rels(rel_sec):
        sym = elf.symbol(rel.sym)
        mi = next(
            (
                k
                for k, m in enumerate(maps)
                if m.kind is MapKind.STRUCT_OPS
                and m.sec_idx == target
                and m.sec_offset <= rel.offset < m.sec_offset + m.value_size
            ),
            None,
        )
        if mi is None:
            raise ELFError(f"struct_ops reloc: cannot find map at rel->r_offset {rel.offset}")
        m = maps[mi]
        st = m.struct_ops
        assert st is not None
        moff = rel.offset - m.sec_offset
        if sym.shndx >= SHN_LORESERVE:
            raise ELFError(
                f"struct_ops reloc {m.name}: rel->r_offset {rel.offset} shdr_idx {sym.shndx} unsupported non-static function"
            )
        if sym.value % 8:
            raise ELFError(f"struct_ops reloc {m.name}: invalid target program offset {sym.value}")
        st_type = btf.type(st.type_id)
        assert isinstance(st_type, T.Struct)
        member_idx = next((k for k, mb in enumerate(st_type.members) if mb.bit_offset == moff * 8), None)
        if member_idx is None:
            raise ELFError(f"struct_ops reloc {m.name}: cannot find member at moff {moff}")
        member = st_type.members[member_idx]
        if not _is_func_ptr(btf, member.type):
            raise ELFError(f"struct_ops reloc {m.name}: cannot relocate non func ptr {member.name}")
        pi = at.get((sym.shndx, sym.value // 8))
        if pi is None:
            raise ELFError(
                f"struct_ops reloc {m.name}: cannot find prog at shdr_idx {sym.shndx} to relocate func ptr {member.name}"
            )
        if prog_types[pi] != ProgType.BPF_PROG_TYPE_STRUCT_OPS:
            raise ELFError(f"struct_ops reloc {m.name}: prog {programs[pi][0].name} is not struct_ops BPF program")
        progs = list(st.programs)
        progs[member_idx] = programs[pi][0].name
        maps[mi] = replace(m, struct_ops=replace(st, programs=tuple(progs)))
