"""The object model: what a BPF ELF object declares, before anything is loaded.

Plain frozen dataclasses, built by :func:`pybpfload.elf.parse_object`.
Relocations are symbolic (a map name, a data section, an extern, a .text
offset) so that the loader can resolve them against kernel objects later.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

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
]


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
    DATA = "data"  # ld_imm64 into a global data map: map value + offset
    CALL = "call"  # bpf-to-bpf call into .text
    SUBPROG_ADDR = "subprog_addr"  # ld_imm64 of a .text function's address (callbacks)
    EXTERN_LD64 = "extern_ld64"  # ld_imm64 of a kconfig or ksym extern
    EXTERN_CALL = "extern_call"  # call of a kfunc


@dataclass(frozen=True)
class Reloc:
    """One relocation of a program instruction, in the program's frame of reference."""

    insn_idx: int  # slot index within the program
    kind: RelocKind
    sym_name: str
    map_name: Optional[str] = None  # MAP, DATA
    sym_off: int = 0  # DATA: offset of the symbol in its section; CALL / SUBPROG_ADDR: symbol offset in .text
    extern_name: Optional[str] = None  # EXTERN_*


@dataclass(frozen=True)
class ProgramSpec:
    """One function of an executable section: an entry-point program or a .text subprogram."""

    name: str
    section: SectionInfo
    sec_idx: int
    insn_off: int  # first slot within its section
    insns: bytes
    relocs: Tuple[Reloc, ...]
    is_subprog: bool  # in .text (libbpf's prog_is_subprog)
    sym_global: bool
    mark_btf_static: bool  # global but hidden: its BTF FUNC is made static at load

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


@dataclass(frozen=True)
class StructOpsSpec:
    """What a struct_ops map holds, as the object declares it (libbpf's struct bpf_struct_ops before load).

    ``programs`` has one entry per member of the object's struct: the name
    of the program its function pointer is relocated to, or None.  The
    struct's bytes (function pointers zero) are the map's ``initial_value``.
    """

    type_name: str  # the object's struct name, flavour suffix included ("tcp_congestion_ops___v2")
    type_id: int  # the struct in the object's BTF
    members: Tuple[str, ...]  # member names, in BTF order
    programs: Tuple[Optional[str], ...]  # per member: program name or None
    section: str  # ".struct_ops" or ".struct_ops.link" (without '?')


@dataclass(frozen=True)
class MapSpec:
    """One map definition."""

    name: str
    kind: MapKind
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    numa_node: int = 0
    map_extra: int = 0
    pinning: int = 0  # LIBBPF_PIN_NONE / LIBBPF_PIN_BY_NAME
    pin_path: Optional[str] = None
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    inner: Optional["MapSpec"] = None  # map-in-map template ("<name>.inner")
    init_slots: Tuple[Optional[str], ...] = ()  # prog array: program names; map of maps: map names
    initial_value: Optional[bytes] = None  # global data maps: section contents (None for .bss / .kconfig)
    sec_idx: int = 0
    sec_offset: int = 0
    real_name: str = ""  # internal maps: the ELF section name (".rodata.custom")
    btf_var_idx: int = -1  # BTF maps: index of the map's VAR in DATASEC .maps
    kernel_name: str = ""  # the name given to the kernel when it differs from ``name``
    struct_ops: Optional[StructOpsSpec] = None  # STRUCT_OPS maps
    autocreate: bool = True  # False for maps of '?'-prefixed struct_ops sections

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


@dataclass(frozen=True)
class ExternSpec:
    """One ``extern`` of the object (``__kconfig`` or ``__ksym``)."""

    name: str
    kind: ExternKind
    sym_idx: int
    btf_id: int  # the VAR or FUNC
    sec_btf_id: int  # its DATASEC
    is_weak: bool
    essent_name: str  # name without a ___flavor suffix
    # kconfig
    kcfg_type: Optional[KcfgType] = None
    kcfg_size: int = 0
    kcfg_align: int = 0
    kcfg_signed: bool = False
    kcfg_offset: int = 0  # offset in the .kconfig map value
    # ksym
    ksym_type_id: int = 0  # type behind modifiers (0 for untyped 'const void' ksyms)
    is_func: bool = False  # a kfunc


@dataclass(frozen=True)
class DatasecVar:
    name: str
    type_id: int  # the VAR
    offset: int
    size: int
    linkage: int  # after libbpf's fixup: hidden globals count as static


@dataclass(frozen=True)
class DatasecInfo:
    """A DATASEC with the size and offsets libbpf fixes up from the ELF symbols."""

    name: str
    btf_id: int
    size: int
    vars: Tuple[DatasecVar, ...]


@dataclass(frozen=True)
class ElfModel:
    """Everything pybpfload reads from a BPF ELF object, with no syscalls."""

    license: str
    kversion: Optional[int]  # the 'version' section, when there is one
    programs: Tuple[ProgramSpec, ...]  # every function of every executable section, in file order
    maps: Tuple[MapSpec, ...]
    externs: Tuple[ExternSpec, ...]
    btf_raw: Optional[bytes]
    btf_ext_raw: Optional[bytes]
    datasecs: Tuple[DatasecInfo, ...]
    text_shndx: int  # 0 when there is no .text
    section_names: Dict[int, str] = field(default_factory=dict)  # section index -> name, for messages

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
