"""Decoding BTF: every type agrees with bpftool's JSON dump (the oracle).

Covers the fixtures' .BTF sections, /sys/kernel/btf/vmlinux, the split BTF
of a kernel module when one is loaded, and a split BTF built here on top
of vmlinux (decoded by bpftool with ``--base-btf``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from pybpfload.btf import Spec, TypeNotFoundError
from pybpfload.btf import types as T
from pybpfload.btf.encode import Builder

from .conftest import FIXTURES, require_tool

VMLINUX = "/sys/kernel/btf/vmlinux"
INT_ENCODING = {0: "(none)", T.INT_SIGNED: "SIGNED", T.INT_CHAR: "CHAR", T.INT_BOOL: "BOOL"}  # bpftool: anything else (GCC 12 marks signed char SIGNED|CHAR) is UNKN
LINKAGE = {0: "static", 1: "global", 2: "extern"}


def elf_section(path: Path, name: str) -> Optional[bytes]:
    """A section's bytes, read with pyelftools (independent of pybpfload's ELF code)."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(name)
        return None if sec is None else sec.data()


def btf_fixtures() -> List[Path]:
    return [p for p in sorted(FIXTURES.glob("*.bpf.o")) if elf_section(p, ".BTF") is not None]


def bpftool_json(path: str, base: Optional[str] = None) -> List[Dict[str, Any]]:
    tool = require_tool("bpftool")
    cmd = [tool, "-j", "btf", "dump", "file", path]
    if base is not None:
        cmd[1:1] = ["--base-btf", base]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["types"]


def as_bpftool(spec: Spec, t: T.Type) -> Dict[str, Any]:
    """Our decoded type in the shape of bpftool's JSON."""
    d: Dict[str, Any] = {"id": t.id, "kind": t.kind.name, "name": t.name or "(anon)"}
    if isinstance(t, T.Int):
        d.update(size=t.size, bits_offset=t.offset, nr_bits=t.bits, encoding=INT_ENCODING.get(t.encoding, "UNKN"))
    elif isinstance(t, (T.Pointer, T.Typedef, T.Volatile, T.Const, T.Restrict, T.TypeTag)):
        d.update(type_id=t.type)
    elif isinstance(t, T.Array):
        d.update(type_id=t.type, index_type_id=t.index_type, nr_elems=t.nelems)
    elif isinstance(t, T.COMPOSITES):
        members = []
        for m in t.members:
            md: Dict[str, Any] = {"name": m.name or "(anon)", "type_id": m.type, "bits_offset": m.bit_offset}
            if m.bitfield_size:
                md["bitfield_size"] = m.bitfield_size
            members.append(md)
        d.update(size=t.size, vlen=len(t.members), members=members)
    elif isinstance(t, T.ENUMS):
        mask = 0xFFFFFFFF if isinstance(t, T.Enum) else 0xFFFFFFFFFFFFFFFF
        vals = [{"name": v.name, "val": v.value & mask} for v in t.values]
        d.update(encoding="SIGNED" if t.signed else "UNSIGNED", size=t.size, vlen=len(t.values), values=vals)
    elif isinstance(t, T.Fwd):
        d.update(fwd_kind="union" if t.is_union else "struct")
    elif isinstance(t, T.Func):
        d.update(type_id=t.type, linkage=LINKAGE.get(t.linkage, "?"))
    elif isinstance(t, T.FuncProto):
        params = [{"name": p.name or "(anon)", "type_id": p.type} for p in t.params]
        d.update(ret_type_id=t.return_type, vlen=len(t.params), params=params)
    elif isinstance(t, T.Var):
        d.update(type_id=t.type, linkage=LINKAGE.get(t.linkage, "?"))
    elif isinstance(t, T.Datasec):
        d.update(size=t.size, vlen=len(t.vars), vars=[{"type_id": v.type, "offset": v.offset, "size": v.size} for v in t.vars])
    elif isinstance(t, T.Float):
        d.update(size=t.size)
    elif isinstance(t, T.DeclTag):
        d.update(type_id=t.type, component_idx=t.component_idx)
    return d


def normalise_oracle(t: Dict[str, Any]) -> Dict[str, Any]:
    """bpftool 7.1 prints 32-bit enum values sign-extended to 64 bits; fold them back."""
    if t["kind"] == "ENUM":
        t = dict(t, values=[dict(v, val=v["val"] & 0xFFFFFFFF) for v in t["values"]])
    return t


def assert_matches_oracle(spec: Spec, oracle: List[Dict[str, Any]]) -> None:
    assert len(spec) == spec.first_id + len(oracle), "type count differs from bpftool"
    for want in oracle:
        got = as_bpftool(spec, spec.type(want["id"]))
        assert got == normalise_oracle(want), f"type {want['id']} differs"


@pytest.mark.parametrize("obj", btf_fixtures(), ids=lambda p: p.name)
def test_fixture_types_match_bpftool(obj: Path) -> None:
    data = elf_section(obj, ".BTF")
    assert data is not None
    spec = Spec.from_bytes(data)
    assert_matches_oracle(spec, bpftool_json(str(obj)))


def test_btf_kinds_fixture_covers_every_kind_clang_emits() -> None:
    spec = Spec.from_bytes(elf_section(FIXTURES / "btf_kinds.bpf.o", ".BTF") or b"")
    kinds = {t.kind for t in spec}
    # clang 14 emits everything except ENUM64 (vmlinux and the raw fixtures cover it)
    assert kinds == set(T.Kind) - {T.Kind.UNKN, T.Kind.ENUM64}
    bits = spec.find("bits", T.Struct)
    assert bits.kflag and [m.bitfield_size for m in bits.members] == [3, 5, 7, 40, 1, 0, 2]


@pytest.fixture(scope="module")
def vmlinux() -> Spec:
    if not os.path.exists(VMLINUX):
        pytest.skip("no kernel BTF")
    return Spec.from_file(VMLINUX)


@pytest.fixture(scope="module")
def vmlinux_oracle() -> List[Dict[str, Any]]:
    if not os.path.exists(VMLINUX):
        pytest.skip("no kernel BTF")
    return bpftool_json(VMLINUX)


def test_vmlinux_types_match_bpftool(vmlinux: Spec, vmlinux_oracle: List[Dict[str, Any]]) -> None:
    assert_matches_oracle(vmlinux, vmlinux_oracle)
    kinds = {t["kind"] for t in vmlinux_oracle}
    assert "ENUM64" in kinds and "DECL_TAG" in kinds


def test_find_by_name_and_kind_matches_oracle(vmlinux: Spec, vmlinux_oracle: List[Dict[str, Any]]) -> None:
    first: Dict[tuple, int] = {}
    every: Dict[str, List[int]] = {}
    for t in vmlinux_oracle:
        if t["name"] != "(anon)":
            first.setdefault((t["name"], t["kind"]), t["id"])
            every.setdefault(t["name"], []).append(t["id"])
    names = ["task_struct", "bpf_map_ops", "u32", "__u64", "pid_type", "bpf_func_id", "sk_buff", "bpf_attr", "int"]
    names += [t["name"] for t in vmlinux_oracle[::9973] if t["name"] != "(anon)"]
    for name in names:
        assert vmlinux.find_ids(name) == every[name], name
        for (n, kind), tid in first.items():
            if n == name:
                assert vmlinux.find_id(name, T.Kind[kind]) == tid
    with pytest.raises(TypeNotFoundError):
        vmlinux.find("no_such_type_anywhere", T.Struct)
    with pytest.raises(KeyError):  # TypeNotFoundError is also a KeyError
        vmlinux.find("task_struct", T.Union)


def test_lookups_do_not_decode_everything(vmlinux: Spec) -> None:
    fresh = Spec.from_file(VMLINUX)
    fresh.find("task_struct", T.Struct)
    assert len(fresh._types) < 10


def test_kernel_module_split_btf() -> None:
    from pybpfload.btf.vmlinux import kernel_modules_with_btf, module_spec

    mods = list(kernel_modules_with_btf())
    if not mods:
        pytest.skip("no kernel module with BTF is loaded")
    name = mods[0]
    spec = module_spec(name)
    assert spec.first_id == len(spec.base)
    assert_matches_oracle(spec, bpftool_json(f"/sys/kernel/btf/{name}", base=VMLINUX))


def test_split_btf_on_vmlinux(tmp_path: Path, vmlinux: Spec) -> None:
    """A split BTF made here; bpftool decodes it against the same base."""
    b = Builder(base=vmlinux)
    task = vmlinux.find_id("task_struct", T.Kind.STRUCT)
    u32 = vmlinux.find_id("u32", T.Kind.TYPEDEF)
    ptr = b.add(T.Pointer(0, "", task))
    b.add(T.Struct(0, "split_only", 16, (T.Member("task", ptr, 0, 0), T.Member("pid", u32, 64, 0), T.Member("task_struct", u32, 96, 0))))
    b.add(T.Typedef(0, "task_ptr_t", ptr))
    path = tmp_path / "split.btf"
    path.write_bytes(b.encode())
    spec = Spec.from_file(str(path), base=vmlinux)
    assert spec.first_id == len(vmlinux) and len(spec) == len(vmlinux) + 3
    assert_matches_oracle(spec, bpftool_json(str(path), base=VMLINUX))
    # names resolve across base and split strings; split ids come after the base's
    assert spec.find_id("split_only") == len(vmlinux) + 1
    assert spec.find_ids("task_struct")[0] == task
    assert spec.name_of(task) == "task_struct"
