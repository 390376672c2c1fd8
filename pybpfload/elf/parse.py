"""Build the :class:`~pybpfload.elf.model.ElfModel` of a BPF object, as libbpf's open does.

The steps follow bpf_object__open: read the sections, find the programs of
every executable section, decode BTF, fix up DATASEC sizes and offsets from
the ELF symbols, collect externs, define maps (legacy, BTF-defined, global
data, kconfig) and record relocations symbolically.  No syscalls.
"""

from __future__ import annotations

import bisect
import struct
from typing import Dict, List, Optional, Tuple

from ..abi.record import replace
from ..abi.uapi import MapType
from ..btf import Spec
from ..btf import types as T
from ..errors import BPFError, BTFError, ELFError
from . import mapdefs
from .externs import KCONFIG_SEC, KSYMS_SEC, collect_externs, kconfig_map_size
from .model import ARENA_SEC, PAGE_SIZE, DatasecInfo, DatasecVar, ElfModel, ExternSpec, MapKind, MapSpec, ProgramSpec, Reloc, RelocKind
from .reader import (
    SHN_LORESERVE,
    SHT_LLVM_ADDRSIG,
    SHT_NOBITS,
    SHT_PROGBITS,
    SHT_REL,
    SHT_STRTAB,
    SHT_SYMTAB,
    STB_LOCAL,
    STT_FUNC,
    STT_OBJECT,
    STT_SECTION,
    ElfFile,
    Section,
    Symbol,
    read_elf,
)
from .sections import parse_section
from .structops import STRUCT_OPS_SECTIONS, collect_st_ops_relos, struct_ops_maps

__all__ = ["parse_object"]

LICENSE_MAX = 63  # libbpf keeps char license[64]
# Global data becomes one map value: far above what the kernel accepts (KMALLOC_MAX_SIZE);
# a .data holds its bytes in the file, a .bss is never materialised (ZeroImage).
MAX_DATA_SIZE = 1 << 30
# .kconfig's size comes from its externs' types alone (a 7 KB object can claim a 192 MiB
# char array), and its image is built at load.  libbpf has no bound and leaves the kernel
# to refuse (E2BIG: an array value is at most KMALLOC_MAX_SIZE, 4 MiB with 4 KiB pages);
# we refuse past that at open, before building anything (fuzzing found the MemoryError).
MAX_KCONFIG_SIZE = 1 << 22
_LD_IMM64 = 0x18
_CALL = 0x85
_PSEUDO_CALL = 1


def _ignored(sec: Section) -> bool:
    """Sections libbpf ignores outright (ignore_elf_section)."""
    name = sec.name
    if sec.type in (SHT_STRTAB, SHT_LLVM_ADDRSIG):
        return True
    if sec.type == SHT_PROGBITS and sec.size == 0 and name == ".text":
        return True
    if name.startswith(".debug_"):
        return True
    if name.startswith(".rel"):
        rest = name[4:]
        if rest.startswith(".debug_") or rest in (".BTF", ".BTF.ext"):
            return True
    return False


def _data_kind(sec: Section) -> Optional[MapKind]:
    n = sec.name
    if sec.type == SHT_PROGBITS and sec.size > 0 and not sec.is_exec:
        if n == ".data" or n.startswith(".data."):
            return MapKind.DATA
        if n == ".rodata" or n.startswith(".rodata."):
            return MapKind.RODATA
    if sec.type == SHT_NOBITS and (n == ".bss" or n.startswith(".bss.")):
        return MapKind.BSS
    return None


class _Collected:
    def __init__(self) -> None:
        self.license = ""
        self.kversion: Optional[int] = None
        self.legacy_maps: Optional[Section] = None
        self.btf_maps: Optional[Section] = None
        self.btf: Optional[Section] = None
        self.btf_ext: Optional[Section] = None
        self.text_shndx = 0
        self.exec_secs: List[Section] = []
        self.data_secs: List[Tuple[Section, MapKind]] = []
        self.rel_secs: List[Section] = []
        self.st_ops_secs: List[Section] = []
        self.arena_sec: Optional[Section] = None  # .addr_space.1: __arena globals


def _collect(elf: ElfFile) -> _Collected:
    c = _Collected()
    nsec = len(elf.sections)
    for sec in elf.sections[1:]:
        if _ignored(sec):
            continue
        name = sec.name
        if name == "license":
            c.license = sec.data.split(b"\0", 1)[0][:LICENSE_MAX].decode("utf-8", "replace")
        elif name == "version":
            if len(sec.data) != 4:
                raise ELFError(f"invalid 'version' section: {len(sec.data)} bytes, expected 4")
            c.kversion = struct.unpack("<I", sec.data)[0]
        elif name == "maps":
            c.legacy_maps = sec
        elif name == ".maps":
            c.btf_maps = sec
        elif name == ".BTF":
            if sec.type != SHT_PROGBITS:
                raise ELFError(".BTF is not a PROGBITS section")
            c.btf = sec
        elif name == ".BTF.ext":
            if sec.type != SHT_PROGBITS:
                raise ELFError(".BTF.ext is not a PROGBITS section")
            c.btf_ext = sec
        elif sec.type == SHT_SYMTAB:
            pass
        elif sec.is_exec and sec.size > 0:
            if name == ".text":
                c.text_shndx = sec.index
            c.exec_secs.append(sec)
        elif name in STRUCT_OPS_SECTIONS:
            c.st_ops_secs.append(sec)
        elif name == ARENA_SEC and sec.type == SHT_PROGBITS and sec.size > 0:
            c.arena_sec = sec  # as libbpf: PROGBITS with data only (else an unknown section)
        elif sec.type == SHT_REL:
            if sec.entsize != 16 or sec.info >= nsec:
                raise ELFError(f"relocation section {name!r}: bad entry size {sec.entsize} or target {sec.info}")
            target = elf.sections[sec.info]
            if target.is_exec or name == ".rel.maps" or target.name in STRUCT_OPS_SECTIONS:
                c.rel_secs.append(sec)
        else:
            kind = _data_kind(sec)
            if kind is not None:
                c.data_secs.append((sec, kind))
    return c


def _programs(elf: ElfFile, c: _Collected) -> List[Tuple[Symbol, Section]]:
    found = []
    exec_idx = {s.index: s for s in c.exec_secs}
    for sym in elf.symbols:
        sec = exec_idx.get(sym.shndx)
        if sec is None or sym.type != STT_FUNC:
            continue
        if sym.value + sym.size > len(sec.data):
            raise ELFError(f"sec {sec.name!r}: program {sym.name!r} at offset {sym.value} crosses the section boundary")
        if sym.size == 0 or sym.size % 8 or sym.value % 8:
            raise ELFError(f"sec {sec.name!r}: corrupted program {sym.name!r}, offset {sym.value}, size {sym.size}")
        if sec.index != c.text_shndx and sym.bind == STB_LOCAL:
            raise ELFError(f"sec {sec.name!r}: program {sym.name!r} is static, which is not supported")
        found.append((sym, sec))
    found.sort(key=lambda ss: (ss[1].index, ss[0].value))
    return found


def _datasecs(elf: ElfFile, btf: Spec) -> Tuple[List[T.Datasec], List[DatasecInfo]]:
    """Every DATASEC, raw and with libbpf's fixups (btf_fixup_datasec) applied."""
    raw: List[T.Datasec] = []
    fixed: List[DatasecInfo] = []
    var_syms: Optional[Dict[str, Symbol]] = None
    for tid in range(1, len(btf)):
        if btf.kind_of(tid) != T.Kind.DATASEC:
            continue
        ds = btf.type(tid)
        assert isinstance(ds, T.Datasec)
        raw.append(ds)
        name = ds.name
        if name in (KCONFIG_SEC, KSYMS_SEC):
            vs = tuple(DatasecVar(btf.name_of(v.type), v.type, v.offset, v.size, _linkage(btf, v.type)) for v in ds.vars)
            fixed.append(DatasecInfo(name, tid, ds.size, vs))
            continue
        size = ds.size
        fix_offsets = False
        if size == 0:
            sec = elf.section_by_name(name)
            if sec is None or sec.size == 0:
                raise BTFError(f"DATASEC {name!r}: no ELF section of that name to take its size from")
            size = sec.size
            fix_offsets = True
        out = []
        for v in ds.vars:
            var = btf.type(v.type)
            if not isinstance(var, T.Var):
                raise BTFError(f"DATASEC {name!r}: member [{v.type}] is a {var.kind.name}, not a VAR")
            off, linkage = v.offset, var.linkage
            if linkage not in (T.LINKAGE_STATIC, T.LINKAGE_EXTERN):
                if var_syms is None:
                    var_syms = {s.name: s for s in reversed(elf.symbols) if s.type == STT_OBJECT and s.is_global}
                sym = var_syms.get(var.name)
                if sym is None:
                    raise BTFError(f"DATASEC {name!r}: no ELF symbol for VAR {var.name!r}")
                if fix_offsets:
                    off = sym.value
                if sym.is_hidden:
                    linkage = T.LINKAGE_STATIC
            out.append(DatasecVar(var.name, v.type, off, v.size, linkage))
        out.sort(key=lambda d: d.offset)
        fixed.append(DatasecInfo(name, tid, size, tuple(out)))
    return raw, fixed


def _arena(maps: List[MapSpec], sec: Optional[Section], data_maps: Dict[int, str]) -> Optional[str]:
    """The object's one arena map (libbpf's arena_map_idx); its initial value becomes the
    __arena globals of ``sec`` (.addr_space.1), which relocations then point into.

    As libbpf's bpf_object__init_user_btf_maps: one ARENA map at most; globals need
    one, declared in SEC(".maps"); they must fit in it (whole pages).
    """
    found: Optional[int] = None
    for i, m in enumerate(maps):
        if m.type != MapType.BPF_MAP_TYPE_ARENA or m.kind is not MapKind.BTF:
            continue
        if found is not None:
            raise ELFError(f"map {m.name!r}: only single ARENA map is supported (map {maps[found].name!r} is also ARENA)")
        found = i
    if sec is None:
        return maps[found].name if found is not None else None
    if found is None:
        raise ELFError(
            f"section {ARENA_SEC!r}: to use global __arena variables the ARENA map should be explicitly declared in SEC(\".maps\")"
        )
    m = maps[found]
    room = PAGE_SIZE * m.max_entries
    if (sec.size + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE > room:
        raise ELFError(
            f"section {ARENA_SEC!r}: declared ARENA map size ({room}) is too small to hold global __arena variables of size {sec.size}"
        )
    maps[found] = replace(m, initial_value=bytes(sec.data))
    data_maps[sec.index] = m.name
    return m.name


def _linkage(btf: Spec, tid: int) -> int:
    t = btf.type(tid)
    return t.linkage if isinstance(t, (T.Var, T.Func)) else 0


class _RelocContext:
    def __init__(
        self,
        elf: ElfFile,
        c: _Collected,
        maps: List[MapSpec],
        externs: Tuple[ExternSpec, ...],
        data_maps: Dict[int, str],
    ) -> None:
        self.elf = elf
        self.c = c
        self.maps_at = {(m.sec_idx, m.sec_offset): m.name for m in maps if m.kind in (MapKind.BTF, MapKind.LEGACY)}
        self.map_secs = {s.index for s in (c.btf_maps, c.legacy_maps) if s is not None}
        self.externs = {e.sym_idx: e for e in externs}
        self.data_maps = data_maps


def _record(ctx: _RelocContext, prog: str, insns: bytes, idx: int, sym: Symbol) -> Reloc:
    code = insns[idx * 8]
    src = insns[idx * 8 + 1] >> 4
    imm = struct.unpack_from("<i", insns, idx * 8 + 4)[0]
    name = sym.name
    if sym.type == STT_SECTION and not name:
        name = ctx.elf.section(sym.shndx).name
    if code not in (_CALL, _LD_IMM64):
        raise ELFError(f"prog {prog!r}: invalid relocation against {name!r} for insn #{idx} (code {code:#04x})")
    if code == _LD_IMM64 and (idx + 1) * 8 >= len(insns):
        raise ELFError(f"prog {prog!r}: ld_imm64 at insn #{idx} is cut off by the end of the program")
    text = ctx.c.text_shndx
    if sym.is_extern:
        ext = ctx.externs.get(sym.index)
        if ext is None:
            raise ELFError(f"prog {prog!r}: no extern for symbol {name!r}")
        kind = RelocKind.EXTERN_CALL if code == _CALL else RelocKind.EXTERN_LD64
        return Reloc(idx, kind, name, extern_name=ext.name)
    if code == _CALL:
        if src != _PSEUDO_CALL:
            raise ELFError(f"prog {prog!r}: relocated call at insn #{idx} is not a bpf-to-bpf call")
        if not sym.shndx or sym.shndx != text:
            raise ELFError(f"prog {prog!r}: bad call relocation against {name!r} in section {sym.shndx}")
        if sym.value % 8:
            raise ELFError(f"prog {prog!r}: bad call relocation against {name!r} at offset {sym.value}")
        return Reloc(idx, RelocKind.CALL, name, sym_off=sym.value)
    if not sym.shndx or sym.shndx >= SHN_LORESERVE:
        raise ELFError(
            f"prog {prog!r}: relocation against {name!r} in special section {sym.shndx:#x}; forgot to initialize a global?"
        )
    if (
        sym.shndx == text
        and text
        and ((sym.bind == STB_LOCAL and sym.type == STT_SECTION) or (sym.is_global and sym.type == STT_FUNC))
    ):
        if sym.value % 8 or imm % 8:
            raise ELFError(f"prog {prog!r}: bad subprogram address relocation against {name!r}")
        return Reloc(idx, RelocKind.SUBPROG_ADDR, name, sym_off=sym.value)
    dmap = ctx.data_maps.get(sym.shndx)
    if dmap is not None:
        return Reloc(idx, RelocKind.DATA, name, map_name=dmap, sym_off=sym.value)
    if sym.shndx in ctx.map_secs:
        mname = ctx.maps_at.get((sym.shndx, sym.value))
        if mname is None:
            raise ELFError(f"prog {prog!r}: no map at offset {sym.value} of section {ctx.elf.section(sym.shndx).name!r}")
        return Reloc(idx, RelocKind.MAP, name, map_name=mname)
    raise ELFError(f"prog {prog!r}: bad relocation against {name!r} in section {ctx.elf.section(sym.shndx).name!r}")


def parse_object(
    data: bytes,
    obj_name: str,
    *,
    relaxed_maps: bool = False,
    pin_root_path: Optional[str] = None,
) -> ElfModel:
    """The model of the BPF ELF object ``data``; raises ELFError / BTFError on malformed input."""
    try:
        return _parse(bytes(data), obj_name, relaxed_maps, pin_root_path)
    except BPFError:
        raise
    except (IndexError, KeyError, struct.error, ValueError, TypeError, OverflowError, RecursionError, UnicodeError) as e:
        raise ELFError(f"malformed BPF object: {type(e).__name__}: {e}") from e


def _parse(data: bytes, obj_name: str, relaxed_maps: bool, pin_root_path: Optional[str]) -> ElfModel:
    elf = read_elf(data)
    c = _collect(elf)
    found = _programs(elf, c)

    # BTF: required by .maps and externs, otherwise optional (a corrupt .BTF is then ignored, as libbpf does)
    has_externs = any(s.is_extern and s.name for s in elf.symbols)
    btf: Optional[Spec] = None
    if c.btf is not None:
        try:
            btf = Spec.from_bytes(c.btf.data)
        except BTFError:
            if c.btf_maps is not None or has_externs:
                raise
    elif c.btf_maps is not None:
        raise ELFError('SEC(".maps") needs BTF, and the object has no .BTF section')
    elif c.st_ops_secs:
        raise ELFError(f"section {c.st_ops_secs[0].name!r}: struct_ops maps need BTF, and the object has no .BTF section")
    raw_ds: List[T.Datasec] = []
    datasecs: List[DatasecInfo] = []
    if btf is not None:
        raw_ds, datasecs = _datasecs(elf, btf)
    ds_by_name = {d.name: d for d in datasecs}

    externs = collect_externs(elf, btf, raw_ds) if has_externs else ()
    strict = not relaxed_maps
    maps: List[MapSpec] = []
    if c.legacy_maps is not None:
        maps += mapdefs.legacy_maps(elf, c.legacy_maps, btf, strict)
    if c.btf_maps is not None:
        maps += mapdefs.btf_maps(btf, c.btf_maps, ds_by_name.get(".maps"), strict, pin_root_path)
    data_maps: Dict[int, str] = {}
    for sec, kind in sorted(c.data_secs, key=lambda sk: sk[0].index):
        if sec.size == 0:  # libbpf skips empty data sections (GCC emits an empty .bss)
            continue
        if sec.size > MAX_DATA_SIZE:
            raise ELFError(f"section {sec.name!r} is {sec.size} bytes, too large for a map value")
        m = mapdefs.global_data_map(obj_name, kind, sec, btf, ds_by_name)
        data_maps[sec.index] = m.name
        maps.append(m)
    arena_map = _arena(maps, c.arena_sec, data_maps)
    ksize = kconfig_map_size(externs)
    if ksize > MAX_KCONFIG_SIZE:
        raise ELFError(
            f".kconfig externs take {ksize} bytes, more than an array map value can hold "
            f"({MAX_KCONFIG_SIZE} bytes, the kernel's KMALLOC_MAX_SIZE with 4 KiB pages)"
        )
    if ksize:
        maps.append(mapdefs.kconfig_map(obj_name, ksize, elf.symtab_index, btf))
        data_maps[elf.symtab_index] = maps[-1].name
    for sec in c.st_ops_secs:  # after the other maps, as libbpf's bpf_object__init_maps
        maps += struct_ops_maps(btf, sec, ds_by_name.get(sec.name))

    nprogs = len(found)
    keys = [(sec.index, sym.value // 8) for sym, sec in found]
    relocs: List[List[Reloc]] = [[] for _ in found]
    ctx = _RelocContext(elf, c, maps, externs, data_maps)
    entry = {sym.name: (sec.index, sym.value) for sym, sec in found if not (sec.index == c.text_shndx and nprogs > 1)}
    st_ops_idx = {s.index for s in c.st_ops_secs}
    for rs in c.rel_secs:
        target = elf.sections[rs.info]
        if rs.info in st_ops_idx:
            assert btf is not None
            types = [parse_section(sec.name).prog_type if sec.index != c.text_shndx else 0 for _, sec in found]
            collect_st_ops_relos(elf, rs, maps, btf, found, types)
            continue
        if rs.name == ".rel.maps" and not target.is_exec:
            if c.btf_maps is None or rs.info != c.btf_maps.index:
                continue
            mapdefs.collect_map_slots(elf, rs, maps, btf, ds_by_name.get(".maps"), entry)
            continue
        for n, rel in enumerate(elf.rels(rs)):
            sym = elf.symbol(rel.sym)
            if sym.shndx >= len(elf.sections):
                raise ELFError(f"{rs.name}: relo #{n}: symbol #{sym.index} points to invalid section #{sym.shndx}")
            if rel.offset % 8 or rel.offset >= len(target.data):
                raise ELFError(f"{rs.name}: relo #{n}: invalid offset {rel.offset:#x}")
            insn = rel.offset // 8
            i = bisect.bisect_right(keys, (target.index, insn)) - 1
            if i < 0:
                continue
            psym, psec = found[i]
            start = psym.value // 8
            if psec.index != target.index or not start <= insn < start + psym.size // 8:
                continue  # no program there (an overridden weak function): skipped, as libbpf does
            pinsns = psec.data[psym.value : psym.value + psym.size]
            relocs[i].append(_record(ctx, psym.name, pinsns, insn - start, sym))

    programs = []
    for (sym, sec), rl in zip(found, relocs):
        rl.sort(key=lambda r: r.insn_idx)
        programs.append(
            ProgramSpec(
                name=sym.name,
                section=parse_section(sec.name),
                sec_idx=sec.index,
                insn_off=sym.value // 8,
                insns=sec.data[sym.value : sym.value + sym.size],
                relocs=tuple(rl),
                is_subprog=sec.index == c.text_shndx and nprogs > 1,
                sym_global=sym.bind != STB_LOCAL,
                mark_btf_static=sym.bind != STB_LOCAL and sym.is_hidden,
            )
        )
    return ElfModel(
        license=c.license,
        kversion=c.kversion,
        programs=tuple(programs),
        maps=tuple(maps),
        externs=externs,
        btf_raw=c.btf.data if c.btf is not None else None,
        btf_ext_raw=c.btf_ext.data if c.btf_ext is not None else None,
        datasecs=tuple(datasecs),
        text_shndx=c.text_shndx,
        section_names={s.index: s.name for s in elf.sections if s.index},
        arena_map=arena_map,
    )
