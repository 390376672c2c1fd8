"""The object model: what a BPF ELF object declares, before anything is loaded.

Immutable records (:mod:`pybpfload.abi.record`), built by :func:`pybpfload.elf.parse_object`.
Relocations are symbolic (a map name, a data section, an extern, a .text
offset) so that the loader can resolve them against kernel objects later.
"""

from __future__ import annotations

import enum
import mmap
from typing import ClassVar, Dict, Optional, Tuple

from ..abi.record import Record, _set
from .sections import SectionInfo

__all__ = [
    "MapKind",
    "RelocKind",
    "Reloc",
    "ProgramSpec",
    "MapSpec",
    "StructOpsSpec",
    "ExternKind",
    "KcfgType",
    "ExternSpec",
    "DatasecVar",
    "DatasecInfo",
    "ElfModel",
    "ARENA_SEC",
    "PAGE_SIZE",
]

# __arena globals (clang 19 address_space(1) variables): libbpf's ARENA_SEC.  They live in
# the object's one BPF_MAP_TYPE_ARENA map, whose MapSpec.initial_value is this section.
ARENA_SEC = ".addr_space.1"
PAGE_SIZE = mmap.PAGESIZE  # libbpf's sysconf(_SC_PAGE_SIZE): an arena's size is max_entries pages


class MapKind(enum.Enum):
    """Where a map definition comes from (libbpf's libbpf_map_type, plus the definition style)."""

    BTF = "btf"  # struct in SEC(".maps")
    LEGACY = "legacy"  # struct bpf_map_def in SEC("maps")
    DATA = "data"  # .data, .data.*
    RODATA = "rodata"  # .rodata, .rodata.*
    BSS = "bss"  # .bss, .bss.*
    KCONFIG = "kconfig"  # .kconfig externs
    STRUCT_OPS = "struct_ops"  # a variable of .struct_ops, .struct_ops.link, ?.struct_ops, ?.struct_ops.link

    @property
    def internal(self) -> bool:
        """A map libbpf makes for global data or externs (not declared by the program)."""
        return self in (MapKind.DATA, MapKind.RODATA, MapKind.BSS, MapKind.KCONFIG)


class RelocKind(enum.Enum):
    """What a relocated instruction refers to (libbpf's RELO_* kinds)."""

    MAP = "map"  # ld_imm64 of a map: fd
    DATA = "data"  # ld_imm64 into a global data map (or the arena, for __arena globals): map value + offset
    CALL = "call"  # bpf-to-bpf call into .text
    SUBPROG_ADDR = "subprog_addr"  # ld_imm64 of a .text function's address (callbacks)
    EXTERN_LD64 = "extern_ld64"  # ld_imm64 of a kconfig or ksym extern
    EXTERN_CALL = "extern_call"  # call of a kfunc


class Reloc(Record):
    """One relocation of a program instruction, in the program's frame of reference."""

    __slots__ = ("insn_idx", "kind", "sym_name", "map_name", "sym_off", "extern_name")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    insn_idx: int  # slot index within the program
    kind: RelocKind
    sym_name: str
    map_name: Optional[str]  # MAP, DATA
    sym_off: int  # DATA: offset of the symbol in its section; CALL / SUBPROG_ADDR: symbol offset in .text
    extern_name: Optional[str]  # EXTERN_*

    def __init__(
        self,
        insn_idx: int,
        kind: RelocKind,
        sym_name: str,
        map_name: Optional[str] = None,
        sym_off: int = 0,
        extern_name: Optional[str] = None,
    ) -> None:
        _set(self, "insn_idx", insn_idx)
        _set(self, "kind", kind)
        _set(self, "sym_name", sym_name)
        _set(self, "map_name", map_name)
        _set(self, "sym_off", sym_off)
        _set(self, "extern_name", extern_name)


class ProgramSpec(Record):
    """One function of an executable section: an entry-point program or a .text subprogram."""

    __slots__ = ("name", "section", "sec_idx", "insn_off", "insns", "relocs", "is_subprog", "sym_global", "mark_btf_static")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    name: str
    section: SectionInfo
    sec_idx: int
    insn_off: int  # first slot within its section
    insns: bytes
    relocs: Tuple[Reloc, ...]
    is_subprog: bool  # in .text (libbpf's prog_is_subprog)
    sym_global: bool
    mark_btf_static: bool  # global but hidden: its BTF FUNC is made static at load

    def __init__(
        self,
        name: str,
        section: SectionInfo,
        sec_idx: int,
        insn_off: int,
        insns: bytes,
        relocs: Tuple[Reloc, ...],
        is_subprog: bool,
        sym_global: bool,
        mark_btf_static: bool,
    ) -> None:
        _set(self, "name", name)
        _set(self, "section", section)
        _set(self, "sec_idx", sec_idx)
        _set(self, "insn_off", insn_off)
        _set(self, "insns", insns)
        _set(self, "relocs", relocs)
        _set(self, "is_subprog", is_subprog)
        _set(self, "sym_global", sym_global)
        _set(self, "mark_btf_static", mark_btf_static)

    @property
    def section_name(self) -> str:
        return self.section.name

    @property
    def insn_cnt(self) -> int:
        return len(self.insns) // 8

    @property
    def autoload(self) -> bool:
        return self.section.autoload and not self.is_subprog

    @property
    def prog_type(self) -> int:
        return self.section.prog_type

    @property
    def expected_attach_type(self) -> int:
        return self.section.expected_attach_type


class StructOpsSpec(Record):
    """What a struct_ops map holds, as the object declares it (libbpf's struct bpf_struct_ops before load).

    ``programs`` has one entry per member of the object's struct: the name
    of the program its function pointer is relocated to, or None.  The
    struct's bytes (function pointers zero) are the map's ``initial_value``.
    """

    __slots__ = ("type_name", "type_id", "members", "programs", "section")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    type_name: str  # the object's struct name, flavour suffix included ("tcp_congestion_ops___v2")
    type_id: int  # the struct in the object's BTF
    members: Tuple[str, ...]  # member names, in BTF order
    programs: Tuple[Optional[str], ...]  # per member: program name or None
    section: str  # ".struct_ops" or ".struct_ops.link" (without '?')

    def __init__(
        self,
        type_name: str,
        type_id: int,
        members: Tuple[str, ...],
        programs: Tuple[Optional[str], ...],
        section: str,
    ) -> None:
        _set(self, "type_name", type_name)
        _set(self, "type_id", type_id)
        _set(self, "members", members)
        _set(self, "programs", programs)
        _set(self, "section", section)


class MapSpec(Record):
    """One map definition."""

    __slots__ = (
        "name", "kind", "type", "key_size", "value_size", "max_entries", "flags", "numa_node", "map_extra", "pinning",
        "pin_path", "btf_key_type_id", "btf_value_type_id", "inner", "init_slots", "initial_value", "sec_idx",
        "sec_offset", "real_name", "btf_var_idx", "kernel_name", "struct_ops", "autocreate",
    )
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    name: str
    kind: MapKind
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    numa_node: int
    map_extra: int
    pinning: int  # LIBBPF_PIN_NONE / LIBBPF_PIN_BY_NAME
    pin_path: Optional[str]
    btf_key_type_id: int
    btf_value_type_id: int
    inner: Optional["MapSpec"]  # map-in-map template ("<name>.inner")
    init_slots: Tuple[Optional[str], ...]  # prog array: program names; map of maps: map names
    initial_value: Optional[bytes]  # global data maps: section contents (None for .bss / .kconfig); arena: .addr_space.1
    sec_idx: int
    sec_offset: int
    real_name: str  # internal maps: the ELF section name (".rodata.custom")
    btf_var_idx: int  # BTF maps: index of the map's VAR in DATASEC .maps
    kernel_name: str  # the name given to the kernel when it differs from ``name``
    struct_ops: Optional[StructOpsSpec]  # STRUCT_OPS maps
    autocreate: bool  # False for maps of '?'-prefixed struct_ops sections

    def __init__(
        self,
        name: str,
        kind: MapKind,
        type: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        flags: int = 0,
        numa_node: int = 0,
        map_extra: int = 0,
        pinning: int = 0,
        pin_path: Optional[str] = None,
        btf_key_type_id: int = 0,
        btf_value_type_id: int = 0,
        inner: Optional["MapSpec"] = None,
        init_slots: Tuple[Optional[str], ...] = (),
        initial_value: Optional[bytes] = None,
        sec_idx: int = 0,
        sec_offset: int = 0,
        real_name: str = "",
        btf_var_idx: int = -1,
        kernel_name: str = "",
        struct_ops: Optional[StructOpsSpec] = None,
        autocreate: bool = True,
    ) -> None:
        _set(self, "name", name)
        _set(self, "kind", kind)
        _set(self, "type", type)
        _set(self, "key_size", key_size)
        _set(self, "value_size", value_size)
        _set(self, "max_entries", max_entries)
        _set(self, "flags", flags)
        _set(self, "numa_node", numa_node)
        _set(self, "map_extra", map_extra)
        _set(self, "pinning", pinning)
        _set(self, "pin_path", pin_path)
        _set(self, "btf_key_type_id", btf_key_type_id)
        _set(self, "btf_value_type_id", btf_value_type_id)
        _set(self, "inner", inner)
        _set(self, "init_slots", init_slots)
        _set(self, "initial_value", initial_value)
        _set(self, "sec_idx", sec_idx)
        _set(self, "sec_offset", sec_offset)
        _set(self, "real_name", real_name)
        _set(self, "btf_var_idx", btf_var_idx)
        _set(self, "kernel_name", kernel_name)
        _set(self, "struct_ops", struct_ops)
        _set(self, "autocreate", autocreate)

    @property
    def internal(self) -> bool:
        return self.kind.internal

    @property
    def name_for_kernel(self) -> str:
        """The map name as the kernel sees it (at most 15 characters)."""
        return self.kernel_name or self.name[:15]


class ExternKind(enum.Enum):
    KCONFIG = "kconfig"
    KSYM = "ksym"


class KcfgType(enum.Enum):
    """C type class of a kconfig extern (libbpf's kcfg_type)."""

    BOOL = "bool"
    CHAR = "char"
    TRISTATE = "tristate"
    INT = "int"
    CHAR_ARR = "char_arr"


class ExternSpec(Record):
    """One ``extern`` of the object (``__kconfig`` or ``__ksym``)."""

    __slots__ = (
        "name", "kind", "sym_idx", "btf_id", "sec_btf_id", "is_weak", "essent_name", "kcfg_type", "kcfg_size",
        "kcfg_align", "kcfg_signed", "kcfg_offset", "ksym_type_id", "is_func",
    )
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    name: str
    kind: ExternKind
    sym_idx: int
    btf_id: int  # the VAR or FUNC
    sec_btf_id: int  # its DATASEC
    is_weak: bool
    essent_name: str  # name without a ___flavor suffix
    # kconfig
    kcfg_type: Optional[KcfgType]
    kcfg_size: int
    kcfg_align: int
    kcfg_signed: bool
    kcfg_offset: int  # offset in the .kconfig map value
    # ksym
    ksym_type_id: int  # type behind modifiers (0 for untyped 'const void' ksyms)
    is_func: bool  # a kfunc

    def __init__(
        self,
        name: str,
        kind: ExternKind,
        sym_idx: int,
        btf_id: int,
        sec_btf_id: int,
        is_weak: bool,
        essent_name: str,
        kcfg_type: Optional[KcfgType] = None,
        kcfg_size: int = 0,
        kcfg_align: int = 0,
        kcfg_signed: bool = False,
        kcfg_offset: int = 0,
        ksym_type_id: int = 0,
        is_func: bool = False,
    ) -> None:
        _set(self, "name", name)
        _set(self, "kind", kind)
        _set(self, "sym_idx", sym_idx)
        _set(self, "btf_id", btf_id)
        _set(self, "sec_btf_id", sec_btf_id)
        _set(self, "is_weak", is_weak)
        _set(self, "essent_name", essent_name)
        _set(self, "kcfg_type", kcfg_type)
        _set(self, "kcfg_size", kcfg_size)
        _set(self, "kcfg_align", kcfg_align)
        _set(self, "kcfg_signed", kcfg_signed)
        _set(self, "kcfg_offset", kcfg_offset)
        _set(self, "ksym_type_id", ksym_type_id)
        _set(self, "is_func", is_func)


class DatasecVar(Record):
    __slots__ = ("name", "type_id", "offset", "size", "linkage")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    name: str
    type_id: int  # the VAR
    offset: int
    size: int
    linkage: int  # after libbpf's fixup: hidden globals count as static

    def __init__(self, name: str, type_id: int, offset: int, size: int, linkage: int) -> None:
        _set(self, "name", name)
        _set(self, "type_id", type_id)
        _set(self, "offset", offset)
        _set(self, "size", size)
        _set(self, "linkage", linkage)


class DatasecInfo(Record):
    """A DATASEC with the size and offsets libbpf fixes up from the ELF symbols."""

    __slots__ = ("name", "btf_id", "size", "vars")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    name: str
    btf_id: int
    size: int
    vars: Tuple[DatasecVar, ...]

    def __init__(self, name: str, btf_id: int, size: int, vars: Tuple[DatasecVar, ...]) -> None:
        _set(self, "name", name)
        _set(self, "btf_id", btf_id)
        _set(self, "size", size)
        _set(self, "vars", vars)


class ElfModel(Record):
    """Everything pybpfload reads from a BPF ELF object, with no syscalls."""

    __slots__ = (
        "license", "kversion", "programs", "maps", "externs", "btf_raw", "btf_ext_raw", "datasecs", "text_shndx",
        "section_names", "arena_map",
    )
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    license: str
    kversion: Optional[int]  # the 'version' section, when there is one
    programs: Tuple[ProgramSpec, ...]  # every function of every executable section, in file order
    maps: Tuple[MapSpec, ...]
    externs: Tuple[ExternSpec, ...]
    btf_raw: Optional[bytes]
    btf_ext_raw: Optional[bytes]
    datasecs: Tuple[DatasecInfo, ...]
    text_shndx: int  # 0 when there is no .text
    section_names: Dict[int, str]  # section index -> name, for messages
    arena_map: Optional[str]  # the BPF_MAP_TYPE_ARENA map (libbpf's arena_map_idx), whose value the arena globals are

    def __init__(
        self,
        license: str,
        kversion: Optional[int],
        programs: Tuple[ProgramSpec, ...],
        maps: Tuple[MapSpec, ...],
        externs: Tuple[ExternSpec, ...],
        btf_raw: Optional[bytes],
        btf_ext_raw: Optional[bytes],
        datasecs: Tuple[DatasecInfo, ...],
        text_shndx: int,
        section_names: Optional[Dict[int, str]] = None,
        arena_map: Optional[str] = None,
    ) -> None:
        _set(self, "license", license)
        _set(self, "kversion", kversion)
        _set(self, "programs", programs)
        _set(self, "maps", maps)
        _set(self, "externs", externs)
        _set(self, "btf_raw", btf_raw)
        _set(self, "btf_ext_raw", btf_ext_raw)
        _set(self, "datasecs", datasecs)
        _set(self, "text_shndx", text_shndx)
        _set(self, "section_names", dict() if section_names is None else section_names)
        _set(self, "arena_map", arena_map)

    def program(self, name: str) -> Optional[ProgramSpec]:
        for p in self.programs:
            if p.name == name:
                return p
        return None

    def map(self, name: str) -> Optional[MapSpec]:
        for m in self.maps:
            if m.name == name:
                return m
        return None

    def datasec(self, name: str) -> Optional[DatasecInfo]:
        for d in self.datasecs:
            if d.name == name:
                return d
        return None
