"""BPF instructions: decode, encode, name and disassemble.

An instruction is 8 bytes (``code``, ``dst_reg:4 | src_reg:4``, ``off:16``,
``imm:32``, little-endian); ``ld_imm64`` (``BPF_LD | BPF_IMM | BPF_DW``)
takes two slots and carries a 64-bit immediate.  :class:`Insn` models both:
``Insn.size`` is 8 or 16 and, for ld_imm64, ``imm`` is the whole 64-bit value
(``imm & 0xffffffff`` in the first slot, ``imm >> 32`` in the second).

The text of :func:`disasm` follows llvm-objdump's BPF syntax (``r1 = *(u32
*)(r10 - 4)``, ``if r0 == 0 goto +4``, ``r1 = 0 ll``, ``call 1``), so output
can be compared line by line with ``llvm-objdump -d``.

Pure: no syscalls.
"""

from __future__ import annotations

import struct
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from ..abi.record import Record, _set
from ..errors import ParseError

__all__ = [
    "Insn",
    "decode",
    "iter_insns",
    "encode",
    "format_insn",
    "disasm",
    "helper_name",
    "opcode_name",
    "first_cpu_v4",
    "CPU_V4_CLASSES",
    "INSN_SIZE",
]

INSN_SIZE = 8

# instruction classes
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_JMP32, BPF_ALU64 = range(8)
# size field (ld/st)
BPF_W, BPF_H, BPF_B, BPF_DW = 0x00, 0x08, 0x10, 0x18
# mode field (ld/st)
BPF_IMM, BPF_ABS, BPF_IND, BPF_MEM, BPF_MEMSX, BPF_ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0
# source
BPF_K, BPF_X = 0x00, 0x08
# alu ops
BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
BPF_NEG, BPF_MOD, BPF_XOR, BPF_MOV, BPF_ARSH, BPF_END = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
# jmp ops
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
BPF_CALL, BPF_EXIT, BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
# the instruction classes of BPF ISA v4 (Insn.cpu_v4_class)
CPU_V4_CLASSES = ("ldsx", "movsx", "sdiv", "bswap", "gotol")
# atomic ops (imm of BPF_ATOMIC)
BPF_FETCH, BPF_XCHG, BPF_CMPXCHG = 0x01, 0xE0 | 0x01, 0xF0 | 0x01

# src_reg of ld_imm64 and call
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_MAP_VALUE = 2
BPF_PSEUDO_BTF_ID = 3
BPF_PSEUDO_FUNC = 4
BPF_PSEUDO_MAP_IDX = 5
BPF_PSEUDO_MAP_IDX_VALUE = 6
BPF_PSEUDO_CALL = 1
BPF_PSEUDO_KFUNC_CALL = 2

LD_IMM64 = BPF_LD | BPF_IMM | BPF_DW  # 0x18
CALL = BPF_JMP | BPF_CALL  # 0x85
EXIT = BPF_JMP | BPF_EXIT  # 0x95

_S = struct.Struct("<BBhi")
_CLASS_NAMES = ("ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64")
_SIZE_NAMES = {BPF_W: "w", BPF_H: "h", BPF_B: "b", BPF_DW: "dw"}
_SIZE_TYPES = {BPF_W: "u32", BPF_H: "u16", BPF_B: "u8", BPF_DW: "u64"}
_SSIZE_TYPES = {BPF_W: "s32", BPF_H: "s16", BPF_B: "s8", BPF_DW: "s64"}
_MODE_NAMES = {BPF_IMM: "imm", BPF_ABS: "abs", BPF_IND: "ind", BPF_MEM: "mem", BPF_MEMSX: "memsx", BPF_ATOMIC: "atomic"}
_ALU_NAMES = {
    BPF_ADD: "add", BPF_SUB: "sub", BPF_MUL: "mul", BPF_DIV: "div", BPF_OR: "or", BPF_AND: "and",
    BPF_LSH: "lsh", BPF_RSH: "rsh", BPF_NEG: "neg", BPF_MOD: "mod", BPF_XOR: "xor", BPF_MOV: "mov",
    BPF_ARSH: "arsh", BPF_END: "end",
}  # fmt: skip
_ALU_SYMS = {
    BPF_ADD: "+=", BPF_SUB: "-=", BPF_MUL: "*=", BPF_DIV: "/=", BPF_OR: "|=", BPF_AND: "&=",
    BPF_LSH: "<<=", BPF_RSH: ">>=", BPF_MOD: "%=", BPF_XOR: "^=", BPF_MOV: "=", BPF_ARSH: "s>>=",
}  # fmt: skip
_JMP_NAMES = {
    BPF_JA: "ja", BPF_JEQ: "jeq", BPF_JGT: "jgt", BPF_JGE: "jge", BPF_JSET: "jset", BPF_JNE: "jne",
    BPF_JSGT: "jsgt", BPF_JSGE: "jsge", BPF_CALL: "call", BPF_EXIT: "exit", BPF_JLT: "jlt",
    BPF_JLE: "jle", BPF_JSLT: "jslt", BPF_JSLE: "jsle",
}  # fmt: skip
_JMP_SYMS = {
    BPF_JEQ: "==", BPF_JGT: ">", BPF_JGE: ">=", BPF_JSET: "&", BPF_JNE: "!=", BPF_JSGT: "s>",
    BPF_JSGE: "s>=", BPF_JLT: "<", BPF_JLE: "<=", BPF_JSLT: "s<", BPF_JSLE: "s<=",
}  # fmt: skip
_ATOMIC_ALU = {BPF_ADD: "add", BPF_OR: "or", BPF_AND: "and", BPF_XOR: "xor"}


class Insn(Record):
    """One instruction; ld_imm64 is one Insn of 16 bytes with a 64-bit ``imm``.

    An immutable record (:mod:`pybpfload.abi.record`): field-wise ``==`` and hash,
    copied with changes by ``pybpfload.abi.record.replace``.
    """

    __slots__ = _fields = ("code", "dst", "src", "off", "imm")
    code: int
    dst: int
    src: int
    off: int
    imm: int

    def __init__(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> None:
        _set(self, "code", code)
        _set(self, "dst", dst)
        _set(self, "src", src)
        _set(self, "off", off)
        _set(self, "imm", imm)

    # ------------------------------------------------------------ fields
    @property
    def cls(self) -> int:
        return self.code & 0x07

    @property
    def op(self) -> int:
        """ALU / JMP operation (``code & 0xf0``)."""
        return self.code & 0xF0

    @property
    def source(self) -> int:
        """BPF_K (immediate) or BPF_X (register)."""
        return self.code & 0x08

    @property
    def size_field(self) -> int:
        return self.code & 0x18

    @property
    def mode(self) -> int:
        return self.code & 0xE0

    @property
    def is_ldimm64(self) -> bool:
        return self.code == LD_IMM64

    @property
    def size(self) -> int:
        """Bytes taken in the instruction stream: 16 for ld_imm64, else 8."""
        return 16 if self.code == LD_IMM64 else 8

    @property
    def slots(self) -> int:
        return 2 if self.code == LD_IMM64 else 1

    @property
    def is_call(self) -> bool:
        return self.code == CALL

    @property
    def is_helper_call(self) -> bool:
        return self.code == CALL and self.src == 0

    @property
    def is_pseudo_call(self) -> bool:
        """A bpf-to-bpf call (``call`` with src_reg BPF_PSEUDO_CALL)."""
        return self.code == CALL and self.src == BPF_PSEUDO_CALL

    @property
    def is_kfunc_call(self) -> bool:
        return self.code == CALL and self.src == BPF_PSEUDO_KFUNC_CALL

    @property
    def is_exit(self) -> bool:
        return self.code == EXIT

    @property
    def cpu_v4_class(self) -> Optional[str]:
        """The BPF ISA v4 class of this instruction (clang -mcpu=v4; Linux 6.6+), None for
        older ones: "ldsx" (a sign-extending load, BPF_MEMSX), "movsx", "sdiv" (sdiv and
        smod), "bswap" (BPF_ALU64 | BPF_END) or "gotol" (BPF_JMP32 | BPF_JA)."""
        code, cls, op = self.code, self.code & 0x07, self.code & 0xF0
        if cls == BPF_LDX:
            return "ldsx" if code & 0xE0 == BPF_MEMSX else None
        if cls in (BPF_ALU, BPF_ALU64):
            if op == BPF_END:
                return "bswap" if cls == BPF_ALU64 else None
            if op in (BPF_DIV, BPF_MOD):
                return "sdiv" if self.off == 1 else None
            if op != BPF_MOV or code & BPF_X != BPF_X or self.off == 0 or self.is_addr_space_cast:
                return None  # addr_space_cast (off 1 of a 64-bit move: arena, 6.9+) is not v4
            return "movsx"
        return "gotol" if cls == BPF_JMP32 and op == BPF_JA else None

    @property
    def is_addr_space_cast(self) -> bool:
        """``rD = addr_space_cast(rS, dst_as, src_as)`` (arena pointers, Linux 6.9+): a 64-bit
        register move with off 1 (BPF_ADDR_SPACE_CAST), imm ``dst_as << 16 | src_as``."""
        return self.code == BPF_ALU64 | BPF_MOV | BPF_X and self.off == 1

    @property
    def is_cpu_v4(self) -> bool:
        """One of BPF ISA v4's instructions (:attr:`cpu_v4_class`)."""
        return self.cpu_v4_class is not None

    @property
    def is_jump(self) -> bool:
        """A branch with a pc-relative offset (not call / exit)."""
        c = self.cls
        return c in (BPF_JMP, BPF_JMP32) and self.op not in (BPF_CALL, BPF_EXIT)

    def with_imm(self, imm: int) -> "Insn":
        return Insn(self.code, self.dst, self.src, self.off, imm)

    def with_src(self, src: int) -> "Insn":
        return Insn(self.code, self.dst, src, self.off, self.imm)

    # ------------------------------------------------------------ bytes
    def encode(self) -> bytes:
        """The 8 (or 16, for ld_imm64) bytes of this instruction."""
        try:
            regs = (self.dst & 0xF) | ((self.src & 0xF) << 4)
            if self.code == LD_IMM64:
                v = self.imm & 0xFFFFFFFFFFFFFFFF
                lo = _s32(v & 0xFFFFFFFF)
                hi = _s32(v >> 32)
                return _S.pack(self.code, regs, self.off, lo) + _S.pack(0, 0, 0, hi)
            return _S.pack(self.code, regs, self.off, _s32(self.imm & 0xFFFFFFFF))
        except struct.error as e:
            raise ParseError(f"cannot encode {self!r}: {e}") from e

    def __bytes__(self) -> bytes:
        return self.encode()

    # ------------------------------------------------------------ names
    @property
    def name(self) -> str:
        """Mnemonic in the kernel's naming: ``ldxw``, ``add64``, ``jeq``, ``call``, ``lddw``...;
        cpu v4's: ``ldxsb``, ``movsx64 reg``, ``sdiv32 imm``, ``smod64 reg``, ``bswap16``, ``gotol``."""
        cls, op = self.code & 0x07, self.code & 0xF0
        if self.is_addr_space_cast:
            return "addr_space_cast"
        if cls in (BPF_ALU, BPF_ALU64) and op in (BPF_DIV, BPF_MOD, BPF_MOV) and self.off:
            return ("movsx" if op == BPF_MOV else "s" + _ALU_NAMES[op]) + opcode_name(self.code)[3:]
        if cls == BPF_ALU64 and op == BPF_END:
            return f"bswap{self.imm}"
        return opcode_name(self.code)

    def __str__(self) -> str:
        return format_insn(self)


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def opcode_name(code: int) -> str:
    """A short mnemonic for an opcode byte (``0x61`` -> ``"ldxw"``, ``0x07`` -> ``"add64 imm"``)."""
    cls = code & 7
    if cls in (BPF_LD, BPF_LDX, BPF_ST, BPF_STX):
        if code == LD_IMM64:
            return "lddw"
        mode = code & 0xE0
        if cls == BPF_LDX and mode == BPF_MEMSX:  # sign-extending load (cpu v4)
            return "ldxs" + _SIZE_NAMES[code & 0x18]
        base = _CLASS_NAMES[cls] + _SIZE_NAMES[code & 0x18]
        if mode != BPF_MEM and not (cls == BPF_LD and mode == BPF_IMM):
            base += " " + _MODE_NAMES.get(mode, f"mode{mode:#x}")
        return base
    if cls in (BPF_ALU, BPF_ALU64):
        name = _ALU_NAMES.get(code & 0xF0, f"alu{code & 0xF0:#x}")
        if (code & 0xF0) == BPF_END:
            return "bswap" if cls == BPF_ALU64 else ("be" if code & 0x08 else "le")
        return name + ("64" if cls == BPF_ALU64 else "32") + (" reg" if code & 0x08 else " imm")
    name = _JMP_NAMES.get(code & 0xF0, f"jmp{code & 0xF0:#x}")
    if code == BPF_JMP32 | BPF_JA:
        return "gotol"  # the 32-bit jump (cpu v4): its offset is in imm
    if (code & 0xF0) in (BPF_CALL, BPF_EXIT, BPF_JA):
        return name + ("32" if cls == BPF_JMP32 else "")
    return name + ("32" if cls == BPF_JMP32 else "") + (" reg" if code & 0x08 else " imm")


def helper_name(func_id: int) -> str:
    """``bpf_map_lookup_elem`` for 1; ``helper#N`` for ids this kernel's headers do not know."""
    from ..abi.uapi import FuncId

    try:
        return "bpf_" + FuncId(func_id).name[len("BPF_FUNC_") :]
    except ValueError:
        return f"helper#{func_id}"


# ---------------------------------------------------------------- decoding
def _trunc(where: int, n: int) -> ParseError:
    return ParseError(f"truncated instruction at byte {where} ({n} bytes left)")


def iter_insns(data: Union[bytes, bytearray, memoryview]) -> Iterator[Tuple[int, Insn]]:
    """(slot index, Insn) for every instruction of ``data``; ld_imm64 takes two slots."""
    mv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    n = len(mv)
    if n % 8:
        raise ParseError(f"instructions are {n} bytes, not a multiple of 8")
    unpack = _S.unpack_from
    i = 0
    while i < n:
        code, regs, off, imm = unpack(mv, i)
        if code == LD_IMM64:
            if i + 16 > n:
                raise _trunc(i, n - i)
            imm2 = unpack(mv, i + 8)[3]
            v = (imm & 0xFFFFFFFF) | ((imm2 & 0xFFFFFFFF) << 32)
            yield i // 8, Insn(code, regs & 0xF, regs >> 4, off, v)
            i += 16
        else:
            yield i // 8, Insn(code, regs & 0xF, regs >> 4, off, imm)
            i += 8


def decode(data: Union[bytes, bytearray, memoryview]) -> List[Insn]:
    """Every instruction of ``data`` (ld_imm64 as one 16-byte Insn)."""
    return [insn for _, insn in iter_insns(data)]


def first_cpu_v4(
    data: Union[bytes, bytearray, memoryview, Sequence[Insn]], classes: Iterable[str] = CPU_V4_CLASSES
) -> Optional[Tuple[int, Insn]]:
    """(slot, instruction) of the first BPF ISA v4 instruction of ``data`` whose
    :attr:`Insn.cpu_v4_class` is one of ``classes`` (any, by default), or None."""
    wanted = frozenset(classes)
    items: Iterable[Tuple[int, Insn]] = iter_insns(data) if isinstance(data, (bytes, bytearray, memoryview)) else _slots(data)
    return next(((slot, i) for slot, i in items if i.cpu_v4_class in wanted), None)


def encode(insns: Iterable[Insn]) -> bytes:
    """The bytes of a sequence of instructions."""
    return b"".join(i.encode() for i in insns)


# ---------------------------------------------------------------- text
def _reg(n: int, w: bool = False) -> str:
    return f"{'w' if w else 'r'}{n}"


def _mem(base: int, off: int) -> str:
    return f"(r{base} + {off})" if off >= 0 else f"(r{base} - {-off})"


def _target(off: int) -> str:
    return f"+{off}" if off >= 0 else str(off)


def format_insn(insn: Insn) -> str:
    """One instruction in llvm-objdump's BPF syntax."""
    code, dst, src, off, imm = insn.code, insn.dst, insn.src, insn.off, insn.imm
    cls = code & 7
    if cls in (BPF_ALU, BPF_ALU64):
        w = cls == BPF_ALU
        op = code & 0xF0
        if op == BPF_NEG:
            return f"{_reg(dst, w)} = -{_reg(dst, w)}"
        if op == BPF_END:
            if cls == BPF_ALU64:
                return f"r{dst} = bswap{imm} r{dst}"
            return f"r{dst} = {'be' if code & BPF_X else 'le'}{imm} r{dst}"
        sym = _ALU_SYMS.get(op)
        if sym is None:
            return f"<unknown alu {code:#04x}>"
        if insn.is_addr_space_cast:
            return f"r{dst} = addr_space_cast(r{src}, {(imm >> 16) & 0xFFFF:#x}, {imm & 0xFFFF:#x})"
        if op in (BPF_MOV, BPF_DIV, BPF_MOD) and off:
            # signed forms (cpu v4): movsx / sdiv / smod
            if op == BPF_MOV:
                return f"{_reg(dst, w)} = (s{off}){_reg(src, w)}"
            sym = "s" + sym
        rhs = _reg(src, w) if code & BPF_X else str(imm)
        return f"{_reg(dst, w)} {sym} {rhs}"
    if cls in (BPF_JMP, BPF_JMP32):
        op = code & 0xF0
        if code == CALL:
            return f"call {imm}"
        if code == (BPF_JMP | BPF_CALL | BPF_X):
            return f"callx r{dst}"
        if code == EXIT:
            return "exit"
        if op == BPF_JA:
            return f"gotol {_target(imm)}" if cls == BPF_JMP32 else f"goto {_target(off)}"
        sym = _JMP_SYMS.get(op)
        if sym is None:
            return f"<unknown jmp {code:#04x}>"
        w = cls == BPF_JMP32
        rhs = _reg(src, w) if code & BPF_X else str(imm)
        return f"if {_reg(dst, w)} {sym} {rhs} goto {_target(off)}"
    sz = code & 0x18
    mode = code & 0xE0
    if code == LD_IMM64:
        v = imm if imm < (1 << 63) else imm - (1 << 64)
        if src:
            return f"ld_pseudo\tr{dst}, {src}, {v}"
        return f"r{dst} = {v} ll"
    if cls == BPF_LD and mode in (BPF_ABS, BPF_IND):
        where = str(imm) if mode == BPF_ABS else f"r{src}" + (f" + {imm}" if imm else "")
        return f"r0 = *({_SIZE_TYPES[sz]} *)skb[{where}]"
    if cls == BPF_LDX:
        types = _SSIZE_TYPES if mode == BPF_MEMSX else _SIZE_TYPES
        return f"r{dst} = *({types[sz]} *){_mem(src, off)}"
    if cls == BPF_ST and mode == BPF_MEM:
        return f"*({_SIZE_TYPES[sz]} *){_mem(dst, off)} = {imm}"
    if cls == BPF_STX and mode == BPF_MEM:
        return f"*({_SIZE_TYPES[sz]} *){_mem(dst, off)} = r{src}"
    if cls == BPF_STX and mode == BPF_ATOMIC and sz in (BPF_W, BPF_DW):
        w = sz == BPF_W
        t = _SIZE_TYPES[sz]
        aop = imm & ~BPF_FETCH
        if imm in _ATOMIC_ALU:  # llvm-objdump names the source r even for 32-bit
            return f"lock *({t} *){_mem(dst, off)} {_ALU_SYMS[imm]} r{src}"
        if imm & BPF_FETCH and aop in _ATOMIC_ALU:
            return f"{_reg(src, w)} = atomic_fetch_{_ATOMIC_ALU[aop]}(({t} *){_mem(dst, off)}, {_reg(src, w)})"
        m = f"r{dst} + {off}" if off >= 0 else f"r{dst} - {-off}"
        if imm == BPF_XCHG:
            return f"{_reg(src, w)} = xchg{'32_32' if w else '_64'}({m}, {_reg(src, w)})"
        if imm == BPF_CMPXCHG:
            return f"{_reg(0, w)} = cmpxchg{'32_32' if w else '_64'}({m}, {_reg(0, w)}, {_reg(src, w)})"
    return f"<unknown {code:#04x}>"


def disasm(
    data: Union[bytes, bytearray, memoryview, Sequence[Insn]],
    *,
    start: int = 0,
    raw: bool = True,
    annotate: bool = False,
) -> str:
    """Text of a whole instruction stream, one line per instruction, as llvm-objdump prints it.

    ``start`` is the slot number of the first instruction; ``raw`` adds the
    instruction bytes; ``annotate`` adds ``; bpf_map_lookup_elem``-style
    comments for helper calls and pseudo ld_imm64 sources (not llvm-objdump's).
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        items: Iterable[Tuple[int, Insn]] = iter_insns(data)
    else:
        items = _slots(data)
    lines = []
    for slot, insn in items:
        text = format_insn(insn)
        if annotate:
            note = _note(insn)
            if note:
                text += f"\t; {note}"
        if raw:
            b = insn.encode()
            lines.append(f"{slot + start:8d}:\t{' '.join(f'{x:02x}' for x in b)}\t{text}")
        else:
            lines.append(f"{slot + start:8d}:\t{text}")
    return "\n".join(lines)


def _slots(insns: Sequence[Insn]) -> Iterator[Tuple[int, Insn]]:
    slot = 0
    for i in insns:
        yield slot, i
        slot += i.slots


_PSEUDO_LD = {
    BPF_PSEUDO_MAP_FD: "map fd",
    BPF_PSEUDO_MAP_VALUE: "map value",
    BPF_PSEUDO_BTF_ID: "btf id",
    BPF_PSEUDO_FUNC: "func",
    BPF_PSEUDO_MAP_IDX: "map idx",
    BPF_PSEUDO_MAP_IDX_VALUE: "map idx value",
}


def _note(insn: Insn) -> Optional[str]:
    if insn.is_helper_call:
        return helper_name(insn.imm)
    if insn.is_pseudo_call:
        return f"subprog call {_target(insn.imm)}"
    if insn.is_kfunc_call:
        return f"kfunc btf id {insn.imm}"
    if insn.is_ldimm64 and insn.src:
        return _PSEUDO_LD.get(insn.src, f"pseudo src {insn.src}")
    return None
