"""Static linking of one program: subprograms appended, calls fixed, references kept symbolic.

Pure: ELF model in, instructions out, no syscalls.  libbpf's order is kept
so that the kernel sees the very instructions libbpf would give it (the
program tags then match):

* starting from the entry program, instructions are walked in order; the
  first call (or callback address) into a ``.text`` subprogram that is not
  yet part of this program appends the subprogram and walks it at once,
  depth first (libbpf's bpf_object__reloc_code);
* the call's ``imm`` becomes the distance to the subprogram's copy;
* references to maps, global data and externs are collected with their
  final instruction index, for :func:`patch` to fill in once the kernel
  objects exist;
* func_info and line_info records follow their code into the program.
"""

from __future__ import annotations

import struct
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..abi.record import Record, _set
from ..elf.model import ElfModel, ProgramSpec, Reloc, RelocKind
from ..errors import RelocationError

__all__ = ["LinkedProgram", "link", "patch_ld_imm64", "patch_call", "BPF_PSEUDO_MAP_FD", "BPF_PSEUDO_MAP_VALUE"]

BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_MAP_VALUE = 2
BPF_PSEUDO_BTF_ID = 3
BPF_PSEUDO_FUNC = 4
BPF_PSEUDO_CALL = 1
BPF_PSEUDO_KFUNC_CALL = 2

_CALL = 0x85  # BPF_JMP | BPF_CALL
_LD_IMM64 = 0x18
_INSN = struct.Struct("<BBhi")


class Piece(Record):
    """A function placed in the linked program: its spec and first instruction there."""

    __slots__ = _fields = ("spec", "start")
    spec: ProgramSpec
    start: int

    def __init__(self, spec: ProgramSpec, start: int) -> None:
        _set(self, "spec", spec)
        _set(self, "start", start)


class LinkedProgram(Record):
    """An entry program with its subprograms appended; references still symbolic."""

    __slots__ = _fields = ("name", "insns", "pieces", "refs")
    name: str
    insns: bytes
    pieces: Tuple[Piece, ...]  # the entry program first, then subprograms in append order
    refs: Tuple[Tuple[int, Reloc], ...]  # (instruction index in insns, MAP / DATA / EXTERN_* relocation)

    def __init__(self, name: str, insns: bytes, pieces: Tuple[Piece, ...], refs: Tuple[Tuple[int, Reloc], ...]) -> None:
        _set(self, "name", name)
        _set(self, "insns", insns)
        _set(self, "pieces", pieces)
        _set(self, "refs", refs)

    @property
    def insn_cnt(self) -> int:
        return len(self.insns) // 8


def _text_index(model: ElfModel) -> List[ProgramSpec]:
    subs = [p for p in model.programs if p.sec_idx == model.text_shndx and model.text_shndx]
    return sorted(subs, key=lambda p: p.insn_off)


def _find_sub(subs: Sequence[ProgramSpec], sec_insn: int) -> Optional[ProgramSpec]:
    for p in subs:
        if p.insn_off <= sec_insn < p.insn_off + p.insn_cnt:
            return p
    return None


def link(
    model: ElfModel,
    entry: ProgramSpec,
    insns_of: Optional[Callable[[ProgramSpec], bytes]] = None,
) -> LinkedProgram:
    """Link ``entry`` with the .text subprograms it reaches.

    ``insns_of`` gives a function's instructions (after CO-RE relocation,
    say); by default those of the ELF file.
    """
    get = insns_of or (lambda p: p.insns)
    subs = _text_index(model)
    out = bytearray(get(entry))
    pieces: List[Piece] = [Piece(entry, 0)]
    placed: Dict[int, int] = {}  # id(spec) -> start
    refs: List[Tuple[int, Reloc]] = []

    def walk(prog: ProgramSpec, base: int) -> None:
        relocs = {r.insn_idx: r for r in prog.relocs}
        n = prog.insn_cnt
        i = 0
        while i < n:
            pos = (base + i) * 8
            code, regs, off, imm = _INSN.unpack_from(out, pos)
            src = regs >> 4
            r = relocs.get(i)
            slots = 2 if code == _LD_IMM64 else 1
            if r is not None and r.kind in (RelocKind.MAP, RelocKind.DATA, RelocKind.EXTERN_LD64, RelocKind.EXTERN_CALL):
                refs.append((base + i, r))
            elif (r is not None and r.kind in (RelocKind.CALL, RelocKind.SUBPROG_ADDR)) or (
                r is None and code == _CALL and src == BPF_PSEUDO_CALL
            ):
                is_addr = r is not None and r.kind is RelocKind.SUBPROG_ADDR
                if r is None:
                    # a call without relocation stays within the caller's section (.text)
                    if prog.sec_idx != model.text_shndx:
                        raise RelocationError("call without relocation outside .text", program=entry.name, insn=base + i)
                    target = prog.insn_off + i + imm + 1
                elif is_addr:
                    target = (r.sym_off + imm) // 8
                else:
                    target = r.sym_off // 8 + imm + 1
                sub = _find_sub(subs, target)
                if sub is None:
                    raise RelocationError(
                        f"no .text subprogram at instruction {target} (called from {prog.name!r})",
                        program=entry.name,
                        insn=base + i,
                    )
                start = placed.get(id(sub))
                if start is None:
                    start = len(out) // 8
                    placed[id(sub)] = start
                    out.extend(get(sub))
                    pieces.append(Piece(sub, start))
                    walk(sub, start)
                new_imm = start + (target - sub.insn_off) - (base + i) - 1
                if is_addr:
                    regs = (BPF_PSEUDO_FUNC << 4) | (regs & 0x0F)
                _INSN.pack_into(out, pos, code, regs, off, new_imm)
            i += slots

    placed[id(entry)] = 0
    walk(entry, 0)
    return LinkedProgram(entry.name, bytes(out), tuple(pieces), tuple(refs))


def patch_ld_imm64(insns: bytearray, idx: int, src: int, imm: int, imm2: Optional[int] = None) -> None:
    """Set an ld_imm64's src_reg and immediates (imm2: the second slot's imm; None keeps it)."""
    pos = idx * 8
    code, regs, off, _ = _INSN.unpack_from(insns, pos)
    if code != _LD_IMM64:
        raise RelocationError(f"instruction #{idx} is not ld_imm64 (code {code:#04x})")
    _INSN.pack_into(insns, pos, code, (src << 4) | (regs & 0x0F), off, _s32(imm))
    if imm2 is not None:
        c2, r2, o2, _ = _INSN.unpack_from(insns, pos + 8)
        _INSN.pack_into(insns, pos + 8, c2, r2, o2, _s32(imm2))


def ld_imm64_imm(insns: Union[bytes, bytearray], idx: int) -> Tuple[int, int]:
    """(imm, imm2) of the ld_imm64 at ``idx``."""
    return _INSN.unpack_from(insns, idx * 8)[3], _INSN.unpack_from(insns, idx * 8 + 8)[3]


def patch_call(insns: bytearray, idx: int, src: int, imm: int, off: int = 0) -> None:
    pos = idx * 8
    code, regs, _, _ = _INSN.unpack_from(insns, pos)
    if code != _CALL:
        raise RelocationError(f"instruction #{idx} is not a call (code {code:#04x})")
    _INSN.pack_into(insns, pos, code, (src << 4) | (regs & 0x0F), off, _s32(imm))


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def ext_info_for(
    linked: LinkedProgram,
    records: Mapping[str, Sequence[object]],
    section_of: Callable[[ProgramSpec], str],
) -> List[Tuple[int, object]]:
    """The .BTF.ext records (func_info / line_info) of every piece, as (instruction index, record).

    Records of a piece are those of its ELF section within the piece's
    range; their index is moved to where the piece sits in the program.
    """
    out: List[Tuple[int, object]] = []
    for piece in linked.pieces:
        spec = piece.spec
        lo, hi = spec.insn_off, spec.insn_off + spec.insn_cnt
        for rec in records.get(section_of(spec), ()):
            insn = rec.insn  # type: ignore[attr-defined]
            if lo <= insn < hi:
                out.append((piece.start + insn - lo, rec))
    return out
