""".BTF.ext decoding, checked against independent facts of the same object:
ELF symbols (func_info), the C sources (line_info) and the immediates clang
wrote into the instructions it asked to relocate (CO-RE records)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, Tuple

import pytest

from pybpfload.btf import Spec
from pybpfload.btf import query
from pybpfload.btf import types as T
from pybpfload.btf.ext import CoreReloKind, ExtInfo, pack_func_info, pack_line_info, parse_ext
from pybpfload.errors import BTFError

from .conftest import FIXTURES
from .test_btf_decode import btf_fixtures, elf_section

def load(obj: Path) -> Tuple[Spec, ExtInfo]:
    spec = Spec.from_bytes(elf_section(obj, ".BTF") or b"")
    return spec, parse_ext(elf_section(obj, ".BTF.ext") or b"", spec.string)


def _has_infos(obj: Path) -> bool:
    """A .BTF.ext with function and line records (GCC 12's holds only a header)."""
    if elf_section(obj, ".BTF.ext") is None:
        return False
    ext = load(obj)[1]
    return bool(ext.func_info) and bool(ext.line_info)


EXT_FIXTURES = [p for p in btf_fixtures() if _has_infos(p)]


def func_symbols(obj: Path) -> Dict[str, Dict[int, str]]:
    """section name -> {byte offset: function symbol}, via pyelftools."""
    from elftools.elf.elffile import ELFFile

    out: Dict[str, Dict[int, str]] = {}
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        for s in elf.get_section_by_name(".symtab").iter_symbols():
            if s["st_info"]["type"] == "STT_FUNC" and isinstance(s["st_shndx"], int):
                sec = elf.get_section(s["st_shndx"]).name
                out.setdefault(sec, {})[s["st_value"]] = s.name
    return out


@pytest.mark.parametrize("obj", EXT_FIXTURES, ids=lambda p: p.name)
def test_func_info_names_the_functions_at_their_offsets(obj: Path) -> None:
    spec, ext = load(obj)
    syms = func_symbols(obj)
    assert ext.func_info, "every fixture has at least one program"
    for sec, recs in ext.func_info.items():
        for r in recs:
            func = spec.type(r.type_id)
            assert isinstance(func, T.Func)
            assert syms[sec][r.insn_off] == func.name
        assert len(recs) == len(syms[sec])


@pytest.mark.parametrize("obj", EXT_FIXTURES, ids=lambda p: p.name)
def test_line_info_quotes_the_source(obj: Path) -> None:
    _, ext = load(obj)
    checked = 0
    for sec, recs in ext.line_info.items():
        offsets = [r.insn_off for r in recs]
        assert offsets == sorted(offsets), f"{sec}: line info out of order"
        for r in recs:
            if not r.line_num:
                continue
            src = Path(r.file_name)
            if not src.is_absolute():
                src = FIXTURES / "src" / src.name
            if not src.exists():
                src = FIXTURES / "src" / src.name
            lines = src.read_text().splitlines()
            assert lines[r.line_num - 1] == r.line, f"{sec} insn {r.insn}"
            checked += 1
    assert checked


def _insn_imm(obj: Path, sec: str, insn_off: int) -> int:
    code = elf_section(obj, sec) or b""
    opcode = code[insn_off]
    imm = struct.unpack_from("<i", code, insn_off + 4)[0]
    if opcode == 0x18:  # ld_imm64: the high half is in the next instruction
        imm = (imm & 0xFFFFFFFF) | (struct.unpack_from("<i", code, insn_off + 12)[0] << 32)
    return imm


def _access(spec: Spec, type_id: int, spec_str: Tuple[int, ...]) -> query.Field:
    """Follow a CO-RE access spec ("0:2:1") through the local BTF."""
    t = spec.resolve(type_id)
    bit, cur = spec_str[0] * 8 * spec.size(type_id), type_id
    fld = query.Field(type_id, bit, 0)
    for idx in spec_str[1:]:
        t = spec.resolve(cur)
        if isinstance(t, T.Array):
            bit += idx * 8 * spec.size(t.type)
            cur = t.type
            fld = query.Field(cur, bit, 0)
        else:
            assert isinstance(t, T.COMPOSITES)
            m = t.members[idx]
            bit += m.bit_offset
            cur = m.type
            fld = query.Field(cur, bit, m.bitfield_size)
    return fld


def test_core_relos_agree_with_clangs_immediates() -> None:
    obj = FIXTURES / "btf_core.bpf.o"
    spec, ext = load(obj)
    (sec,) = ext.core_relos
    kinds = set()
    for r in ext.core_relos[sec]:
        kinds.add(r.kind)
        imm = _insn_imm(obj, sec, r.insn_off)
        acc = r.access_spec
        if r.kind == CoreReloKind.FIELD_BYTE_OFFSET:
            assert imm == _access(spec, r.type_id, acc).offset
        elif r.kind == CoreReloKind.FIELD_BYTE_SIZE:
            assert imm == spec.size(_access(spec, r.type_id, acc).type)
        elif r.kind in (CoreReloKind.FIELD_EXISTS, CoreReloKind.TYPE_EXISTS, CoreReloKind.ENUMVAL_EXISTS):
            assert imm == 1
        elif r.kind == CoreReloKind.ENUMVAL_VALUE:
            enum = spec.resolve(r.type_id)
            assert isinstance(enum, T.ENUMS) and imm == enum.values[acc[0]].value
    # the fixture asks for one relocation of each of these kinds
    assert kinds == {
        CoreReloKind.FIELD_BYTE_OFFSET,
        CoreReloKind.FIELD_BYTE_SIZE,
        CoreReloKind.FIELD_EXISTS,
        CoreReloKind.TYPE_EXISTS,
        CoreReloKind.ENUMVAL_EXISTS,
        CoreReloKind.ENUMVAL_VALUE,
    }


def test_pack_for_the_kernel() -> None:
    spec, ext = load(FIXTURES / "btf_kinds.bpf.o")
    recs = ext.func_info["xdp"]
    packed = pack_func_info(recs, insn_base=10)
    assert len(packed) == 8 * len(recs)
    assert struct.unpack_from("<II", packed) == (recs[0].insn + 10, recs[0].type_id)
    lines = ext.line_info["xdp"]
    assert len(pack_line_info(lines)) == 16 * len(lines)


# ------------------------------------------------------------------ malformed


def _ext(func: bytes = b"", line: bytes = b"", core: bytes = b"", hdr_len: int = 32) -> bytes:
    body = func + line + core
    hdr = struct.pack("<HBBIIIIIII", 0xEB9F, 1, 0, hdr_len, 0, len(func), len(func), len(line), len(func) + len(line), len(core))
    return hdr[:hdr_len] + body


def _strings(off: int) -> str:
    table = {0: "", 1: "xdp", 5: "0:1"}
    if off not in table:
        raise BTFError(f"BTF string offset {off} out of range")
    return table[off]


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"\x9f\xeb", "too short"),
        (_ext()[:4] + b"\xff" * 20, "magic|header"),
        (struct.pack("<HBBI", 0xEB9F, 1, 0, 64) + b"\0" * 24, "header length"),
        (_ext(func=struct.pack("<I", 4)), "record size"),
        (_ext(func=struct.pack("<III", 8, 1, 0)), "no records"),
        (_ext(func=struct.pack("<III", 8, 1, 0xFFFFFFFF)), "do not fit"),
        (_ext(func=struct.pack("<IIII", 8, 1, 1, 0)), "do not fit"),
        (_ext(func=struct.pack("<IIIII", 8, 999, 1, 0, 1)), "out of range"),
        (_ext(func=struct.pack("<IIIII", 8, 0, 1, 0, 1)), "no name"),
        (_ext(core=struct.pack("<IIIIIII", 16, 1, 1, 0, 1, 5, 99)), "CO-RE relocation kind"),
        (_ext(func=struct.pack("<II", 8, 1)), "truncated"),
    ],
)
def test_malformed_ext_raises_btf_error(blob: bytes, message: str) -> None:
    with pytest.raises(BTFError, match=message):
        parse_ext(blob, _strings)


def test_huge_counts_do_not_allocate() -> None:
    blob = _ext(line=struct.pack("<III", 16, 1, 0x7FFFFFFF) + b"\0" * 16)
    with pytest.raises(BTFError):
        parse_ext(blob, _strings)


def test_well_formed_synthetic_ext() -> None:
    func = struct.pack("<IIIII", 8, 1, 1, 16, 3)
    core = struct.pack("<IIIIIII", 16, 1, 1, 8, 2, 5, int(CoreReloKind.FIELD_BYTE_OFFSET))
    ext = parse_ext(_ext(func=func, core=core), _strings)
    assert ext.func_info["xdp"][0].insn == 2 and ext.func_info["xdp"][0].type_id == 3
    r = ext.core_relos["xdp"][0]
    assert (r.insn, r.type_id, r.access, r.access_spec, r.kind) == (1, 2, "0:1", (0, 1), CoreReloKind.FIELD_BYTE_OFFSET)
    old = _ext(func=func, hdr_len=24)  # a header without the CO-RE fields
    assert parse_ext(old, _strings).core_relos == {}


