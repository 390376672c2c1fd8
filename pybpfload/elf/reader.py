"""Low-level ELF reading: header, sections, symbols and REL entries of a BPF object.

pyelftools reads and checks the ELF header (its ``ELFStructs`` only: importing
``elftools.elf.elffile`` would bring DWARF along, ~20 ms more of every start-up);
the section header, symbol and relocation tables are decoded with :mod:`struct`
in one pass each (parsing one entry per call through pyelftools was most of the
open time), and section contents are slices of the input, never read past its end.
Everything malformed becomes :class:`pybpfload.errors.ELFError`.
"""

from __future__ import annotations

import struct
import sys
from typing import Any, ClassVar, List, Optional, Tuple

from ..abi.record import Record, _set
from ..errors import ELFError

__all__ = ["Section", "Symbol", "Rel", "ElfFile", "read_elf"]

# section types
SHT_NULL = 0
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHT_NOBITS = 8
SHT_REL = 9
SHT_LLVM_ADDRSIG = 0x6FFF4C03
# section flags
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
# symbols
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 0, 1, 2, 3, 4
STV_DEFAULT, STV_INTERNAL, STV_HIDDEN, STV_PROTECTED = 0, 1, 2, 3
SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
# header
ET_REL = 1
EM_NONE = 0
EM_BPF = 247

SYM_SIZE = 24
REL_SIZE = 16
_SYM = struct.Struct("<IBBHQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")  # name, type, flags, addr, offset, size, link, info, addralign, entsize
_REL = struct.Struct("<QQ")


class Section(Record):
    """One section header and its contents (empty for SHT_NOBITS)."""

    __slots__ = ("index", "name", "type", "flags", "offset", "size", "link", "info", "entsize", "data")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int
    data: bytes

    def __init__(self, index: int, name: str, type: int, flags: int, offset: int, size: int, link: int, info: int, entsize: int, data: bytes) -> None:
        _set(self, "index", index)
        _set(self, "name", name)
        _set(self, "type", type)
        _set(self, "flags", flags)
        _set(self, "offset", offset)
        _set(self, "size", size)
        _set(self, "link", link)
        _set(self, "info", info)
        _set(self, "entsize", entsize)
        _set(self, "data", data)

    @property
    def is_exec(self) -> bool:
        return self.type == SHT_PROGBITS and bool(self.flags & SHF_EXECINSTR)


class Symbol(Record):
    """One symbol table entry."""

    __slots__ = ("index", "name", "value", "size", "type", "bind", "visibility", "shndx")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    index: int
    name: str
    value: int
    size: int
    type: int
    bind: int
    visibility: int
    shndx: int

    def __init__(self, index: int, name: str, value: int, size: int, type: int, bind: int, visibility: int, shndx: int) -> None:
        _set(self, "index", index)
        _set(self, "name", name)
        _set(self, "value", value)
        _set(self, "size", size)
        _set(self, "type", type)
        _set(self, "bind", bind)
        _set(self, "visibility", visibility)
        _set(self, "shndx", shndx)

    @property
    def is_extern(self) -> bool:
        """An undefined global or weak symbol without type: an extern (libbpf's sym_is_extern)."""
        return self.shndx == SHN_UNDEF and self.bind in (STB_GLOBAL, STB_WEAK) and self.type == STT_NOTYPE

    @property
    def is_global(self) -> bool:
        return self.bind in (STB_GLOBAL, STB_WEAK)

    @property
    def is_hidden(self) -> bool:
        return self.visibility in (STV_HIDDEN, STV_INTERNAL)


class Rel(Record):
    """One SHT_REL entry."""

    __slots__ = ("offset", "sym", "type")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    offset: int
    sym: int
    type: int

    def __init__(self, offset: int, sym: int, type: int) -> None:
        _set(self, "offset", offset)
        _set(self, "sym", sym)
        _set(self, "type", type)


class ElfFile(Record):
    """The sections and symbols of a relocatable 64-bit little-endian ELF object."""

    __slots__ = ("sections", "symbols", "symtab_index", "machine")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    sections: Tuple[Section, ...]  # index 0 is the null section
    symbols: Tuple[Symbol, ...]
    symtab_index: int
    machine: int

    def __init__(self, sections: Tuple[Section, ...], symbols: Tuple[Symbol, ...], symtab_index: int, machine: int) -> None:
        _set(self, "sections", sections)
        _set(self, "symbols", symbols)
        _set(self, "symtab_index", symtab_index)
        _set(self, "machine", machine)

    def section(self, index: int) -> Section:
        if not 0 <= index < len(self.sections):
            raise ELFError(f"section index {index} out of range (have {len(self.sections)})")
        return self.sections[index]

    def section_by_name(self, name: str) -> Optional[Section]:
        for s in self.sections:
            if s.index and s.name == name:
                return s
        return None

    def symbol(self, index: int) -> Symbol:
        if not 0 <= index < len(self.symbols):
            raise ELFError(f"symbol index {index} out of range (have {len(self.symbols)})")
        return self.symbols[index]

    def rels(self, sec: Section) -> List[Rel]:
        """The entries of REL section ``sec``."""
        if sec.entsize != REL_SIZE:
            raise ELFError(f"relocation section {sec.name!r}: entry size {sec.entsize}, expected {REL_SIZE}")
        data = sec.data
        n = len(data) // REL_SIZE
        return [Rel(off, info >> 32, info & 0xFFFFFFFF) for off, info in _REL.iter_unpack(data[: n * REL_SIZE])]



def _elf_structs() -> Any:
    """pyelftools' ``ELFStructs``, imported without what it never runs here.

    ``elftools.construct`` imports its debugging helpers and pretty-printer, which
    import ``pdb``, ``inspect``, ``traceback`` and ``pprint`` (~10 ms of every
    start-up, as much as the ELF structures themselves).  When nothing has
    imported them yet they are bound as deferred modules (:func:`_defer`) that
    load the real module on first use, by pyelftools or by anyone else; a header
    parse never uses them.
    """
    if "elftools.elf.structs" not in sys.modules:
        for name, names in (("pdb", ()), ("inspect", ()), ("traceback", ()), ("pprint", ("pformat",))):
            _defer(name, names)
    from elftools.elf.structs import ELFStructs

    return ELFStructs


def _defer(name: str, trampolines: Tuple[str, ...]) -> None:
    """Put a stand-in for module ``name`` in sys.modules: its first attribute access
    imports the real module (which replaces it there and fills it in); ``trampolines``
    are functions taken by ``from name import f`` at import time, forwarding each call."""
    if name in sys.modules:
        return
    import importlib
    import importlib.machinery  # not importlib.util: it imports importlib._abc (~0.3 ms)
    import types

    spec = importlib.machinery.PathFinder.find_spec(name)  # not in sys.modules, said the caller
    if spec is None:  # pragma: no cover - the stdlib has them (frozen or zipped: no stand-in, the real thing)
        return
    stand_in = types.ModuleType(name)
    stand_in.__spec__ = spec  # what `import name` checks: it must not trigger the load

    loaded: List[types.ModuleType] = []

    def load() -> types.ModuleType:
        if not loaded:
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
            real = importlib.import_module(name)
            stand_in.__dict__.update(real.__dict__)  # holders of the stand-in see the real thing
            loaded.append(real)
        return loaded[0]

    def __getattr__(attr: str) -> Any:
        if attr == "__path__" and spec.submodule_search_locations is None:
            # `from name import f` asks a module for __path__ (is it a package?):
            # none of these is, and answering must not load the real module
            raise AttributeError(attr)
        return getattr(load(), attr)

    stand_in.__getattr__ = __getattr__  # type: ignore[method-assign]
    for fname in trampolines:

        def forward(*args: Any, _f: str = fname, **kwargs: Any) -> Any:
            return getattr(load(), _f)(*args, **kwargs)

        setattr(stand_in, fname, forward)
    sys.modules[name] = stand_in


def _string(table: bytes, off: int, what: str) -> str:
    if not 0 <= off < len(table):
        raise ELFError(f"{what}: string offset {off} outside its string table ({len(table)} bytes)")
    end = table.find(b"\0", off)
    if end < 0:
        raise ELFError(f"{what}: string at offset {off} is not NUL-terminated")
    return table[off:end].decode("utf-8", "replace")


def read_elf(data: bytes) -> ElfFile:
    """Parse the ELF structure of a BPF object; raises ELFError on anything malformed."""
    if len(data) < 64:
        raise ELFError(f"not an ELF object: {len(data)} bytes is shorter than an ELF header")
    if data[:4] != b"\x7fELF":
        raise ELFError("not an ELF object (bad magic)")
    if data[4] != 2:
        raise ELFError("not a 64-bit ELF object")
    if data[5] == 2:
        raise ELFError("big-endian ELF objects are not supported")
    if data[5] != 1:
        raise ELFError(f"unknown ELF byte order {data[5]}")
    ELFStructs = _elf_structs()

    try:
        structs = ELFStructs(little_endian=True, elfclass=64)
        structs.create_basic_structs()
        hdr = structs.Elf_Ehdr.parse(data[:64])
        e_type, machine = hdr["e_type"], hdr["e_machine"]
        shnum, shoff, shentsize, shstrndx = hdr["e_shnum"], hdr["e_shoff"], hdr["e_shentsize"], hdr["e_shstrndx"]
    except Exception as e:  # pyelftools' construct errors have no common base with ours
        raise ELFError(f"cannot read the ELF header: {e}") from e
    if e_type not in ("ET_REL", ET_REL):
        raise ELFError(f"not a relocatable object (e_type {e_type})")
    if machine not in ("EM_BPF", "EM_NONE", EM_BPF, EM_NONE):
        raise ELFError(f"not a BPF object (e_machine {machine})")
    if shentsize != 64:
        raise ELFError(f"bad section header size {shentsize}")
    if shoff == 0 or shoff + 64 > len(data):
        raise ELFError("section header table missing or past the end of the object")
    if shnum == 0:  # real count in the first header's sh_size (SHN_UNDEF extension)
        shnum = struct.unpack_from("<Q", data, shoff + 32)[0]
    if shoff + shnum * 64 > len(data):
        raise ELFError(f"section header table ({shnum} entries at {shoff}) runs past the end of the object")
    if shstrndx == 0xFFFF:  # SHN_XINDEX: the real index is in the first header's sh_link
        shstrndx = struct.unpack_from("<I", data, shoff + 40)[0]
    # the section header table in one pass (pyelftools parses one header per call, 20x slower)
    headers = list(_SHDR.iter_unpack(data[shoff : shoff + shnum * 64]))
    if not 0 < shstrndx < shnum:
        raise ELFError(f"section name table index {shstrndx} out of range")

    def contents(h: Tuple[int, ...]) -> bytes:
        stype, off, size = h[1], h[4], h[5]
        if stype == SHT_NOBITS:
            return b""
        if off > len(data) or size > len(data) - off:
            raise ELFError(f"section at offset {off} with size {size} runs past the end of the object ({len(data)} bytes)")
        return data[off : off + size]

    shstr = contents(headers[shstrndx])
    sections: List[Section] = []
    for i, h in enumerate(headers):
        if i == 0:
            sections.append(Section(0, "", SHT_NULL, 0, 0, 0, 0, 0, 0, b""))
            continue
        sh_name, stype, flags, _addr, off, size, link, info, _align, entsize = h
        name = _string(shstr, sh_name, f"section #{i} name")
        sections.append(Section(i, name, stype, flags, off, size, link, info, entsize, contents(h)))

    symtabs = [s for s in sections if s.type == SHT_SYMTAB]
    if not symtabs:
        raise ELFError("no symbol table (stripped object?)")
    if len(symtabs) > 1:
        raise ELFError("more than one symbol table")
    symtab = symtabs[0]
    if symtab.entsize != SYM_SIZE:
        raise ELFError(f"symbol table entry size {symtab.entsize}, expected {SYM_SIZE}")
    if not 0 < symtab.link < len(sections) or sections[symtab.link].type != SHT_STRTAB:
        raise ELFError(f"symbol table's string table index {symtab.link} is not a string table")
    strtab = sections[symtab.link].data
    symbols = _symbols(symtab.data, strtab)
    return ElfFile(tuple(sections), symbols, symtab.index, machine)


def _symbols(data: bytes, strtab: bytes) -> Tuple[Symbol, ...]:
    n = len(data) // SYM_SIZE
    out = []
    for i, (name_off, info, other, shndx, value, size) in enumerate(_SYM.iter_unpack(data[: n * SYM_SIZE])):
        name = _string(strtab, name_off, f"symbol #{i}") if name_off else ""
        out.append(Symbol(i, name, value, size, info & 0xF, info >> 4, other & 0x3, shndx))
    return tuple(out)
