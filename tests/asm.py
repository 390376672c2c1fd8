"""A tiny BPF instruction encoder and BTF builder for hand-made test programs.

Only what the ring/perf buffer tests need; the project's own instruction
module lives elsewhere.  Each function returns raw instruction bytes.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Sequence, Tuple

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)

# classes
_LD, _LDX, _ST, _STX, _ALU, _JMP, _ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
# sizes
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
_MEM, _IMM = 0x60, 0x00
_K, _X = 0x00, 0x08
# alu ops
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, MOV, MOD = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xB0, 0x90
# jmp ops
JA, JEQ, JGT, JGE, JSET, JNE, CALL, EXIT = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x80, 0x90

PSEUDO_MAP_FD = 1
PSEUDO_FUNC = 4
BPF_F_CURRENT_CPU = 0xFFFFFFFF

# helper ids
MAP_LOOKUP_ELEM = 1
PERF_EVENT_OUTPUT = 25
RINGBUF_OUTPUT = 130
RINGBUF_RESERVE = 131
RINGBUF_SUBMIT = 132
RINGBUF_DISCARD = 133
DYNPTR_READ = 201
USER_RINGBUF_DRAIN = 209


def insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, (src << 4) | dst, off, imm)


def mov(dst: int, imm: int) -> bytes:
    return insn(_ALU64 | MOV | _K, dst, imm=imm)


def mov32(dst: int, imm: int) -> bytes:
    """32-bit move: zero-extends (mov32(r, -1) gives 0xffffffff)."""
    return insn(_ALU | MOV | _K, dst, imm=imm)


def movr(dst: int, src: int) -> bytes:
    return insn(_ALU64 | MOV | _X, dst, src)


def alu(op: int, dst: int, imm: int) -> bytes:
    return insn(_ALU64 | op | _K, dst, imm=imm)


def alur(op: int, dst: int, src: int) -> bytes:
    return insn(_ALU64 | op | _X, dst, src)


def ldx(size: int, dst: int, src: int, off: int) -> bytes:
    return insn(_LDX | size | _MEM, dst, src, off)


def stx(size: int, dst: int, off: int, src: int) -> bytes:
    return insn(_STX | size | _MEM, dst, src, off)


def st(size: int, dst: int, off: int, imm: int) -> bytes:
    return insn(_ST | size | _MEM, dst, off=off, imm=imm)


def jmp(op: int, dst: int, imm: int, off: int) -> bytes:
    return insn(_JMP | op | _K, dst, off=off, imm=imm)


def jmpr(op: int, dst: int, src: int, off: int) -> bytes:
    return insn(_JMP | op | _X, dst, src, off)


def ja(off: int) -> bytes:
    return insn(_JMP | JA, off=off)


def call(helper: int) -> bytes:
    return insn(_JMP | CALL, imm=helper)


def exit_() -> bytes:
    return insn(_JMP | EXIT)


def ld_imm64(dst: int, value: int, src: int = 0) -> bytes:
    return insn(_LD | DW | _IMM, dst, src, imm=value & 0xFFFFFFFF if value >= 0 else value) + insn(
        0, imm=(value >> 32) & 0xFFFFFFFF if value >= 0 else -1
    )


def ld_map_fd(dst: int, fd: int) -> bytes:
    return insn(_LD | DW | _IMM, dst, PSEUDO_MAP_FD, imm=fd) + insn(0)


def ld_func(dst: int, rel: int) -> bytes:
    """dst = address of the subprogram ``rel`` instructions after the next one."""
    return insn(_LD | DW | _IMM, dst, PSEUDO_FUNC, imm=rel) + insn(0)


class Asm:
    """Instructions with labels: ``a.j(JEQ, R0, 0, "out")`` ... ``a.label("out")``."""

    def __init__(self) -> None:
        self.chunks: List[bytes] = []
        self.labels: Dict[str, int] = {}
        self.fixups: List[Tuple[int, int, str]] = []  # (chunk index, its pc, target)

    @property
    def pc(self) -> int:
        return sum(len(c) for c in self.chunks) // 8

    def __call__(self, *chunks: bytes) -> "Asm":
        self.chunks.extend(chunks)
        return self

    def label(self, name: str) -> "Asm":
        self.labels[name] = self.pc
        return self

    def j(self, op: int, dst: int, imm: int, target: str) -> "Asm":
        self.fixups.append((len(self.chunks), self.pc, target))
        self.chunks.append(insn(_JMP | op | _K, dst, imm=imm))
        return self

    def jr(self, op: int, dst: int, src: int, target: str) -> "Asm":
        self.fixups.append((len(self.chunks), self.pc, target))
        self.chunks.append(insn(_JMP | op | _X, dst, src))
        return self

    def bytes(self) -> bytes:
        out = list(self.chunks)
        for idx, pc, target in self.fixups:
            op, regs, _, imm = struct.unpack("<BBhi", out[idx])
            out[idx] = struct.pack("<BBhi", op, regs, self.labels[target] - pc - 1, imm)
        return b"".join(out)


def btf_funcs(funcs: Sequence[Tuple[str, bool]]) -> Tuple[bytes, List[int]]:
    """A BTF blob with ``int`` and one FUNC per (name, is_global) over an
    ``int f(int a, int b)`` prototype; returns (blob, FUNC type ids)."""
    strings = bytearray(b"\0")

    def s(name: str) -> int:
        off = len(strings)
        strings.extend(name.encode() + b"\0")
        return off

    types = bytearray()
    # 1: int
    types += struct.pack("<III", s("int"), 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)
    # 2: int (int a, int b)
    types += struct.pack("<III", 0, (13 << 24) | 2, 1) + struct.pack("<II", s("a"), 1) + struct.pack("<II", s("b"), 1)
    ids = []
    for i, (name, is_global) in enumerate(funcs):
        types += struct.pack("<III", s(name), (12 << 24) | (1 if is_global else 0), 2)
        ids.append(3 + i)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + bytes(types) + bytes(strings), ids
