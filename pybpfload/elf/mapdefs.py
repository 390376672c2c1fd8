"""Map definitions: BTF-defined maps in ``.maps``, legacy ``maps`` records, global data.

BTF-defined maps follow libbpf 1.x (parse_btf_map_def); legacy
``struct bpf_map_def`` records follow libbpf 0.8, which sized records by
dividing the section by the number of map symbols; global data sections and
``.kconfig`` become internal ARRAY maps named as libbpf names them.
"""

from __future__ import annotations

import mmap
import struct
from ..abi.record import replace
from typing import Dict, List, Optional, Tuple

from ..btf import Spec
from ..btf import types as T
from ..errors import BTFError, ELFError
from ..abi.uapi import MapType
from .btfutil import find_by_name, kind_name, resolve_size, skip_mods
from .model import DatasecInfo, MapKind, MapSpec
from .reader import STB_LOCAL, STT_SECTION, ElfFile, Section

__all__ = [
    "internal_map_name",
    "btf_maps",
    "legacy_maps",
    "global_data_map",
    "kconfig_map",
    "collect_map_slots",
    "LIBBPF_PIN_NONE",
    "LIBBPF_PIN_BY_NAME",
]

BPF_OBJ_NAME_LEN = 16
LIBBPF_PIN_NONE = 0
LIBBPF_PIN_BY_NAME = 1
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_MMAPABLE = 1 << 10
DEFAULT_PIN_ROOT = "/sys/fs/bpf"
LEGACY_DEF = struct.Struct("<5I")  # type, key_size, value_size, max_entries, map_flags

_MAP_IN_MAP = (MapType.BPF_MAP_TYPE_ARRAY_OF_MAPS, MapType.BPF_MAP_TYPE_HASH_OF_MAPS)
_RINGBUFS = (MapType.BPF_MAP_TYPE_RINGBUF, MapType.BPF_MAP_TYPE_USER_RINGBUF)


def internal_map_name(obj_name: str, real_name: str) -> str:
    """libbpf's name for the map of a global data section.

    The object name's prefix plus the section name, within 15 characters: at
    least 7 characters are kept for the section name ('my_objec.rodata',
    'my_obje.kconfig'); sections with a second dot ('.rodata.custom') drop
    the object name.  Characters other than alphanumerics, '_' and '.' become '_'.
    """
    sfx_len = min(max(7, len(real_name)), BPF_OBJ_NAME_LEN - 1)
    if "." in real_name[1:]:
        pfx_len = 0
    else:
        pfx_len = min(BPF_OBJ_NAME_LEN - sfx_len - 1, len(obj_name))
    name = (obj_name[:pfx_len] + real_name[:sfx_len])[: BPF_OBJ_NAME_LEN - 1]
    return "".join(c if (c.isascii() and c.isalnum()) or c in "_." else "_" for c in name)


def _page_size() -> int:
    return mmap.PAGESIZE


def adjust_ringbuf_size(sz: int) -> int:
    """Round a ring buffer size up to a power-of-2 number of pages, as libbpf does."""
    page = _page_size()
    if sz == 0:
        return 0
    if sz % page == 0 and ((sz // page) & (sz // page - 1)) == 0:
        return sz
    mul = 1
    while mul <= 0xFFFFFFFF // page:
        if mul * page > sz:
            return mul * page
        mul <<= 1
    return sz


# ---------------------------------------------------------------- BTF-defined maps
class _Def:
    def __init__(self) -> None:
        self.type = 0
        self.key_size = 0
        self.value_size = 0
        self.max_entries = 0
        self.flags = 0
        self.numa_node = 0
        self.map_extra = 0
        self.pinning = 0
        self.key_type_id = 0
        self.value_type_id = 0
        self.inner: Optional["_Def"] = None


def _field_int(btf: Spec, map_name: str, m: T.Member) -> int:
    _, t = skip_mods(btf, m.type)
    if not isinstance(t, T.Pointer):
        raise BTFError(f"map {map_name!r}: attr {m.name!r}: expected PTR, got {kind_name(t)}")
    arr = btf.type(t.type)
    if not isinstance(arr, T.Array):
        raise BTFError(f"map {map_name!r}: attr {m.name!r}: expected ARRAY, got {kind_name(arr)}")
    return arr.nelems


def _field_long(btf: Spec, map_name: str, m: T.Member) -> int:
    _, t = skip_mods(btf, m.type)
    if isinstance(t, T.Pointer):
        return _field_int(btf, map_name, m)
    if not isinstance(t, (T.Enum, T.Enum64)):
        raise BTFError(f"map {map_name!r}: attr {m.name!r}: expected ENUM or ENUM64, got {kind_name(t)}")
    if len(t.values) != 1:
        raise BTFError(f"map {map_name!r}: attr {m.name!r}: invalid __ulong")
    return t.values[0].value & 0xFFFFFFFFFFFFFFFF


def _sized_type(btf: Spec, map_name: str, m: T.Member, what: str) -> Tuple[int, int]:
    t = btf.type(m.type)
    if not isinstance(t, T.Pointer):
        raise BTFError(f"map {map_name!r}: {what} spec is not PTR: {kind_name(t)}")
    return resolve_size(btf, t.type), t.type


def _parse_def(btf: Spec, map_name: str, st: T.Struct, strict: bool, is_inner: bool) -> _Def:
    d = _Def()
    n = len(st.members)
    for i, m in enumerate(st.members):
        name = m.name
        if name == "type":
            d.type = _field_int(btf, map_name, m)
        elif name == "max_entries":
            d.max_entries = _field_int(btf, map_name, m)
        elif name == "map_flags":
            d.flags = _field_int(btf, map_name, m)
        elif name == "numa_node":
            d.numa_node = _field_int(btf, map_name, m)
        elif name in ("key_size", "value_size", "key", "value"):
            if name.endswith("_size"):
                sz, tid = _field_int(btf, map_name, m), 0
            else:
                sz, tid = _sized_type(btf, map_name, m, name)
            which = name.split("_")[0]
            cur = d.key_size if which == "key" else d.value_size
            if cur and cur != sz:
                raise BTFError(f"map {map_name!r}: conflicting {which} size {cur} != {sz}")
            if which == "key":
                d.key_size = sz
                if tid:
                    d.key_type_id = tid
            else:
                d.value_size = sz
                if tid:
                    d.value_type_id = tid
        elif name == "values":
            is_mim = d.type in _MAP_IN_MAP
            is_pa = d.type == MapType.BPF_MAP_TYPE_PROG_ARRAY
            desc = "map-in-map inner" if is_mim else "prog-array value"
            if is_inner:
                raise ELFError(f"map {map_name!r}: multi-level inner maps are not supported")
            if i != n - 1:
                raise BTFError(f"map {map_name!r}: 'values' member should be last")
            if not is_mim and not is_pa:
                raise ELFError(f"map {map_name!r}: 'values' needs a map-in-map or a prog array")
            if d.value_size and d.value_size != 4:
                raise BTFError(f"map {map_name!r}: conflicting value size {d.value_size} != 4")
            d.value_size = 4
            arr = btf.type(m.type)
            if not isinstance(arr, T.Array) or arr.nelems:
                raise BTFError(f"map {map_name!r}: {desc} spec is not a zero-sized array")
            _, p = skip_mods(btf, arr.type)
            if not isinstance(p, T.Pointer):
                raise BTFError(f"map {map_name!r}: {desc} def is of unexpected kind {kind_name(p)}")
            _, target = skip_mods(btf, p.type)
            if is_pa:
                if not isinstance(target, T.FuncProto):
                    raise BTFError(f"map {map_name!r}: prog-array value def is of unexpected kind {kind_name(target)}")
                continue
            if not isinstance(target, T.Struct):
                raise BTFError(f"map {map_name!r}: map-in-map inner def is of unexpected kind {kind_name(target)}")
            d.inner = _parse_def(btf, map_name + ".inner", target, strict, True)
        elif name == "pinning":
            if is_inner:
                raise BTFError(f"map {map_name!r}: inner def can't be pinned")
            v = _field_int(btf, map_name, m)
            if v not in (LIBBPF_PIN_NONE, LIBBPF_PIN_BY_NAME):
                raise BTFError(f"map {map_name!r}: invalid pinning value {v}")
            d.pinning = v
        elif name == "map_extra":
            d.map_extra = _field_long(btf, map_name, m)
        elif strict:
            raise ELFError(f"map {map_name!r}: unknown field {name!r} (open with relaxed_maps=True to ignore it)")
    if d.type == 0:
        raise BTFError(f"map {map_name!r}: map type isn't specified")
    return d


def _spec_from_def(name: str, d: _Def, **kw: object) -> MapSpec:
    max_entries = d.max_entries
    if d.type in _RINGBUFS:
        max_entries = adjust_ringbuf_size(max_entries)
    inner = _spec_from_def(name + ".inner", d.inner, kind=MapKind.BTF) if d.inner is not None else None
    return MapSpec(
        name=name,
        type=d.type,
        key_size=d.key_size,
        value_size=d.value_size,
        max_entries=max_entries,
        flags=d.flags,
        numa_node=d.numa_node,
        map_extra=d.map_extra,
        pinning=d.pinning,
        btf_key_type_id=d.key_type_id,
        btf_value_type_id=d.value_type_id,
        inner=inner,
        **kw,  # type: ignore[arg-type]
    )


def btf_maps(
    btf: Optional[Spec], sec: Section, datasec: Optional[DatasecInfo], strict: bool, pin_root: Optional[str]
) -> List[MapSpec]:
    """The maps of SEC(".maps"), in DATASEC order."""
    if btf is None:
        raise ELFError('SEC(".maps") needs BTF, and the object has none (or it is corrupt)')
    if datasec is None:
        raise BTFError("DATASEC '.maps' not found")
    out = []
    for idx, v in enumerate(datasec.vars):
        var = btf.type(v.type_id)
        name = var.name
        if not name:
            raise BTFError(f"map #{idx}: empty name")
        if v.offset + v.size > sec.size:
            raise ELFError(f"map {name!r}: BTF data is corrupted (offset {v.offset} + size {v.size} > {sec.size})")
        if not isinstance(var, T.Var):
            raise BTFError(f"map {name!r}: unexpected var kind {kind_name(var)}")
        if var.linkage != T.LINKAGE_GLOBAL:
            raise ELFError(f"map {name!r}: unsupported map linkage {'static' if var.linkage == 0 else 'extern'}")
        _, st = skip_mods(btf, var.type)
        if not isinstance(st, T.Struct):
            raise BTFError(f"map {name!r}: unexpected def kind {kind_name(st)}")
        if st.size > v.size:
            raise BTFError(f"map {name!r}: invalid def size")
        d = _parse_def(btf, name, st, strict, False)
        pin_path = None
        if d.pinning == LIBBPF_PIN_BY_NAME:
            from .pinpath import join_pin_path  # refuses names that would leave the pin root

            pin_path = join_pin_path(pin_root or DEFAULT_PIN_ROOT, name)
        out.append(
            _spec_from_def(name, d, kind=MapKind.BTF, pin_path=pin_path, sec_idx=sec.index, sec_offset=v.offset, btf_var_idx=idx)
        )
    return out


# ---------------------------------------------------------------- legacy maps
def legacy_maps(elf: ElfFile, sec: Section, btf: Optional[Spec], strict: bool) -> List[MapSpec]:
    """Maps of a legacy SEC("maps") section, read as libbpf 0.8 read them."""
    syms = [s for s in elf.symbols if s.shndx == sec.index and s.type != STT_SECTION]
    size = len(sec.data)
    if not size or not syms or size % len(syms):
        raise ELFError(f"cannot determine the legacy map definition size: section 'maps' is {size} bytes for {len(syms)} maps")
    def_sz = size // len(syms)
    out = []
    for s in syms:
        if s.bind == STB_LOCAL:
            raise ELFError(f"map {s.name!r} (legacy): static maps are not supported")
        if s.value + def_sz > size:
            raise ELFError(f"corrupted maps section: map {s.name!r} too small")
        rec = sec.data[s.value : s.value + def_sz]
        if def_sz < LEGACY_DEF.size:
            rec = rec + bytes(LEGACY_DEF.size - def_sz)
        elif def_sz > LEGACY_DEF.size and any(rec[LEGACY_DEF.size :]):
            if strict:
                raise ELFError(f"map {s.name!r} (legacy): unrecognized non-zero options (open with relaxed_maps=True)")
        mtype, ksz, vsz, maxe, flags = LEGACY_DEF.unpack_from(rec)
        kid, vid = _kv_pair_types(btf, s.name, ksz, vsz)
        out.append(
            MapSpec(
                name=s.name,
                kind=MapKind.LEGACY,
                type=mtype,
                key_size=ksz,
                value_size=vsz,
                max_entries=maxe,
                flags=flags,
                btf_key_type_id=kid,
                btf_value_type_id=vid,
                sec_idx=sec.index,
                sec_offset=s.value,
            )  # fmt: skip
        )
    return out


def _kv_pair_types(btf: Optional[Spec], name: str, ksz: int, vsz: int) -> Tuple[int, int]:
    """Key / value type ids from a BPF_ANNOTATE_KV_PAIR struct ``____btf_map_<name>`` (0, 0 when absent or unfit)."""
    if btf is None:
        return 0, 0
    tid = find_by_name(btf, "____btf_map_" + name)
    if tid < 0:
        return 0, 0
    t = btf.type(tid)
    if not isinstance(t, T.Struct) or len(t.members) < 2:
        return 0, 0
    k, v = t.members[0], t.members[1]
    try:
        if resolve_size(btf, k.type) != ksz or resolve_size(btf, v.type) != vsz:
            return 0, 0
    except BTFError:
        return 0, 0
    return k.type, v.type


# ---------------------------------------------------------------- global data
def _mmapable(btf: Optional[Spec], datasec: Optional[DatasecInfo]) -> bool:
    if btf is None or datasec is None:
        return False
    return any(v.linkage != T.LINKAGE_STATIC for v in datasec.vars)


def global_data_map(obj_name: str, kind: MapKind, sec: Section, btf: Optional[Spec], datasecs: Dict[str, DatasecInfo]) -> MapSpec:
    """The internal ARRAY map of a .data / .rodata / .bss section."""
    value_id = find_by_name(btf, sec.name) if btf is not None else -1
    flags = BPF_F_RDONLY_PROG if kind is MapKind.RODATA else 0
    ds = datasecs.get(sec.name)
    if value_id > 0 and btf is not None and btf.kind_of(value_id) == T.Kind.DATASEC and _mmapable(btf, ds):
        flags |= BPF_F_MMAPABLE
    kname = internal_map_name(obj_name, sec.name)
    # .data.* and .rodata.* maps show their section name; the kernel gets the short name
    user_name = sec.name if kind is not MapKind.BSS and sec.name not in (".data", ".rodata") else kname
    return MapSpec(
        name=user_name,
        kernel_name=kname,
        kind=kind,
        type=MapType.BPF_MAP_TYPE_ARRAY,
        key_size=4,
        value_size=sec.size,
        max_entries=1,
        flags=flags,
        btf_value_type_id=max(value_id, 0),
        initial_value=None if kind is MapKind.BSS else sec.data,
        sec_idx=sec.index,
        real_name=sec.name,
    )


def kconfig_map(obj_name: str, size: int, symtab_index: int, btf: Optional[Spec]) -> MapSpec:
    """The internal map holding the values of __kconfig externs."""
    value_id = find_by_name(btf, ".kconfig") if btf is not None else -1
    flags = BPF_F_RDONLY_PROG
    if value_id > 0 and btf is not None and btf.kind_of(value_id) == T.Kind.DATASEC:
        flags |= BPF_F_MMAPABLE  # its VARs are extern, never static
    return MapSpec(
        name=internal_map_name(obj_name, ".kconfig"),
        kind=MapKind.KCONFIG,
        type=MapType.BPF_MAP_TYPE_ARRAY,
        key_size=4,
        value_size=size,
        max_entries=1,
        flags=flags,
        btf_value_type_id=max(value_id, 0),
        sec_idx=symtab_index,
        real_name=".kconfig",
    )


# ---------------------------------------------------------------- .rel.maps
def collect_map_slots(
    elf: ElfFile,
    relsec: Section,
    maps: List[MapSpec],
    btf: Optional[Spec],
    maps_datasec: Optional[DatasecInfo],
    entry_programs: Dict[str, Tuple[int, int]],
) -> None:
    """Fill ``init_slots`` of prog arrays and maps of maps from the relocations of .maps (in place).

    ``entry_programs`` maps program names to (section index, byte offset)
    for programs that are not subprograms.
    """
    if btf is None or maps_datasec is None:
        raise ELFError(".rel.maps without BTF for .maps")
    by_name = {m.name: i for i, m in enumerate(maps)}
    slots: Dict[int, Dict[int, str]] = {}
    for n, rel in enumerate(elf.rels(relsec)):
        sym = elf.symbol(rel.sym)
        idx = None
        for i, m in enumerate(maps):
            if m.kind is not MapKind.BTF or m.btf_var_idx < 0:
                continue
            v = maps_datasec.vars[m.btf_var_idx]
            if v.offset <= rel.offset and rel.offset + 8 <= v.offset + v.size:
                idx = i
                break
        if idx is None:
            raise ELFError(f".maps relo #{n}: cannot find a map for {sym.name!r} at offset {rel.offset}")
        m = maps[idx]
        if m.type in _MAP_IN_MAP:
            if sym.shndx != m.sec_idx:
                raise ELFError(f".maps relo #{n}: {sym.name!r} isn't a BTF-defined map")
            if m.type == MapType.BPF_MAP_TYPE_HASH_OF_MAPS and m.key_size != 4:
                raise ELFError(f".maps relo #{n}: hash-of-maps {m.name!r} should have key size 4")
            if sym.name not in by_name:
                raise ELFError(f".maps relo #{n}: {sym.name!r} isn't a valid map reference")
        elif m.type == MapType.BPF_MAP_TYPE_PROG_ARRAY:
            where = entry_programs.get(sym.name)
            if where is None:
                raise ELFError(f".maps relo #{n}: {sym.name!r} isn't a valid program reference")
            if where != (sym.shndx, sym.value):
                raise ELFError(f".maps relo #{n}: {sym.name!r} isn't an entry-point program")
        else:
            raise ELFError(f".maps relo #{n}: map {m.name!r} is neither a map of maps nor a prog array")
        var = btf.type(maps_datasec.vars[m.btf_var_idx].type_id)
        _, st = skip_mods(btf, var.type)  # type: ignore[attr-defined]
        if not isinstance(st, T.Struct) or not st.members or st.members[-1].name != "values":
            raise ELFError(f".maps relo #{n}: map {m.name!r} has no 'values' member")
        moff = st.members[-1].bit_offset // 8
        rel_off = rel.offset - maps_datasec.vars[m.btf_var_idx].offset
        if rel_off < moff or (rel_off - moff) % 8:
            raise ELFError(f".maps relo #{n}: misplaced relocation in map {m.name!r}")
        slots.setdefault(idx, {})[(rel_off - moff) // 8] = sym.name
    for idx, s in slots.items():
        size = max(s) + 1
        maps[idx] = replace(maps[idx], init_slots=tuple(s.get(i) for i in range(size)))
