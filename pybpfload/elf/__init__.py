"""The ELF object model: open a BPF object into programs, maps and global data.

Pure (bytes in, models out, no syscalls).  :func:`parse_object` builds an
:class:`ElfModel`; :mod:`.sections` holds libbpf's SEC() table.
"""

from __future__ import annotations

from .model import (
    DatasecInfo,
    DatasecVar,
    ElfModel,
    ExternKind,
    ExternSpec,
    KcfgType,
    MapKind,
    MapSpec,
    ProgramSpec,
    Reloc,
    RelocKind,
)
from .parse import parse_object
from .sections import SECTION_DEFS, SectionInfo, find_sec_def, parse_section

__all__ = [
    "parse_object",
    "ElfModel",
    "ProgramSpec",
    "MapSpec",
    "MapKind",
    "Reloc",
    "RelocKind",
    "ExternSpec",
    "ExternKind",
    "KcfgType",
    "DatasecInfo",
    "DatasecVar",
    "SectionInfo",
    "SECTION_DEFS",
    "find_sec_def",
    "parse_section",
]
