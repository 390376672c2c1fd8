"""Where a function lives in an ELF file: symbol -> file offset, for uprobes.

pyelftools is imported on first use.  Both position-dependent (ET_EXEC) and
position-independent (ET_DYN: PIE, shared libraries) files work: the offset
is the symbol's address moved from its section's address to its section's
file offset.  A function the binary only imports (no PLT stub to probe, as in
``-fno-plt`` binaries) is looked up in the libraries it needs (DT_NEEDED).
"""

from __future__ import annotations

import os
import platform
from typing import Any, Iterator, List, Optional, Tuple

from ..abi.record import Record, _set
from ..errors import BPFError, ELFError

__all__ = ["SymbolLocation", "find_binary", "symbol_offset", "resolve_function"]

_STT_FUNC = "STT_FUNC"
_STT_IFUNC = "STT_LOOS"  # pyelftools' name for STT_GNU_IFUNC (10)
_MAX_SYMBOLS = 5_000_000


class SymbolLocation(Record):
    """A function found in an ELF file (an immutable record: :mod:`pybpfload.abi.record`)."""

    __slots__ = _fields = ("path", "symbol", "offset", "address")
    path: str  # the file to probe (the binary, or the library defining the function)
    symbol: str
    offset: int  # file offset of the function's first instruction
    address: int  # st_value

    def __init__(self, path: str, symbol: str, offset: int, address: int) -> None:
        _set(self, "path", path)
        _set(self, "symbol", symbol)
        _set(self, "offset", offset)
        _set(self, "address", address)


def _multiarch_dirs() -> List[str]:
    m = platform.machine()
    triple = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu", "riscv64": "riscv64-linux-gnu",
              "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu", "armv7l": "arm-linux-gnueabihf"}.get(m)
    dirs = []
    if triple:
        dirs += [f"/lib/{triple}", f"/usr/lib/{triple}"]
    return dirs


def find_binary(name: str) -> str:
    """A path for ``name``: as given when it has a ``/``; a library (``.so``) on
    LD_LIBRARY_PATH and the system library directories; a program on PATH."""
    if "/" in name:
        if not os.path.exists(name):
            raise BPFError(f"uprobe target {name!r} does not exist")
        return os.path.abspath(name)
    if ".so" in name:
        dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
        dirs += _multiarch_dirs() + ["/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"]
    else:
        dirs = [d for d in os.environ.get("PATH", "").split(":") if d]
    for d in dirs:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return os.path.abspath(p)
    raise BPFError(f"cannot find {name!r} (searched {':'.join(dirs)})")


def _open_elf(path: str, f: Any) -> Any:
    from elftools.common.exceptions import ELFError as _PyELFError
    from elftools.elf.elffile import ELFFile

    try:
        return ELFFile(f)
    except (_PyELFError, ValueError, OSError, KeyError, IndexError) as e:
        raise ELFError(f"{path}: not a usable ELF file: {e}") from e


def _symbols(elf: Any) -> Iterator[Any]:
    for secname in (".symtab", ".dynsym"):
        sec = elf.get_section_by_name(secname)
        if sec is None or sec.header["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM"):
            continue
        n = sec.num_symbols()
        if n > _MAX_SYMBOLS:
            raise ELFError(f"{secname} claims {n} symbols")
        for i in range(n):
            yield sec.get_symbol(i)


def _base_name(symbol: str) -> str:
    return symbol.split("@", 1)[0]


def _lookup(path: str, symbol: str) -> Tuple[Optional[SymbolLocation], bool, List[str]]:
    """(location if defined here, whether the file imports it, DT_NEEDED libraries)."""
    from elftools.common.exceptions import ELFError as _PyELFError

    want = _base_name(symbol)
    try:
        with open(path, "rb") as f:
            elf = _open_elf(path, f)
            found: List[Tuple[int, int, int]] = []  # (binding rank, st_value, section index)
            imported = False
            for sym in _symbols(elf):
                if _base_name(sym.name) != want:
                    continue
                st = sym["st_info"]["type"]
                shndx = sym["st_shndx"]
                if shndx == "SHN_UNDEF":
                    imported = True
                    continue
                if st not in (_STT_FUNC, _STT_IFUNC) or not isinstance(shndx, int):
                    continue
                rank = {"STB_GLOBAL": 0, "STB_WEAK": 1}.get(sym["st_info"]["bind"], 2)
                found.append((rank, sym["st_value"], shndx))
            needed = _needed(elf)
            if not found:
                return None, imported, needed
            found.sort()
            best = [x for x in found if x[0] == found[0][0]]
            if len({x[1] for x in best}) > 1:
                raise BPFError(f"{path}: symbol {want!r} is defined more than once at different addresses")
            _, value, shndx = best[0]
            sec = elf.get_section(shndx)
            offset = value - sec["sh_addr"] + sec["sh_offset"]
            if offset < 0 or offset >= os.path.getsize(path):
                raise ELFError(f"{path}: symbol {want!r} at {value:#x} lies outside the file")
            return SymbolLocation(path, want, offset, value), imported, needed
    except OSError as e:
        raise BPFError(f"cannot read {path!r}: {e}") from None
    except (_PyELFError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise ELFError(f"{path}: malformed ELF file: {e}") from e


def _needed(elf: Any) -> List[str]:
    dyn = elf.get_section_by_name(".dynamic")
    if dyn is None or not hasattr(dyn, "iter_tags"):
        return []
    return [tag.needed for tag in dyn.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]


def symbol_offset(path: str, symbol: str) -> int:
    """The file offset of function ``symbol`` defined in ``path``."""
    loc, _, _ = _lookup(path, symbol)
    if loc is None:
        raise BPFError(f"{path}: no function {_base_name(symbol)!r} defined")
    return loc.offset


def resolve_function(binary: str, symbol: str) -> SymbolLocation:
    """Find function ``symbol`` for a uprobe on ``binary`` (a path, a library or program name).

    When ``binary`` only imports the function, the libraries it needs are
    searched (one level), and the location names the library.
    """
    path = find_binary(binary)
    loc, imported, needed = _lookup(path, symbol)
    if loc is not None:
        return loc
    if imported:
        for lib in needed:
            try:
                lib_path = find_binary(lib)
            except BPFError:
                continue
            hit, _, _ = _lookup(lib_path, symbol)
            if hit is not None:
                return hit
    raise BPFError(f"{path}: no function {_base_name(symbol)!r} (nor in the libraries it needs: {', '.join(needed) or 'none'})")
