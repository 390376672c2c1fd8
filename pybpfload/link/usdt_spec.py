"""USDT (SystemTap SDT) probes: notes, argument specs, spec ids — libbpf's usdt.c, pure.

An ELF binary or shared library built with ``<sys/sdt.h>`` carries one
``NT_STAPSDT`` note in ``.note.stapsdt`` per probe *call site*: provider,
name, the link-time address of the probe's nop, the address of
``.stapsdt.base`` at link time (to undo prelink moves), an optional
semaphore address, and the argument string (``-4@%eax 8@-8(%rbp) 4@$5``).
This module turns those into what the kernel and ``<bpf/usdt.bpf.h>`` need:

- :func:`parse_notes` — the notes of a ``.note.stapsdt`` section (bytes in);
- :func:`parse_arg` / :func:`parse_spec` — x86-64 argument strings into
  :class:`UsdtSpec`, packed by :meth:`UsdtSpec.pack` with the byte layout of
  ``struct __bpf_usdt_spec``;
- :func:`read_elf` / :func:`collect_targets` — for one ``provider:name`` in a
  file, every call site with its file offset (the uprobe offset), semaphore
  file offset (the uprobe ``ref_ctr_offset``), absolute IP (for the
  ip-to-spec-id map of kernels without BPF cookies) and spec;
- :class:`SpecIdAllocator` — spec ids per BPF object as libbpf's
  usdt_manager allocates them (one id per distinct argument string within
  one attachment; freed ids reused last-in first-out).

No syscalls here: :mod:`pybpfload.link.usdt` attaches.  pyelftools is
imported on first use.

Differences from libbpf, on purpose:

- **Spec layout from the object.**  usdt.bpf.h changed ``struct
  __bpf_usdt_arg_spec`` in libbpf 1.7 (``arg_type`` became an 8-bit
  bitfield followed by ``idx_reg_off``/``scale_bitshift`` for SIB
  arguments, which moves ``reg_off`` and makes the struct 24 bytes instead
  of 16).  libbpf writes the layout it was compiled with; we write the one
  the object was compiled with, told apart by the size of the spec map's
  value (208 bytes up to 1.6, 304 from 1.7), so objects built against
  either header work.  SIB arguments (``-1@-96(%rbp,%rax,8)``) exist only
  in the newer layout; with the older one they are refused, as libbpf < 1.7
  refuses them.
- Only x86-64 argument syntax is parsed (libbpf also knows arm64, s390x,
  riscv, arm, ppc64, loongarch): other architectures raise
  NotSupportedError.
"""

from __future__ import annotations

import errno
import re
import struct
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..abi.record import Record, _set
from ..errors import BPFOSError, ELFError, NotSupportedError, ParseError

__all__ = [
    "ARG_CONST",
    "ARG_REG",
    "ARG_REG_DEREF",
    "ARG_SIB",
    "USDT_MAX_ARG_CNT",
    "SPEC_SIZE_V1",
    "SPEC_SIZE_V2",
    "UsdtArgSpec",
    "UsdtSpec",
    "UsdtNote",
    "UsdtElf",
    "UsdtTarget",
    "Segment",
    "parse_notes",
    "parse_arg",
    "parse_spec",
    "spec_layout",
    "x86_64_reg_offset",
    "read_elf",
    "parse_proc_maps",
    "collect_targets",
    "SpecIdAllocator",
]

# enum __bpf_usdt_arg_type
ARG_CONST, ARG_REG, ARG_REG_DEREF, ARG_SIB = 0, 1, 2, 3
USDT_MAX_ARG_CNT = 12  # BPF_USDT_MAX_ARG_CNT

NOTE_SECTION = ".note.stapsdt"
BASE_SECTION = ".stapsdt.base"
NOTE_NAME = b"stapsdt"
NOTE_TYPE = 3

# struct __bpf_usdt_arg_spec: 16 bytes up to libbpf 1.6 ("v1": u64 val_off;
# enum arg_type; short reg_off; bool arg_signed; char arg_bitshift), 24 bytes
# from 1.7 ("v2": u64 val_off; arg_type:8; pad:8; u16 {idx_reg_off:12,
# scale_bitshift:4}; u8 reserved; pad; short reg_off; bool; char; pad to 8).
# struct __bpf_usdt_spec: args[12]; u64 usdt_cookie; short arg_cnt; padding.
_ARG_V1 = struct.Struct("<QIhBb")
_ARG_V2 = struct.Struct("<QBxHBxhBb6x")
SPEC_SIZE_V1 = USDT_MAX_ARG_CNT * _ARG_V1.size + 16  # 208
SPEC_SIZE_V2 = USDT_MAX_ARG_CNT * _ARG_V2.size + 16  # 304
_TAIL = struct.Struct("<Qh6x")

# struct pt_regs (x86-64) offsets; every name of a register maps to its slot.
_X86_64_PT_REGS = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "rbp": 32, "rbx": 40, "r11": 48, "r10": 56,
    "r9": 64, "r8": 72, "rax": 80, "rcx": 88, "rdx": 96, "rsi": 104, "rdi": 112,
    "rip": 128, "rsp": 152,
}
_X86_64_ALIASES = {
    "rip": ("eip",),
    "rax": ("eax", "ax", "al"),
    "rbx": ("ebx", "bx", "bl"),
    "rcx": ("ecx", "cx", "cl"),
    "rdx": ("edx", "dx", "dl"),
    "rsi": ("esi", "si", "sil"),
    "rdi": ("edi", "di", "dil"),
    "rbp": ("ebp", "bp", "bpl"),
    "rsp": ("esp", "sp", "spl"),
}
_X86_64_REGS: Dict[str, int] = {}
for _r, _off in _X86_64_PT_REGS.items():
    _X86_64_REGS[_r] = _off
    for _alias in _X86_64_ALIASES.get(_r, ()):
        _X86_64_REGS[_alias] = _off
    if _r[1:].isdigit():  # r8..r15: r8d, r8w, r8b
        for _suffix in "dwb":
            _X86_64_REGS[_r + _suffix] = _off


def x86_64_reg_offset(name: str) -> int:
    """The offset in x86-64 ``struct pt_regs`` of a register, by any of its names (``rax``, ``eax``, ``ax``, ``al``)."""
    off = _X86_64_REGS.get(name)
    if off is None:
        raise ParseError(f"usdt: unrecognized register {name!r}")
    return off


# ------------------------------------------------------------------ specs
class UsdtArgSpec(Record):
    """One argument: where it is (``arg_type`` + ``val_off`` / ``reg_off`` / SIB fields) and how to cast it."""

    __slots__ = _fields = ("arg_type", "val_off", "reg_off", "arg_signed", "arg_bitshift", "idx_reg_off", "scale_bitshift")
    arg_type: int
    val_off: int  # constant value, or memory offset
    reg_off: int  # pt_regs offset of the (base) register
    arg_signed: bool
    arg_bitshift: int  # 64 - size * 8
    idx_reg_off: int  # SIB: pt_regs offset of the index register
    scale_bitshift: int  # SIB: log2(scale)

    def __init__(
        self,
        arg_type: int,
        val_off: int = 0,
        reg_off: int = 0,
        arg_signed: bool = False,
        arg_bitshift: int = 0,
        idx_reg_off: int = 0,
        scale_bitshift: int = 0,
    ) -> None:
        _set(self, "arg_type", arg_type)
        _set(self, "val_off", val_off)
        _set(self, "reg_off", reg_off)
        _set(self, "arg_signed", arg_signed)
        _set(self, "arg_bitshift", arg_bitshift)
        _set(self, "idx_reg_off", idx_reg_off)
        _set(self, "scale_bitshift", scale_bitshift)

    @property
    def size(self) -> int:
        return (64 - self.arg_bitshift) // 8

    def pack(self, layout: int = 2) -> bytes:
        """The bytes of ``struct __bpf_usdt_arg_spec`` (layout 1: libbpf <= 1.6, 2: 1.7+)."""
        val = self.val_off & 0xFFFFFFFFFFFFFFFF
        if layout == 1:
            if self.arg_type == ARG_SIB:
                raise NotSupportedError(
                    "USDT SIB arguments (base + index * scale)", "the object's usdt.bpf.h predates them (libbpf < 1.7)"
                )
            return _ARG_V1.pack(val, self.arg_type, self.reg_off, int(self.arg_signed), self.arg_bitshift)
        word = (self.idx_reg_off & 0xFFF) | ((self.scale_bitshift & 0xF) << 12)
        return _ARG_V2.pack(val, self.arg_type, word, 0, self.reg_off, int(self.arg_signed), self.arg_bitshift)

    @classmethod
    def unpack(cls, data: bytes, layout: int = 2) -> "UsdtArgSpec":
        if layout == 1:
            val, at, reg, sgn, shift = _ARG_V1.unpack(data)
            idx = scale = 0
        else:
            val, at, word, _, reg, sgn, shift = _ARG_V2.unpack(data)
            idx, scale = word & 0xFFF, word >> 12
        if val >= 1 << 63:
            val -= 1 << 64
        return cls(at, val, reg, bool(sgn), shift, idx, scale)


class UsdtSpec(Record):
    """``struct __bpf_usdt_spec``: the arguments of one call site and the USDT cookie."""

    __slots__ = _fields = ("args", "usdt_cookie")
    args: Tuple[UsdtArgSpec, ...]
    usdt_cookie: int

    def __init__(self, args: Tuple[UsdtArgSpec, ...] = (), usdt_cookie: int = 0) -> None:
        _set(self, "args", args)
        _set(self, "usdt_cookie", usdt_cookie)

    def pack(self, layout: int = 2) -> bytes:
        """The map value (208 bytes in layout 1, 304 in layout 2)."""
        arg_size = _ARG_V1.size if layout == 1 else _ARG_V2.size
        body = b"".join(a.pack(layout) for a in self.args)
        body += bytes(arg_size * (USDT_MAX_ARG_CNT - len(self.args)))
        return body + _TAIL.pack(self.usdt_cookie & 0xFFFFFFFFFFFFFFFF, len(self.args))

    @classmethod
    def unpack(cls, data: bytes) -> "UsdtSpec":
        """From a map value; the layout follows from its size."""
        layout = spec_layout(len(data))
        arg_size = _ARG_V1.size if layout == 1 else _ARG_V2.size
        cookie, cnt = _TAIL.unpack_from(data, arg_size * USDT_MAX_ARG_CNT)
        if not 0 <= cnt <= USDT_MAX_ARG_CNT:
            raise ParseError(f"usdt spec with {cnt} arguments")
        args = tuple(UsdtArgSpec.unpack(data[i * arg_size : (i + 1) * arg_size], layout) for i in range(cnt))
        return cls(args, cookie)


def spec_layout(value_size: int) -> int:
    """The usdt.bpf.h layout (1 or 2) of a spec map with this value size."""
    if value_size == SPEC_SIZE_V1:
        return 1
    if value_size == SPEC_SIZE_V2:
        return 2
    raise NotSupportedError(
        "this usdt.bpf.h",
        f"__bpf_usdt_specs has {value_size}-byte values; known layouts are {SPEC_SIZE_V1} (libbpf <= 1.6) and {SPEC_SIZE_V2} (1.7+)",
    )


# sscanf(" %d @ ...") accepts blanks around tokens and a sign / leading zeros on numbers
_NUM = r"[+-]?\d+"
_REG = r"%([^,)\s]{1,15})"
_SIB = re.compile(rf"\s*({_NUM})\s*@\s*({_NUM})?\s*\(\s*{_REG}\s*,\s*{_REG}\s*(?:,\s*({_NUM})\s*)?\)\s*")
_DEREF = re.compile(rf"\s*({_NUM})\s*@\s*({_NUM})?\s*\(\s*{_REG}\s*\)\s*")
_REGARG = re.compile(r"\s*([+-]?\d+)\s*@\s*%(\S{1,15})\s*")
_CONST = re.compile(rf"\s*({_NUM})\s*@\s*\$\s*({_NUM})\s*")


def _c_long(text: str) -> int:
    v = int(text)
    if not -(1 << 63) <= v < 1 << 63:
        raise ParseError(f"usdt: number {text} does not fit in a long")
    return v


def parse_arg(text: str, arg_num: int = 0, arch: str = "x86_64") -> Tuple[UsdtArgSpec, int]:
    """One argument at the start of ``text``: (spec, characters consumed, trailing blanks included).

    The forms libbpf parses on x86-64: ``N@$imm`` (constant), ``N@%reg``
    (register), ``N@off(%reg)`` / ``N@(%reg)`` (memory at register +
    offset), ``N@off(%base,%index,scale)`` (SIB).  ``N`` is the size in
    bytes (1, 2, 4, 8), negative for signed.
    """
    if arch != "x86_64":
        raise NotSupportedError(f"USDT argument specs of {arch}", "pybpfload parses x86-64 ones only")
    m = _SIB.match(text)
    if m is not None:
        size = int(m.group(1))
        scale = int(m.group(5)) if m.group(5) is not None else 1
        shifts = {1: 0, 2: 1, 4: 2, 8: 3}
        if scale not in shifts:
            raise ParseError(f"usdt: invalid SIB scale {scale} in arg #{arg_num} spec {text!r}, expected 1, 2, 4, 8")
        spec = UsdtArgSpec(
            ARG_SIB,
            val_off=_c_long(m.group(2) or "0"),
            reg_off=x86_64_reg_offset(m.group(3)),
            idx_reg_off=x86_64_reg_offset(m.group(4)),
            scale_bitshift=shifts[scale],
        )
    elif (m := _DEREF.match(text)) is not None:
        size = int(m.group(1))
        spec = UsdtArgSpec(ARG_REG_DEREF, val_off=_c_long(m.group(2) or "0"), reg_off=x86_64_reg_offset(m.group(3)))
    elif (m := _REGARG.match(text)) is not None:
        size = int(m.group(1))
        spec = UsdtArgSpec(ARG_REG, reg_off=x86_64_reg_offset(m.group(2)))
    elif (m := _CONST.match(text)) is not None:
        size = int(m.group(1))
        spec = UsdtArgSpec(ARG_CONST, val_off=_c_long(m.group(2)))
    else:
        raise ParseError(f"usdt: unrecognized arg #{arg_num} spec {text!r}")
    signed, size = size < 0, abs(size)
    if size not in (1, 2, 4, 8):
        raise ParseError(f"usdt: unsupported arg #{arg_num} (spec {text!r}) size: {size}")
    spec = UsdtArgSpec(spec.arg_type, spec.val_off, spec.reg_off, signed, 64 - size * 8, spec.idx_reg_off, spec.scale_bitshift)
    return spec, m.end()


def parse_spec(args: str, usdt_cookie: int = 0, arch: str = "x86_64") -> UsdtSpec:
    """The whole argument string of a note (``-4@%edi -8@%rax 1@%dl``) as a :class:`UsdtSpec`."""
    out: List[UsdtArgSpec] = []
    s = args
    while s:
        if len(out) >= USDT_MAX_ARG_CNT:
            raise BPFOSError(errno.E2BIG, f"usdt: too many USDT arguments (> {USDT_MAX_ARG_CNT}) in {args!r}")
        spec, n = parse_arg(s, len(out), arch)
        out.append(spec)
        s = s[n:]
    return UsdtSpec(tuple(out), usdt_cookie)


# ------------------------------------------------------------------ notes
class UsdtNote(Record):
    """One NT_STAPSDT note: a probe call site."""

    __slots__ = _fields = ("provider", "name", "args", "loc_addr", "base_addr", "sema_addr")
    provider: str
    name: str
    args: str
    loc_addr: int
    base_addr: int
    sema_addr: int

    def __init__(self, provider: str, name: str, args: str, loc_addr: int, base_addr: int, sema_addr: int) -> None:
        _set(self, "provider", provider)
        _set(self, "name", name)
        _set(self, "args", args)
        _set(self, "loc_addr", loc_addr)
        _set(self, "base_addr", base_addr)
        _set(self, "sema_addr", sema_addr)


def _align4(n: int) -> int:
    return (n + 3) & ~3


def parse_notes(data: bytes, *, ptr_size: int = 8, little_endian: bool = True) -> List[UsdtNote]:
    """Every note of a ``.note.stapsdt`` section.

    Notes of another name or type are refused (ELFError), as libbpf refuses
    them; an argument string that is empty or starts with ``:`` means no
    arguments.
    """
    end = "<" if little_endian else ">"
    hdr = struct.Struct(end + "III")
    addrs = struct.Struct(end + ("QQQ" if ptr_size == 8 else "III"))
    notes: List[UsdtNote] = []
    off = 0
    while off + hdr.size <= len(data):
        namesz, descsz, ntype = hdr.unpack_from(data, off)
        name_off = off + hdr.size
        desc_off = name_off + _align4(namesz)
        nxt = desc_off + _align4(descsz)
        if desc_off + descsz > len(data):
            raise ELFError(f"usdt: truncated note at offset {off:#x} of {NOTE_SECTION}")
        name = data[name_off : name_off + namesz].rstrip(b"\0")
        if name != NOTE_NAME or ntype != NOTE_TYPE:
            raise ELFError(f"usdt: note at offset {off:#x} of {NOTE_SECTION} is not a stapsdt note (name {name!r}, type {ntype})")
        desc = data[desc_off : desc_off + descsz]
        if len(desc) < addrs.size + 3:
            raise ELFError(f"usdt: note at offset {off:#x} is too short")
        loc, base, sema = addrs.unpack_from(desc)
        strs = desc[addrs.size :]
        # provider \0 name \0 args: provider and name terminated, name non-empty, args present
        p_end = strs.find(b"\0")
        n_end = strs.find(b"\0", p_end + 1) if p_end >= 0 else -1
        if p_end < 0 or p_end + 1 >= len(strs) or strs[p_end + 1] == 0 or n_end < 0 or n_end + 1 >= len(strs):
            raise ELFError(f"usdt: malformed provider/name/arguments in the note at offset {off:#x} of {NOTE_SECTION}")
        a_end = strs.find(b"\0", n_end + 1)
        raw_args = strs[n_end + 1 : a_end if a_end >= 0 else len(strs)]
        provider, pname, args = (b.decode("utf-8", "replace") for b in (strs[:p_end], strs[p_end + 1 : n_end], raw_args))
        if args.startswith(":"):
            args = ""
        notes.append(UsdtNote(provider, pname, args, loc, base, sema))
        off = nxt
    return notes


# ------------------------------------------------------------------ ELF files
class Segment(Record):
    """An address range and the file offset it maps (PT_LOAD segment, or a line of /proc/PID/maps)."""

    __slots__ = _fields = ("start", "end", "offset", "is_exec")
    start: int
    end: int
    offset: int
    is_exec: bool

    def __init__(self, start: int, end: int, offset: int, is_exec: bool) -> None:
        _set(self, "start", start)
        _set(self, "end", end)
        _set(self, "offset", offset)
        _set(self, "is_exec", is_exec)


class UsdtElf:
    """What USDT attach needs of an ELF file."""

    __slots__ = ("path", "e_type", "machine", "segments", "base_addr", "notes")

    def __init__(
        self,
        path: str,
        e_type: str,
        machine: str,
        segments: List[Segment],
        base_addr: int,
        notes: Optional[List[UsdtNote]] = None,
    ) -> None:
        self.path = path
        self.e_type = e_type  # "ET_EXEC" or "ET_DYN"
        self.machine = machine  # pyelftools' e_machine ("EM_X86_64")
        self.segments = segments
        self.base_addr = base_addr  # sh_addr of .stapsdt.base, 0 without it
        self.notes: List[UsdtNote] = [] if notes is None else notes

    def __repr__(self) -> str:
        return (
            f"UsdtElf(path={self.path!r}, e_type={self.e_type!r}, machine={self.machine!r}, "
            f"segments={self.segments!r}, base_addr={self.base_addr!r}, notes={self.notes!r})"
        )

    @property
    def arch(self) -> str:
        return {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64", "EM_S390": "s390x", "EM_RISCV": "riscv64",
                "EM_PPC64": "ppc64", "EM_ARM": "arm", "EM_386": "i386", "EM_LOONGARCH": "loongarch64"}.get(self.machine, self.machine)


def read_elf(path: str) -> UsdtElf:
    """Read the program headers, ``.stapsdt.base`` and the notes of ``path`` (a 64-bit little-endian ELF file)."""
    from elftools.common.exceptions import ELFError as _PyELFError

    from .elfsym import _open_elf

    try:
        with open(path, "rb") as f:
            elf = _open_elf(path, f)
            if elf.elfclass != 64 or not elf.little_endian:
                raise ELFError(f"usdt: {path}: only 64-bit little-endian ELF files are supported")
            e_type = elf.header["e_type"]
            if e_type not in ("ET_EXEC", "ET_DYN"):
                raise ELFError(f"usdt: unsupported type of ELF binary {path!r} ({e_type}), only ET_EXEC and ET_DYN are supported")
            segs = [
                Segment(p["p_vaddr"], p["p_vaddr"] + p["p_memsz"], p["p_offset"], bool(p["p_flags"] & 1))
                for p in elf.iter_segments()
                if p["p_type"] == "PT_LOAD"
            ]
            if not segs:
                raise BPFOSError(errno.ESRCH, f"usdt: failed to find PT_LOAD program headers in {path!r}")
            segs.sort(key=lambda s: s.start)
            notes_sec = elf.get_section_by_name(NOTE_SECTION)
            if notes_sec is None:
                raise BPFOSError(errno.ENOENT, f"usdt: no USDT notes section ({NOTE_SECTION}) found in {path!r}")
            if notes_sec["sh_type"] != "SHT_NOTE":
                raise ELFError(f"usdt: invalid USDT notes section ({NOTE_SECTION}) in {path!r}")
            notes = parse_notes(notes_sec.data())
            base = elf.get_section_by_name(BASE_SECTION)
            return UsdtElf(path, e_type, elf.header["e_machine"], segs, base["sh_addr"] if base is not None else 0, notes)
    except OSError as e:
        raise BPFOSError(e.errno or errno.EIO, f"usdt: cannot read {path!r}", filename=path) from None
    except (_PyELFError, ValueError, KeyError, IndexError, struct.error) as e:
        if isinstance(e, ParseError):
            raise
        raise ELFError(f"usdt: {path}: malformed ELF file: {e}") from e


def parse_proc_maps(text: str, path: str) -> List[Segment]:
    """The executable mappings of file ``path`` in a ``/proc/PID/maps`` text, sorted by address."""
    segs: List[Segment] = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or parts[5].strip() != path:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-", 1))
        if len(parts[1]) < 3 or parts[1][2] != "x":
            continue  # non-executable mappings are ignored, as libbpf does
        segs.append(Segment(start, end, int(parts[2], 16), True))
    segs.sort(key=lambda s: s.start)
    return segs


def _find_seg(segs: Sequence[Segment], addr: int) -> Optional[Segment]:
    for s in segs:
        if s.start <= addr < s.end:
            return s
    return None


def _find_vma(segs: Sequence[Segment], file_off: int) -> Optional[Segment]:
    for s in segs:
        if s.offset <= file_off < s.offset + (s.end - s.start):
            return s
    return None


class UsdtTarget(Record):
    """One call site to attach to."""

    __slots__ = _fields = ("abs_ip", "rel_ip", "sema_off", "spec", "spec_str", "note")
    abs_ip: int  # absolute address (ET_EXEC: the address; ET_DYN with a pid and no cookies: in that process)
    rel_ip: int  # file offset: the uprobe's offset
    sema_off: int  # file offset of the semaphore (uprobe ref_ctr_offset), 0 without one
    spec: UsdtSpec
    spec_str: str  # the note's argument string: the key of spec de-duplication
    note: UsdtNote

    def __init__(self, abs_ip: int, rel_ip: int, sema_off: int, spec: UsdtSpec, spec_str: str, note: UsdtNote) -> None:
        _set(self, "abs_ip", abs_ip)
        _set(self, "rel_ip", rel_ip)
        _set(self, "sema_off", sema_off)
        _set(self, "spec", spec)
        _set(self, "spec_str", spec_str)
        _set(self, "note", note)


_NOP_COMBO = bytes([0x90, 0x0F, 0x1F, 0x44, 0x00, 0x00])  # nop; nop5


def collect_targets(
    elf: UsdtElf,
    provider: str,
    name: str,
    *,
    usdt_cookie: int = 0,
    pid: int = -1,
    has_bpf_cookie: bool = True,
    has_sema_refcnt: bool = True,
    proc_maps: Optional[Any] = None,
    code_at: Optional[Any] = None,
) -> List[UsdtTarget]:
    """The call sites of ``provider:name`` in ``elf``, as libbpf's collect_usdt_targets.

    Without BPF cookies a shared library's absolute IPs depend on where a
    process mapped it: ``proc_maps(pid)`` must return ``/proc/PID/maps``'
    text (and ``pid`` be >= 0).  ``code_at(file_off)`` returns the bytes at
    a file offset when the kernel has the uprobe syscall (libbpf then probes
    the ``nop5`` of a ``nop; nop5`` probe, one byte on, which the kernel can
    optimise); None leaves the offsets as the notes give them.
    Raises ENOENT (BPFOSError) when there is no such probe.
    """
    targets: List[UsdtTarget] = []
    vma: Optional[List[Segment]] = None
    where = f"'{provider}:{name}' in {elf.path!r}"
    for note in elf.notes:
        if note.provider != provider or note.name != name:
            continue
        abs_ip = note.loc_addr
        if elf.base_addr and note.base_addr:
            abs_ip += elf.base_addr - note.base_addr  # prelink compensation
        seg = _find_seg(elf.segments, abs_ip)
        if seg is None:
            raise BPFOSError(errno.ESRCH, f"usdt: failed to find ELF program segment for {where} at IP {abs_ip:#x}")
        if not seg.is_exec:
            raise BPFOSError(errno.ESRCH, f"usdt: segment [{seg.start:#x}, {seg.end:#x}) of {where} at IP {abs_ip:#x} is not executable")
        rel_ip = abs_ip - seg.start + seg.offset
        if elf.e_type == "ET_DYN" and not has_bpf_cookie:
            if pid < 0:
                raise NotSupportedError(
                    "USDT on shared libraries (and PIE) without a PID filter", "the kernel lacks BPF cookies (Linux 5.15+)"
                )
            if vma is None:
                if proc_maps is None:
                    raise BPFOSError(errno.ESRCH, f"usdt: no memory map of PID {pid} for {elf.path!r}")
                vma = parse_proc_maps(proc_maps(pid), elf.path)
                if not vma:
                    raise BPFOSError(errno.ESRCH, f"usdt: failed to find {elf.path!r} within PID {pid} memory mappings")
            vseg = _find_vma(vma, rel_ip)
            if vseg is None:
                raise BPFOSError(errno.ESRCH, f"usdt: failed to find the memory segment of {where} at file offset {rel_ip:#x} in PID {pid}")
            abs_ip = vseg.start - vseg.offset + rel_ip
        sema_off = 0
        if note.sema_addr:
            if not has_sema_refcnt:
                raise NotSupportedError(f"USDT semaphores ({where})", "the kernel does not count uprobe references (ref_ctr_offset)")
            sseg = _find_seg(elf.segments, note.sema_addr)
            if sseg is None:
                raise BPFOSError(errno.ESRCH, f"usdt: failed to find the ELF segment with the semaphore of {where} at {note.sema_addr:#x}")
            if sseg.is_exec:
                raise BPFOSError(errno.ESRCH, f"usdt: the semaphore of {where} at {note.sema_addr:#x} is in an executable segment")
            sema_off = note.sema_addr - sseg.start + sseg.offset
        if code_at is not None and elf.arch == "x86_64" and code_at(rel_ip) == _NOP_COMBO:
            abs_ip, rel_ip = abs_ip + 1, rel_ip + 1
        spec = parse_spec(note.args, usdt_cookie, elf.arch)
        targets.append(UsdtTarget(abs_ip, rel_ip, sema_off, spec, note.args, note))
    if not targets:
        raise BPFOSError(errno.ENOENT, f"usdt: no USDT {where}")
    return targets


# ------------------------------------------------------------------ spec ids
class SpecIdAllocator:
    """Spec ids of one BPF object (libbpf's usdt_manager): small integers, keys of the spec array map.

    An attachment takes one id per distinct argument string
    (:meth:`allocate`, de-duplicated only within that attachment, since the
    USDT cookie is part of the spec); ids come from the free list first (the
    most recently freed), then the next never-used id below ``max_entries``
    (E2BIG past it).  :meth:`release` returns an attachment's ids.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.free: List[int] = []
        self.next_id = 0

    def allocate(self, spec_strs: Iterable[str]) -> Tuple[List[int], List[int]]:
        """(spec id of each string in order, the new ids in allocation order); all or nothing."""
        by_str: Dict[str, int] = {}
        ids: List[int] = []
        new: List[int] = []
        free, next_id = list(self.free), self.next_id
        for s in spec_strs:
            sid = by_str.get(s)
            if sid is None:
                if free:
                    sid = free.pop()
                else:
                    if next_id >= self.max_entries:
                        raise BPFOSError(errno.E2BIG, f"usdt: out of spec ids ({self.max_entries}, BPF_USDT_MAX_SPEC_CNT)")
                    sid, next_id = next_id, next_id + 1
                by_str[s] = sid
                new.append(sid)
            ids.append(sid)
        self.free, self.next_id = free, next_id
        return ids, new

    def release(self, ids: Sequence[int]) -> None:
        """Give back an attachment's ids (appended to the free list, as libbpf concatenates them)."""
        self.free.extend(ids)
