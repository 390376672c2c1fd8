"""The CO-RE engine without the kernel: names, specs, ambiguity, patching, and the offline checker.

Expectations come from the fixtures' sources (core_*.bpf.c): which fields,
types and enumerators each target layout has.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfload.reloc import co_re as core
from pybpfload.btf import Spec
from pybpfload.btf import relo_core as C
from pybpfload.btf import types as T
from pybpfload.btf.encode import Builder
from pybpfload.btf.ext import CoreRelo, CoreReloKind, parse_ext
from pybpfload.btf.query import field
from pybpfload.cli.corecheck import check
from pybpfload.errors import RelocationError
from pybpfload.object import Object

from .conftest import FIXTURES

A, B = FIXTURES / "core_target_a.bpf.o", FIXTURES / "core_target_b.bpf.o"
K = CoreReloKind


@pytest.mark.parametrize(
    "name, essential",
    [("task_struct", "task_struct"), ("task_struct___old", "task_struct"), ("a___b___c", "a___b"),
     ("x____y", "x____y"), ("_x___y", "_x"), ("x___", "x___"), ("___x", "___x"), ("", "")],
)
def test_essential_names_as_libbpf(name: str, essential: str) -> None:
    assert C.essential_name(name) == essential


def _relocate(obj_name: str, target: Path) -> core.ObjectRelocation:
    with Object.open(FIXTURES / obj_name) as obj:
        assert obj.btf is not None and obj.model.btf_ext_raw is not None
        ext = parse_ext(obj.model.btf_ext_raw, obj.btf.string)
        return core.relocate(obj.model, obj.btf, ext, core.file_targets(target))


def test_field_offsets_agree_with_the_target_layout() -> None:
    """Every resolved FIELD_BYTE_OFFSET of a non-bitfield equals the offset of the same path in the target BTF."""
    target = core.load_btf_file(A)
    sid = target.find_id("core_s", T.Kind.STRUCT)
    checked = 0
    for r in _relocate("core_fields.bpf.o", A).records:
        res = r.result
        if r.relo.kind != K.FIELD_BYTE_OFFSET or res is None or res.target is None or res.local is None:
            continue
        if res.local.btf.name_of(res.local.root_type_id) != "core_s" or "bf_" in res.local.format():
            continue
        path = res.local.c_access().lstrip(".")
        assert res.new_val == field(target, sid, path).offset, path
        checked += 1
    assert checked >= 10


def test_missing_fields_flavours_and_enumerators_per_target() -> None:
    def by_access(rel: core.ObjectRelocation) -> dict:
        return {(r.function, r.local_access(), r.relo.kind): r for r in rel.records}

    a, b = by_access(_relocate("core_fields.bpf.o", A)), by_access(_relocate("core_fields.bpf.o", B))
    gone = ("core_consts", "<field_exists> [8] struct core_s.gone (0:11 @ offset 80)", K.FIELD_EXISTS)
    assert a[gone].result.new_val == 1 and b[gone].result.new_val == 0
    # the guarded offset read is poisoned on B only
    off = [k for k in b if k[0] == "core_consts" and "core_s.gone" in k[1] and k[2] == K.FIELD_BYTE_OFFSET][0]
    assert b[off].poisoned and not a[off].poisoned and a[off].result.new_val == 132
    # flavours: ___old finds its field on B, ___new on A
    old = [r for k, r in a.items() if "core_flav___old.old_name" in k[1]][0]
    assert old.result.new_val == 0 and [r for k, r in b.items() if "core_flav___old.old_name" in k[1]][0].result.new_val == 1
    # a signed field that grew is poisoned for a direct load (A: short -> int)
    narrow = [r for k, r in a.items() if "core_s.narrow" in k[1]][0]
    assert narrow.poisoned and narrow.result.fail_memsz_adjust
    # an unsigned one that grew widens the load: u16 -> u32 on A, u8 on B
    for rel, size in ((a, 0x00), (b, 0x10)):
        rec = [r for k, r in rel.items() if k[0] == "core_reads" and "core_s.b (" in k[1] and r.result.orig_sz == 2]
        assert rec and rec[0].result.new_sz == {0x00: 4, 0x10: 1}[size]


def test_type_matches_is_stricter_than_type_exists() -> None:
    for target, matches in ((A, {"core_tm___tm": 1, "core_tm_bad___tm": 0, "core_u___tm": 1}),
                            (B, {"core_tm___tm": 0, "core_tm_bad___tm": 0, "core_u___tm": 1})):
        got = {}
        for r in _relocate("core_types_matches.bpf.o", target).records:
            if r.relo.kind == K.TYPE_MATCHES:
                got[r.result.local.btf.name_of(r.relo.type_id)] = r.result.new_val
        assert got == matches
        exists = {r.result.local.btf.name_of(r.relo.type_id): r.result.new_val
                  for r in _relocate("core_types.bpf.o", target).records if r.relo.kind == K.TYPE_EXISTS}
        assert all(exists[n] == 1 for n in matches)


def _two_flavour_target(second_offset: int) -> Spec:
    b = Builder()
    i = b.add(T.Int(0, "int", 4, T.INT_SIGNED, 0, 32))
    b.add(T.Struct(0, "core_s", 8, (T.Member("pad", i, 0, 0), T.Member("a", i, 32, 0))))
    b.add(T.Struct(0, "core_s___v2", 8, (T.Member("a", i, second_offset, 0), T.Member("pad", i, 32, 0))))
    return Spec.from_bytes(b.encode())


def _local_a() -> tuple:
    b = Builder()
    i = b.add(T.Int(0, "int", 4, T.INT_SIGNED, 0, 32))
    s = b.add(T.Struct(0, "core_s", 4, (T.Member("a", i, 0, 0),)))
    spec = Spec.from_bytes(b.encode())
    return spec, s, CoreRelo(0, s, spec.string_offset("0:0") or 0, K.FIELD_BYTE_OFFSET, "0:0")


def test_candidates_that_disagree_are_an_error_naming_them() -> None:
    local, sid, relo = _local_a()
    target = _two_flavour_target(0)
    cands = C.Candidates(("t.btf", target)).find(local, sid)
    assert [target.name_of(c.id) for c in cands] == ["core_s", "core_s___v2"]
    with pytest.raises(RelocationError) as ei:
        C.calc_relo_insn(relo, local, list(cands), "p")
    assert "ambiguity" in str(ei.value) and "core_s___v2" in str(ei.value)


def test_candidates_that_agree_are_kept_and_pruned() -> None:
    local, sid, relo = _local_a()
    target = _two_flavour_target(32)
    cands = list(C.Candidates(("t.btf", target)).find(local, sid))
    res = C.calc_relo_insn(relo, local, cands, "p")
    assert (res.orig_val, res.new_val) == (0, 4) and len(cands) == 2


def _insn(code: int, regs: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, regs, off, imm)


def test_patching_instructions() -> None:
    relo = CoreRelo(0, 1, 0, K.FIELD_BYTE_OFFSET, "0:1")
    # ALU64 mov imm
    buf = bytearray(_insn(0xB7, 1, 0, 4))
    C.patch_insn(buf, 0, relo, C.CoreResult(relo.kind, 4, 12), "p")
    assert struct.unpack("<BBhi", buf)[3] == 12
    # LDX W -> DW when an unsigned field (or pointer) grows
    buf = bytearray(_insn(0x61, 0x21, 4, 0))
    C.patch_insn(buf, 0, relo, C.CoreResult(relo.kind, 4, 16, orig_sz=4, new_sz=8), "p")
    assert struct.unpack("<BBhi", buf)[:3] == (0x79, 0x21, 16)
    # a value that is not what the local BTF says is refused
    with pytest.raises(RelocationError, match="unexpected"):
        C.patch_insn(bytearray(_insn(0x61, 0x21, 8, 0)), 0, relo, C.CoreResult(relo.kind, 4, 16), "p")
    # LD_IMM64: 64-bit values, and poison of both halves
    buf = bytearray(_insn(0x18, 1, 0, 2) + _insn(0))
    C.patch_insn(buf, 0, relo, C.CoreResult(K.ENUMVAL_VALUE, 2, 1 << 38), "p")
    assert struct.unpack("<ii", buf[4:8] + buf[12:16]) == (0, 1 << 6)
    C.patch_insn(buf, 0, relo, C.CoreResult(K.ENUMVAL_VALUE, 2, 0, poison=True), "p")
    assert struct.unpack("<BBhi", buf[:8]) == struct.unpack("<BBhi", buf[8:]) == (0x85, 0, 0, C.POISON_IMM)
    # offsets that do not fit
    with pytest.raises(RelocationError, match="too big"):
        C.patch_insn(bytearray(_insn(0x61, 0x21, 4, 0)), 0, relo, C.CoreResult(relo.kind, 4, 40000), "p")


@pytest.mark.parametrize("access", ["", ":0", "0:x", "0:-1", "0:99"])
def test_malformed_access_strings_are_relocation_errors(access: str) -> None:
    local, sid, _ = _local_a()
    with pytest.raises(RelocationError):
        C.parse_spec(local, CoreRelo(0, sid, 0, K.FIELD_BYTE_OFFSET, access))


def test_anonymous_root_types_are_refused() -> None:
    b = Builder()
    i = b.add(T.Int(0, "int", 4, T.INT_SIGNED, 0, 32))
    s = b.add(T.Struct(0, "", 4, (T.Member("a", i, 0, 0),)))
    local = Spec.from_bytes(b.encode())
    with pytest.raises(RelocationError, match="anonymous"):
        C.calc_relo_insn(CoreRelo(0, s, 0, K.FIELD_BYTE_OFFSET, "0:0"), local, [], "p")


# ---------------------------------------------------------------- the offline checker
def test_check_reports_each_relocation_on_each_target() -> None:
    rep = check(FIXTURES / "core_fields.bpf.o", [A, B])
    assert not rep.portable
    by = {(r.program, r.local): r for r in rep.relocations}
    gone_off = by[("core_consts", "<byte_off> [8] struct core_s.gone (0:11 @ offset 80)")]
    assert [t.status for t in gone_off.results] == ["ok", "poisoned"]
    assert gone_off.results[0].value == 132 and "not found" in gone_off.results[1].detail
    exists = by[("core_consts", "<field_exists> [8] struct core_s.gone (0:11 @ offset 80)")]
    assert [(t.status, t.value) for t in exists.results] == [("ok", 1), ("missing", 0)]
    # only the two targets' differences make it non-portable: A alone resolves core_consts fully but not narrow
    ok_on_a = [r for r in rep.relocations if r.results[0].status != "ok"]
    assert {r.local.split(" (")[0] for r in ok_on_a} == {
        "<field_exists> [22] struct core_flav___old.old_name", "<byte_off> [8] struct core_s.narrow"}


def test_check_of_a_portable_object_and_the_command_line(tmp_path: Path) -> None:
    rep = check(FIXTURES / "core_types.bpf.o", [A])
    assert not rep.portable  # core_missing, CORE_E_GONE
    cmd = [sys.executable, "-m", "pybpfload.cli.corecheck", str(FIXTURES / "core_types.bpf.o"), "--btf", str(A), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data["portable"] is False and len(data["relocations"]) == len(rep.relocations)
    statuses = {(r["local"], r["results"][0]["status"]) for r in data["relocations"]}
    assert ("<type_exists> [9] struct core_missing", "missing") in statuses
    assert ("<enumval_value> [16] enum core_e::CORE_E_GONE = 3", "poisoned") in statuses
    # an object whose relocations all resolve exits 0
    out = subprocess.run([sys.executable, "-m", "pybpfload.cli.corecheck", str(FIXTURES / "btf_core.bpf.o"),
                          "--btf", str(FIXTURES / "btf_core.bpf.o")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    assert "portable: every relocation resolves" in out.stdout
    bad = tmp_path / "bad.btf"
    bad.write_bytes(b"nonsense")
    out = subprocess.run([sys.executable, "-m", "pybpfload.cli.corecheck", str(FIXTURES / "core_types.bpf.o"), "--btf", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "cannot check" in out.stdout


def test_explain_log_rewrites_a_reached_poison_like_libbpf() -> None:
    with Object.open(FIXTURES / "core_fields.bpf.o") as obj:
        assert obj.btf is not None and obj.model.btf_ext_raw is not None
        ext = parse_ext(obj.model.btf_ext_raw, obj.btf.string)
        rel = core.relocate(obj.model, obj.btf, ext, core.file_targets(B))
        spec = obj.program_spec("core_unguarded")
        from pybpfload.reloc.linker import link

        linked = link(obj.model, spec, lambda s: rel.insns.get(id(s), s.insns))
    log = "0: R1=ctx()\n2: (85) call unknown#195896080\ninvalid func unknown#195896080\nprocessed 3 insns\n"
    text = core.explain_log(log, linked, rel)
    assert text is not None
    assert "2: <invalid CO-RE relocation>\nfailed to resolve CO-RE relocation <byte_off> [8] struct core_s.gone" in text
    assert "processed 3 insns" in text and "unknown#195896080" not in text
    assert core.explain_log("0: (85) call unknown#195896080\ninvalid func unknown#195896080\n", linked, rel) is None
