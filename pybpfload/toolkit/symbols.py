"""Addresses to symbol names: kernel (/proc/kallsyms) and user space (/proc/PID/maps + ELF symbol tables).

What bcc's ``BPF.sym(addr, pid, show_module, show_offset)`` and
``BPF.ksym(addr, ...)`` print, as ``str``::

    >>> ksym(addr, show_module=True, show_offset=True)
    'do_sys_openat2+0x5 [kernel]'
    >>> sym(addr, pid, show_module=True, show_offset=True)
    'target_add+0x4 [uprobe_target]'
    >>> sym(0x10, pid)
    '[unknown]'

Kernel symbols are the non-data lines of /proc/kallsyms (a module's symbols
carry its ``[module]`` name, the others ``kernel``); an address resolves to
the closest symbol at or below it, as bcc does (kallsyms has no sizes).

User addresses are found in the executable, file-backed mappings of
/proc/PID/maps (and ``[vdso]``), then in that file's ELF symbol tables:
``.symtab`` and ``.dynsym`` functions (STT_FUNC, STT_GNU_IFUNC), plus those
of its debug file (``/usr/lib/debug/.build-id/xx/yyyy.debug``, or
``.gnu_debuglink``).  Addresses of shared objects and PIEs become ELF
virtual addresses through the mapping's file offset and the ELF's PT_LOAD
segments.  A symbol contains an address when ``start <= addr < start +
size`` (nested symbols are walked back as bcc does).  ``/tmp/perf-PID.map``
(JIT symbols) is read for what no file resolves.

Each binary's table is read once (its own small ELF reader: struct over the
section and symbol tables, no pyelftools) into sorted arrays searched with
bisect, and cached by (device, inode, mtime, size); tables are also found by
GNU build id (:func:`resolve_build_id`, for BPF_F_STACK_BUILD_ID stacks).
Names are decoded on first use; C++ names are demangled with ``c++filt``
when it is installed (all of a binary's names in one run).

What cannot be resolved prints ``[unknown]`` — with the module when the
address is inside one (``[unknown] [libfoo.so]``), as bcc prints.  A
process that is gone raises :class:`~pybpfload.errors.BPFOSError` (ESRCH)
from :class:`ProcessSymbols`; :func:`sym` turns that into ``[unknown]``.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
from bisect import bisect_left, bisect_right
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

from ..errors import BPFError, BPFOSError, ELFError

__all__ = [
    "Symbol",
    "ElfSymbols",
    "KernelSymbols",
    "ProcessSymbols",
    "elf_symbols",
    "kernel_symbols",
    "process_symbols",
    "resolve_build_id",
    "sym",
    "ksym",
    "ksymname",
    "clear_caches",
    "DEBUG_DIR",
]

DEBUG_DIR = "/usr/lib/debug"
_KERNEL_ADDR_SPACE = 0x00FFFFFFFFFFFFFF  # bcc: kallsyms lines below this are not kernel text

ET_EXEC = 2
ET_DYN = 3
PT_LOAD = 1
PT_NOTE = 4
SHT_SYMTAB = 2
SHT_NOTE = 7
SHT_DYNSYM = 11
STT_FUNC = 2
STT_GNU_IFUNC = 10
NT_GNU_BUILD_ID = 3


class Symbol(NamedTuple):
    """A resolved address: ``name`` (None when unknown), ``offset`` into it, ``module`` (a path, a kernel module, ``kernel``).

    When ``name`` is None, ``offset`` is the address inside ``module``
    (the ELF virtual address) or, without a module, the address itself.
    """

    name: Optional[str]
    offset: int
    module: Optional[str]

    def format(self, show_module: bool = False, show_offset: bool = False) -> str:
        """bcc's text: ``name``, ``+0xOFF`` (show_offset, known names only), `` [basename(module)]`` (show_module)."""
        name = self.name
        if name is None:
            text = "[unknown]"
        elif show_offset:
            text = "%s+0x%x" % (name, self.offset)
        else:
            text = name
        if show_module and self.module is not None:
            text += " [%s]" % os.path.basename(self.module)
        return text


# ============================================================ ELF symbol tables
_EHDR = {1: struct.Struct("16sHHIIIIIHHHHHH"), 2: struct.Struct("16sHHIQQQIHHHHHH")}
_SHDR = {1: "IIIIIIIIII", 2: "IIQQQQIIQQ"}
_PHDR = {1: "IIIIIIII", 2: "IIQQQQQQ"}
_SYM = {1: "IIIBBH", 2: "IBBHQQ"}


class _Elf:
    """The parts of one ELF file symbolisation needs, read with struct from a bytes-like image."""

    def __init__(self, data: Union[bytes, memoryview], where: str) -> None:
        if len(data) < 52 or data[:4] != b"\x7fELF":
            raise ELFError(f"{where}: not an ELF file")
        cls = data[4]
        if cls not in (1, 2):
            raise ELFError(f"{where}: unknown ELF class {cls}")
        bo = "<" if data[5] == 1 else ">"
        self.cls, self.bo, self.data, self.where = cls, bo, data, where
        try:
            eh = struct.Struct(bo + _EHDR[cls].format).unpack_from(data, 0)
            (_, self.etype, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, shstrndx) = eh
            self.phdrs: List[Tuple[int, ...]] = []
            ph = struct.Struct(bo + _PHDR[cls])
            if phoff and phentsize >= ph.size:
                for i in range(phnum):
                    p = ph.unpack_from(data, phoff + i * phentsize)
                    if cls == 2:  # (type, flags, offset, vaddr, paddr, filesz, memsz, align)
                        self.phdrs.append((p[0], p[2], p[3], p[5], p[6], p[1]))
                    else:  # (type, offset, vaddr, paddr, filesz, memsz, flags, align)
                        self.phdrs.append((p[0], p[1], p[2], p[4], p[5], p[6]))
            # (type, offset, vaddr, filesz, memsz, flags)
            self.shdrs: List[Tuple[int, ...]] = []
            sh = struct.Struct(bo + _SHDR[cls])
            if shoff and shentsize >= sh.size:
                if shnum == 0:  # more than SHN_LORESERVE sections: the count is in section 0's sh_size
                    shnum = sh.unpack_from(data, shoff)[5]
                for i in range(shnum):
                    s = sh.unpack_from(data, shoff + i * shentsize)
                    # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
                    self.shdrs.append(s)
            self.shstrtab = b""
            if 0 < shstrndx < len(self.shdrs):
                s = self.shdrs[shstrndx]
                self.shstrtab = bytes(data[s[4] : s[4] + s[5]])
        except struct.error as e:
            raise ELFError(f"{where}: truncated ELF headers ({e})") from None

    def section_name(self, s: Tuple[int, ...]) -> str:
        t = self.shstrtab
        end = t.find(b"\0", s[0])
        return t[s[0] : end if end >= 0 else len(t)].decode("latin-1")

    def section_data(self, s: Tuple[int, ...]) -> bytes:
        if s[1] == 8:  # SHT_NOBITS
            return b""
        return bytes(self.data[s[4] : s[4] + s[5]])

    def build_id(self) -> Optional[str]:
        notes = [self.section_data(s) for s in self.shdrs if s[1] == SHT_NOTE]
        if not notes:
            notes = [bytes(self.data[p[1] : p[1] + p[3]]) for p in self.phdrs if p[0] == PT_NOTE]
        hdr = struct.Struct(self.bo + "III")
        for blob in notes:
            off = 0
            while off + 12 <= len(blob):
                namesz, descsz, ntype = hdr.unpack_from(blob, off)
                name_at = off + 12
                desc_at = name_at + ((namesz + 3) & ~3)
                if ntype == NT_GNU_BUILD_ID and blob[name_at : name_at + namesz] == b"GNU\0":
                    return blob[desc_at : desc_at + descsz].hex()
                off = desc_at + ((descsz + 3) & ~3)
        return None

    def debuglink(self) -> Optional[Tuple[str, int]]:
        for s in self.shdrs:
            if self.section_name(s) == ".gnu_debuglink":
                d = self.section_data(s)
                end = d.find(b"\0")
                if end <= 0:
                    return None
                crc_at = (end + 4) & ~3
                crc = struct.unpack_from(self.bo + "I", d, crc_at)[0] if crc_at + 4 <= len(d) else 0
                return d[:end].decode("utf-8", "replace"), crc
        return None

    def has_symtab(self) -> bool:
        return any(sh[1] == SHT_SYMTAB for sh in self.shdrs)

    def func_symbols(self, tab: int, kind: int) -> Tuple[List[Tuple[int, int, int, int, int]], List[bytes]]:
        """([(start, size, rank, name offset, strtab index)...], [strtab bytes...]) of the functions of the
        ``kind`` (SHT_SYMTAB / SHT_DYNSYM) tables; ``rank`` orders aliases: GLOBAL, WEAK, LOCAL."""
        rows: List[Tuple[int, int, int, int, int]] = []
        strtabs: List[bytes] = []
        fmt = self.bo + _SYM[self.cls]
        size = struct.calcsize(fmt)
        funcs = (STT_FUNC, STT_GNU_IFUNC)
        rank = _BIND_RANK
        for s in self.shdrs:
            if s[1] != kind or s[5] < size:
                continue
            link = s[6]
            if not 0 < link < len(self.shdrs):
                continue
            data = self.section_data(s)
            data = data[: len(data) - len(data) % size]
            strtabs.append(self.section_data(self.shdrs[link]))
            si = tab + len(strtabs) - 1
            if self.cls == 2:
                rows += [
                    (value, sz, rank.get(info >> 4, 3), name, si)
                    for name, info, _o, _shndx, value, sz in struct.iter_unpack(fmt, data)
                    if value and name and (info & 0xF) in funcs
                ]
            else:
                rows += [
                    (value, sz, rank.get(info >> 4, 3), name, si)
                    for name, value, sz, info, _o, _shndx in struct.iter_unpack(fmt, data)
                    if value and name and (info & 0xF) in funcs
                ]
        return rows, strtabs


_BIND_RANK = {1: 0, 2: 1, 0: 2}  # STB_GLOBAL, STB_WEAK, STB_LOCAL


def _release(data: Optional[Union[bytes, memoryview]]) -> None:
    """Unmap what _read_file mapped."""
    if isinstance(data, memoryview):
        obj = data.obj
        data.release()
        if hasattr(obj, "close"):
            obj.close()


def _read_file(path: str) -> Union[bytes, memoryview]:
    import mmap

    with open(path, "rb") as f:
        try:
            return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        except ValueError:  # empty file
            return b""


class ElfSymbols:
    """The function symbols of one ELF file, sorted for bisect (use :func:`elf_symbols`, which caches).

    ``find(vaddr)`` gives ``(name, offset)`` or None; ``vaddr_of_file_offset``
    turns a file offset (a mapping's, a build-id stack entry's) into an ELF
    virtual address through the PT_LOAD segments.
    """

    def __init__(self, path: str, *, image: Optional[Union[bytes, memoryview]] = None, use_debug_file: bool = True) -> None:
        self.path = path
        data = image if image is not None else _read_file(path)
        try:
            elf = _Elf(data, path)
            self.etype: int = elf.etype
            self.build_id: Optional[str] = elf.build_id()
            self.loads: List[Tuple[int, int, int, int]] = [(p[1], p[2], p[3], p[5]) for p in elf.phdrs if p[0] == PT_LOAD]
            if any(fsz == 0 and flags & 1 for _o, _v, fsz, flags in self.loads):  # a debug file: code is NOBITS
                self.loads = _guess_debug_loads(elf)
            self.text: Optional[Tuple[int, int]] = None
            for sh in elf.shdrs:
                if sh[1] == 1 and elf.section_name(sh) == ".text":
                    self.text = (sh[3], sh[4])
                    break
            # .symtab has every function .dynsym has: read it alone when there is one, here or in the
            # debug file (bcc reads them all and gets the same functions, in more time)
            self.debug_file: Optional[str] = None
            rows: List[Tuple[int, int, int, int, int]] = []
            strtabs: List[bytes] = []
            if elf.has_symtab():
                rows, strtabs = elf.func_symbols(0, SHT_SYMTAB)
            elif use_debug_file and image is None:
                dbg = self._find_debug_file(elf)
                if dbg is not None:
                    ddata = None
                    try:
                        ddata = _read_file(dbg)
                        delf = _Elf(ddata, dbg)
                        if delf.has_symtab():
                            rows, strtabs = delf.func_symbols(0, SHT_SYMTAB)
                            self.debug_file = dbg
                    except (OSError, BPFError):
                        pass
                    finally:
                        _release(ddata)
            if not strtabs:
                rows, strtabs = elf.func_symbols(0, SHT_DYNSYM)
        finally:
            _release(data)
        rows.sort()
        starts: List[int] = []
        sizes: List[int] = []
        refs: List[Tuple[int, int]] = []
        groups: Dict[int, List[Tuple[int, int]]] = {}
        last = (-1, -1)
        for start, size, _rank, name, si in rows:
            if start == last[0] and size == last[1]:  # an alias of the function before: its name is picked on first use
                g = groups.get(len(refs) - 1)
                if g is None:
                    g = groups[len(refs) - 1] = [refs[-1]]
                g.append((si, name))
                continue
            last = (start, size)
            starts.append(start)
            sizes.append(size)
            refs.append((si, name))
        self.starts = starts
        self.sizes = sizes
        self._refs = refs
        self._groups = groups
        self._strtabs = strtabs
        self._names: List[Optional[str]] = [None] * len(starts)
        self._demangled: Optional[Dict[str, str]] = None

    def __len__(self) -> int:
        return len(self.starts)

    def __repr__(self) -> str:
        return f"ElfSymbols({self.path!r}, {len(self)} functions, build_id={self.build_id})"

    def _find_debug_file(self, elf: _Elf) -> Optional[str]:
        bid = self.build_id
        if bid and len(bid) > 2:
            p = os.path.join(DEBUG_DIR, ".build-id", bid[:2], bid[2:] + ".debug")
            if os.path.exists(p):
                return p
        link = elf.debuglink()
        if link is None:
            return None
        name, crc = link
        d = os.path.dirname(os.path.realpath(self.path))
        for p in (os.path.join(d, name), os.path.join(d, ".debug", name), DEBUG_DIR + os.path.join(d, name)):
            if p != self.path and os.path.isfile(p) and _crc32(p) == crc:
                return p
        return None

    def _str(self, ref: Tuple[int, int]) -> str:
        """A symbol's name, without the @VERSION / @@VERSION a .symtab may give versioned symbols."""
        t = self._strtabs[ref[0]]
        end = t.find(b"\0", ref[1])
        name = t[ref[1] : end if end >= 0 else len(t)]
        at = name.find(b"@")
        if at > 0:
            name = name[:at]
        return name.decode("utf-8", "replace")

    def name(self, i: int) -> str:
        n = self._names[i]
        if n is None:
            g = self._groups.get(i)
            if g is not None:  # aliases: the plainest name (fewest leading '_', no @VERSION, shortest), then by binding
                self._refs[i] = min(g, key=lambda ref: _plainness(self._strtabs, ref))
            n = self._names[i] = self._str(self._refs[i])
        return n

    def aliases(self, i: int) -> List[str]:
        """Every name of the function at index i, the one :meth:`find` gives first."""
        first = self.name(i)
        rest = sorted({self._str(r) for r in self._groups.get(i, ())} - {first})
        return [first, *rest]

    def names(self) -> Iterable[str]:
        return (self.name(i) for i in range(len(self.starts)))

    def find(self, vaddr: int) -> Optional[Tuple[str, int]]:
        """(name, offset into it) of the function containing ``vaddr``, or None."""
        starts, sizes = self.starts, self.sizes
        i = bisect_right(starts, vaddr) - 1
        if i < 0:
            return None
        limit = starts[i]
        while i >= 0:
            start = starts[i]
            if vaddr < start + sizes[i]:
                return self.name(i), vaddr - start
            # nested symbols: walk back while a symbol could still cover the first one tried
            if limit > start + sizes[i]:
                return None
            i -= 1
        return None

    def address_of(self, name: str) -> Optional[int]:
        """The start of function ``name`` (its ELF virtual address), or None."""
        for i in range(len(self.starts)):
            if self.name(i) == name:
                return self.starts[i]
        for i, g in self._groups.items():
            if any(self._str(r) == name for r in g):
                return self.starts[i]
        return None

    def vaddr_of_file_offset(self, off: int) -> Optional[int]:
        for p_offset, p_vaddr, p_filesz, _flags in self.loads:
            if p_offset <= off < p_offset + p_filesz:
                return off - p_offset + p_vaddr
        if self.text is not None:  # bcc's formula: through the .text section
            addr, offset = self.text
            return off - offset + addr
        return None

    def demangle(self, name: str) -> str:
        """``name`` demangled by c++filt (when installed), for ``_Z`` names; all of this table's at once."""
        if not (name.startswith("_Z") or name.startswith("___Z")):
            return name
        if self._demangled is None:
            mangled = [n for n in self.names() if n.startswith("_Z") or n.startswith("___Z")]
            self._demangled = _cxxfilt(mangled)
        return self._demangled.get(name, name)


def _guess_debug_loads(elf: _Elf) -> List[Tuple[int, int, int, int]]:
    """A debug file's PT_LOADs have no file size (its sections are NOBITS): where the original's were, as linkers
    lay them out (file offset = virtual address less the first segment's page-aligned base)."""
    loads = [(p[1], p[2], p[3], p[4], p[5]) for p in elf.phdrs if p[0] == PT_LOAD]
    base = min(v for _o, v, _fsz, _msz, _f in loads) & ~0xFFF
    return [(v - base, v, msz, f) for _o, v, _fsz, msz, f in loads]


def _plainness(strtabs: List[bytes], ref: Tuple[int, int]) -> Tuple[int, int, int]:
    """How plain an alias is, smaller first: fewest leading '_', no @VERSION, shortest."""
    t = strtabs[ref[0]]
    end = t.find(b"\0", ref[1])
    name = t[ref[1] : end if end >= 0 else len(t)]
    base = name.split(b"@", 1)[0]
    return (len(base) - len(base.lstrip(b"_")), len(name) - len(base), len(base))


def _crc32(path: str) -> int:
    import zlib

    crc = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return crc
            crc = zlib.crc32(b, crc)


_CXXFILT: List[Optional[str]] = []


def _cxxfilt(names: List[str]) -> Dict[str, str]:
    if not names:
        return {}
    if not _CXXFILT:
        import shutil

        _CXXFILT.append(shutil.which("c++filt"))
    exe = _CXXFILT[0]
    if exe is None:
        return {}
    import subprocess

    try:
        out = subprocess.run([exe], input="\n".join(names) + "\n", capture_output=True, text=True, timeout=30).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    if len(out) != len(names):
        return {}
    return dict(zip(names, out))


_ELF_CACHE: Dict[Tuple[int, int, int, int], ElfSymbols] = {}
_BY_BUILD_ID: Dict[str, ElfSymbols] = {}
_LOCK = threading.Lock()


def elf_symbols(path: str, *, display_path: Optional[str] = None) -> ElfSymbols:
    """The cached :class:`ElfSymbols` of ``path`` (keyed by device, inode, mtime and size).

    Raises OSError subclasses as :class:`~pybpfload.errors.BPFOSError`, and
    :class:`~pybpfload.errors.ELFError` for a file that is not ELF.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        raise BPFOSError(e.errno or errno.ENOENT, f"reading the symbols of {display_path or path}", filename=path) from None
    key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    es = _ELF_CACHE.get(key)
    if es is None:
        try:
            es = ElfSymbols(path)
        except OSError as e:
            raise BPFOSError(e.errno or errno.EIO, f"reading the symbols of {display_path or path}", filename=path) from None
        if display_path is not None:
            es.path = display_path
        with _LOCK:
            _ELF_CACHE[key] = es
            if es.build_id:
                _BY_BUILD_ID.setdefault(es.build_id, es)
    return es


def resolve_build_id(build_id: Union[bytes, str], offset: int) -> Symbol:
    """A BPF_F_STACK_BUILD_ID frame: ``offset`` is a file offset in the object whose GNU build id is ``build_id``.

    The object is one whose symbols were read already (any process's), else
    its debug file under /usr/lib/debug/.build-id/.  Unknown: ``Symbol(None, offset, None)``.
    """
    bid = build_id.hex() if isinstance(build_id, (bytes, bytearray)) else build_id.lower()
    es = _BY_BUILD_ID.get(bid)
    if es is None and len(bid) > 2:
        p = os.path.join(DEBUG_DIR, ".build-id", bid[:2], bid[2:] + ".debug")
        if os.path.exists(p):
            try:
                es = elf_symbols(p)
            except BPFError:
                es = None
    if es is None:
        return Symbol(None, offset, None)
    vaddr = es.vaddr_of_file_offset(offset)
    if vaddr is None:
        return Symbol(None, offset, es.path)
    hit = es.find(vaddr)
    if hit is None:
        return Symbol(None, vaddr, es.path)
    return Symbol(hit[0], hit[1], es.path)


# ============================================================ kernel
class KernelSymbols:
    """/proc/kallsyms's text symbols, sorted (use :func:`kernel_symbols`, which caches).

    The file is split at C speed (no per-line Python): addresses stay
    fixed-width hex bytes, which sort and bisect as the numbers do; data
    symbols (``b B d D r R``, left out by bcc) are stepped over when resolving.
    """

    _DATA = frozenset((b"b", b"B", b"d", b"D", b"r", b"R"))

    def __init__(self, path: str = "/proc/kallsyms") -> None:
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError as e:
            raise BPFOSError(e.errno or errno.EIO, "reading the kernel's symbols", filename=path) from None
        # "ADDR T name\t[module]\n": with the tab made a NUL, every line is three space-separated tokens
        toks = text.replace(b"\t", b"\0").replace(b"\n", b" ").split(b" ")
        n = len(toks) // 3
        addrs, types, names = toks[0 : 3 * n : 3], toks[1 : 3 * n : 3], toks[2 : 3 * n : 3]
        width = len(addrs[0]) if addrs else 16
        if len(toks) % 3 != 1 or toks[-1] != b"" or any(len(a) != width for a in addrs) or any(len(t) != 1 for t in types):
            raise BPFError(f"{path}: unexpected format (not 'ADDRESS TYPE NAME [MODULE]' lines)")
        if n and not addrs[0].strip(b"0") and not addrs[-1].strip(b"0"):
            raise BPFError(f"{path} lists every address as 0: reading kernel addresses needs root (or kernel.kptr_restrict=0)")
        order = sorted(range(n), key=addrs.__getitem__)
        a = [addrs[i] for i in order]
        # bcc leaves out what lies below the kernel's address space (per-CPU offsets, absolute symbols) and ~0
        lo = bisect_right(a, b"00ffffffffffffff") if width == 16 else bisect_right(a, b"0" * width)
        hi = bisect_left(a, b"f" * width)
        order = order[lo:hi]
        self._hex = a[lo:hi]
        self._types = [types[i] for i in order]
        self._names = [names[i] for i in order]
        self._fmt = b"%%0%dx" % width
        self._by_name: Optional[Dict[str, int]] = None
        self._decoded: Dict[int, Tuple[str, str, int]] = {}

    def __len__(self) -> int:
        return len(self._hex)

    def _index(self, addr: int) -> int:
        i = bisect_right(self._hex, self._fmt % addr) - 1
        data = self._DATA
        types = self._types
        while i >= 0 and types[i] in data:
            i -= 1
        return i

    def _entry(self, i: int) -> Tuple[str, str, int]:
        """(name, module, address) of entry i, decoded once."""
        e = self._decoded.get(i)
        if e is None:
            name, _, mod = self._names[i].partition(b"\0")
            module = mod[1:-1].decode("utf-8", "replace") if mod[:1] == b"[" else "kernel"
            e = self._decoded[i] = (name.decode("utf-8", "replace"), module, int(self._hex[i], 16))
        return e

    def _symbol(self, i: int, addr: int) -> Symbol:
        name, module, start = self._entry(i)
        return Symbol(name, addr - start, module)

    def resolve(self, addr: int) -> Symbol:
        """The closest text symbol at or below ``addr`` (bcc's rule); ``Symbol(None, addr, None)`` below the first."""
        i = self._index(addr)
        if i < 0:
            return Symbol(None, addr, None)
        return self._symbol(i, addr)

    def sym(self, addr: int, show_module: bool = False, show_offset: bool = False) -> str:
        """bcc's ``BPF.ksym`` text for ``addr``."""
        i = bisect_right(self._hex, self._fmt % addr) - 1
        if i >= 0 and self._types[i] in self._DATA:
            i = self._index(addr)
        if i < 0:
            return "[unknown]"
        e = self._decoded.get(i)
        if e is None:
            e = self._entry(i)
        text = "%s+0x%x" % (e[0], addr - e[2]) if show_offset else e[0]
        return "%s [%s]" % (text, e[1]) if show_module else text

    def address_of(self, name: str) -> Optional[int]:
        """The address of kernel symbol ``name`` (bcc's ksymname), or None."""
        if self._by_name is None:
            by: Dict[str, int] = {}
            for h, t, n in zip(self._hex, self._types, self._names):
                if t not in self._DATA:
                    by[n.partition(b"\0")[0].decode("utf-8", "replace")] = int(h, 16)
            self._by_name = by
        return self._by_name.get(name)

    def symbols(self) -> Iterable[Tuple[int, str, str]]:
        """(address, name, module) of every text symbol, by address."""
        for i, t in enumerate(self._types):
            if t not in self._DATA:
                s = self._symbol(i, int(self._hex[i], 16))
                yield int(self._hex[i], 16), s.name or "", s.module or "kernel"


_KSYMS: List[KernelSymbols] = []


def kernel_symbols(refresh: bool = False) -> KernelSymbols:
    """The cached :class:`KernelSymbols` (``refresh=True`` reads /proc/kallsyms again: modules come and go)."""
    with _LOCK:
        if refresh or not _KSYMS:
            _KSYMS[:] = [KernelSymbols()]
        return _KSYMS[0]


# ============================================================ processes
_NOT_FILE_BACKED = ("//anon", "/dev/zero", "/anon_hugepage", "[stack", "/SYSV", "[heap]", "[uprobes]", "[vsyscall]")


class _Module:
    __slots__ = ("path", "base", "open_path", "elf", "loaded", "error", "etype")

    def __init__(self, path: str, open_path: str) -> None:
        self.path = path
        self.base = os.path.basename(path)
        self.open_path = open_path
        self.elf: Optional[ElfSymbols] = None
        self.loaded = False
        self.error: Optional[str] = None
        self.etype = 0

    def load(self) -> Optional[ElfSymbols]:
        if not self.loaded:
            self.loaded = True
            try:
                if self.path == "[vdso]":
                    self.elf = _vdso_symbols()
                else:
                    self.elf = elf_symbols(self.open_path, display_path=self.path)
                if self.elf is not None:
                    self.etype = self.elf.etype
            except BPFError as e:
                self.error = str(e)
        return self.elf


class ProcessSymbols:
    """Symbols of one process: its executable mappings (read at creation; :meth:`refresh` re-reads them).

    The mappings are kept when the process exits, so a process's stacks can
    be symbolised after it is gone, as long as this object was made while it ran.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cache: Dict[int, Tuple[Optional[str], int, Optional[str], str]] = {}
        self._perf_map: Optional[Tuple[List[int], List[int], List[str], str]] = None
        self._load_maps()

    def _load_maps(self) -> None:
        pid = self.pid
        path = f"/proc/{pid}/maps"
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            err = errno.ESRCH if e.errno == errno.ENOENT else (e.errno or errno.EIO)
            raise BPFOSError(err, f"reading the mappings of process {pid}", filename=path) from None
        modules: Dict[str, _Module] = {}
        ranges: List[Tuple[int, int, int, _Module]] = []
        for line in lines:
            parts = line.split(None, 5)
            if len(parts) < 6 or parts[1][2:3] != "x":
                continue
            name = parts[5].strip()
            if not name or name.startswith(_NOT_FILE_BACKED):
                continue
            lo, _, hi = parts[0].partition("-")
            start, end, foff = int(lo, 16), int(hi, 16), int(parts[2], 16)
            m = modules.get(name)
            if m is None:
                m = modules[name] = _Module(name, _open_path(pid, name, parts[0], parts[4]))
            ranges.append((start, end, foff, m))
        ranges.sort(key=lambda r: r[0])
        self._starts = [r[0] for r in ranges]
        self._ends = [r[1] for r in ranges]
        self._ranges = ranges
        # per range: ELF address = runtime address - delta (None: not worked out yet; False: no table)
        self._deltas: List[Union[None, bool, int]] = [None] * len(ranges)
        self.modules = list(modules)
        self._cache.clear()
        for p in (f"/proc/{pid}/root/tmp/perf-{_nspid(pid)}.map", f"/tmp/perf-{pid}.map"):
            if os.path.isfile(p):
                self._perf_map = _read_perf_map(p)
                break

    def refresh(self) -> None:
        """Re-read /proc/PID/maps (after dlopen...); the binaries' tables stay cached."""
        self._load_maps()

    def resolve(self, addr: int, demangle: bool = True) -> Symbol:
        """The symbol containing ``addr``; a Symbol with name None (and the module, when inside one) otherwise."""
        r = self._cache.get(addr if demangle else ~addr)
        if r is None:
            r = self._lookup(addr, demangle)
        return Symbol(r[0], r[1], r[2])

    def _lookup(self, addr: int, demangle: bool) -> Tuple[Optional[str], int, Optional[str], str]:
        """(name, offset, module path, module's base name) of ``addr``, cached by address."""
        r = self._resolve(addr, demangle)
        cache = self._cache
        if len(cache) > 1 << 20:
            cache.clear()
        cache[addr if demangle else ~addr] = r
        return r

    def _delta(self, i: int) -> Union[bool, int]:
        """How range i turns runtime addresses into its ELF's: ET_EXEC as they are, ET_DYN through the
        PT_LOAD segment holding the mapping's file offset (bcc's .text formula when none does)."""
        start, end, foff, m = self._ranges[i]
        es = m.load()
        d: Union[bool, int] = False
        if es is not None:
            if m.etype == ET_EXEC:
                d = 0
            else:
                for p_offset, p_vaddr, p_filesz, _flags in es.loads:
                    if p_offset <= foff < p_offset + max(p_filesz, 1):
                        d = start - foff + p_offset - p_vaddr
                        break
                else:
                    v = es.vaddr_of_file_offset(foff)
                    d = False if v is None else start - v
        self._deltas[i] = d
        return d

    def _resolve(self, addr: int, demangle: bool) -> Tuple[Optional[str], int, Optional[str], str]:
        i = bisect_right(self._starts, addr) - 1
        m: Optional[_Module] = None
        offset = addr
        if i >= 0 and addr < self._ends[i]:
            m = self._ranges[i][3]
            d = self._deltas[i]
            if d is None:
                d = self._delta(i)
            if d is not False:
                es = m.elf
                assert es is not None
                offset = addr - d
                # ElfSymbols.find, its common case inline: the closest start below contains the address
                starts = es.starts
                j = bisect_right(starts, offset) - 1
                hit: Optional[Tuple[str, int]] = None
                if j >= 0 and offset < starts[j] + es.sizes[j]:
                    name = es._names[j]
                    hit = (name if name is not None else es.name(j), offset - starts[j])
                elif j >= 0:
                    hit = es.find(offset)
                if hit is not None:
                    name = hit[0]
                    if demangle and name[:1] == "_":
                        name = es.demangle(name)
                    return name, hit[1], m.path, m.base
        pm = self._perf_map
        if pm is not None:
            j = bisect_right(pm[0], addr) - 1
            if j >= 0 and addr < pm[0][j] + pm[1][j]:
                return pm[2][j], addr - pm[0][j], pm[3], os.path.basename(pm[3])
        if m is not None and offset:
            return None, offset, m.path, m.base
        return None, addr, None, ""

    def sym(self, addr: int, show_module: bool = False, show_offset: bool = False, demangle: bool = True) -> str:
        """bcc's ``BPF.sym`` text for ``addr`` in this process."""
        r = self._cache.get(addr if demangle else ~addr)
        if r is None:
            r = self._lookup(addr, demangle)
        name = r[0]
        if name is None:
            text = "[unknown]"
        elif show_offset:
            text = "%s+0x%x" % (name, r[1])
        else:
            text = name
        if show_module and r[2] is not None:
            return "%s [%s]" % (text, r[3])
        return text

def _open_path(pid: int, name: str, span: str, inode: str) -> str:
    """Where to read a mapped file: its own path when that is the mapped file (it outlives the process),
    else through the process's root (a container's files), else /proc/PID/map_files (deleted files)."""
    if not name.endswith(" (deleted)"):
        try:
            if os.stat(name).st_ino == int(inode):
                return name
        except (OSError, ValueError):
            pass
        rooted = f"/proc/{pid}/root{name}"
        if os.path.exists(rooted):
            return rooted
    return f"/proc/{pid}/map_files/{span}"


def _nspid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return pid


def _read_perf_map(path: str) -> Tuple[List[int], List[int], List[str], str]:
    rows = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 2)
                if len(parts) == 3:
                    try:
                        rows.append((int(parts[0], 16), int(parts[1], 16), parts[2]))
                    except ValueError:
                        continue
    except OSError:
        pass
    rows.sort()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], path


_VDSO: List[Optional[ElfSymbols]] = []


def _vdso_symbols() -> Optional[ElfSymbols]:
    """The vDSO's symbols, read from this process's own [vdso] mapping (the kernel gives every process the same image)."""
    if _VDSO:
        return _VDSO[0]
    es: Optional[ElfSymbols] = None
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if line.rstrip().endswith("[vdso]"):
                    lo, _, hi = line.split()[0].partition("-")
                    start, end = int(lo, 16), int(hi, 16)
                    import ctypes

                    image = ctypes.string_at(start, end - start)
                    es = ElfSymbols("[vdso]", image=image)
                    break
    except (OSError, BPFError, ValueError):
        es = None
    _VDSO.append(es)
    return es


_PROCS: Dict[int, ProcessSymbols] = {}


def process_symbols(pid: int) -> ProcessSymbols:
    """The cached :class:`ProcessSymbols` of ``pid`` (made on first use; BPFOSError ESRCH when the process is gone)."""
    ps = _PROCS.get(pid)
    if ps is None:
        ps = ProcessSymbols(pid)
        with _LOCK:
            _PROCS[pid] = ps
    return ps


def clear_caches() -> None:
    """Forget every cached table: binaries, processes, kernel symbols."""
    with _LOCK:
        _ELF_CACHE.clear()
        _BY_BUILD_ID.clear()
        _PROCS.clear()
        _KSYMS.clear()


# ============================================================ bcc's functions
def sym(addr: int, pid: int, show_module: bool = False, show_offset: bool = False, demangle: bool = True) -> str:
    """bcc's ``BPF.sym``: ``addr`` in process ``pid`` (a pid below 0: the kernel) as text; ``[unknown]`` when unresolved.

    ``"start_thread+0x202 [libc.so.6]"`` with show_module and show_offset.
    A process that cannot be read (gone, no permission) gives ``[unknown]``.
    """
    if pid < 0:
        return ksym(addr, show_module, show_offset)
    ps = _PROCS.get(pid)
    if ps is None:
        try:
            ps = process_symbols(pid)
        except BPFError:
            return "[unknown]"
    return ps.sym(addr, show_module, show_offset, demangle)


def ksym(addr: int, show_module: bool = False, show_offset: bool = False) -> str:
    """bcc's ``BPF.ksym``: ``"default_idle+0x0 [kernel]"`` with show_module and show_offset."""
    k = _KSYMS[0] if _KSYMS else kernel_symbols()
    return k.sym(addr, show_module, show_offset)


def ksymname(name: str) -> int:
    """bcc's ``BPF.ksymname``: the address of a kernel symbol, -1 when unknown."""
    a = kernel_symbols().address_of(name)
    return -1 if a is None else a

