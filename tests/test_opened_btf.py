"""``obj.btf`` is the BTF libbpf's bpf_object__btf shows after open (issue 15):
DATASEC sizes and VAR offsets filled in from the ELF.  clang 14 leaves them 0;
differential against libbpf 1.1 on every fixture with global data."""

from __future__ import annotations

import ctypes
from typing import List, Tuple

import pytest

from pybpfload import Object
from pybpfload.btf import types as T

from .conftest import FIXTURES
from .test_libbpf_api import LIBBPF_1_1_BLIND, LIBBPF_1_1_REFUSES, LIBBPF_REFUSES, oracle

BTF_KIND_DATASEC = 15
WITH_DATA = sorted(
    p.name
    for p in FIXTURES.glob("*.bpf.o")
    if p.name not in LIBBPF_REFUSES | LIBBPF_1_1_BLIND | LIBBPF_1_1_REFUSES and any(s in p.read_bytes() for s in (b".rodata", b".data", b".bss"))
)

Datasecs = List[Tuple[str, int, Tuple[Tuple[int, int, int], ...]]]


def _libbpf_datasecs(path: str) -> Datasecs:
    lib = oracle()
    lib.btf__type_by_id.restype, lib.btf__type_by_id.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_uint32]
    obj = lib.bpf_object__open_file(path.encode(), None)
    assert obj
    try:
        btf = lib.bpf_object__btf(obj)
        out = []
        for tid in range(1, lib.btf__type_cnt(btf)):
            p = lib.btf__type_by_id(btf, tid)
            name_off, info, size = (ctypes.c_uint32 * 3).from_address(p)
            if (info >> 24) & 0x1F != BTF_KIND_DATASEC:
                continue
            vlen = info & 0xFFFF
            raw = (ctypes.c_uint32 * (3 * vlen)).from_address(p + 12)
            secinfo = tuple(tuple(raw[3 * i : 3 * i + 3]) for i in range(vlen))
            out.append((lib.btf__name_by_offset(btf, name_off).decode(), size, secinfo))
        return out
    finally:
        lib.bpf_object__close(obj)


def _ours(path: str) -> Datasecs:
    with Object.open(path) as obj:
        spec = obj.btf
        assert spec is not None
        out = []
        for tid in range(1, len(spec)):
            t = spec.type(tid)
            if isinstance(t, T.Datasec):
                out.append((t.name, t.size, tuple((v.type, v.offset, v.size) for v in t.vars)))
        return out


@pytest.mark.oracle
@pytest.mark.parametrize("name", WITH_DATA)
def test_datasecs_as_libbpf_shows_them(name: str) -> None:
    path = str(FIXTURES / name)
    ours = _ours(path)
    assert ours == _libbpf_datasecs(path)


def test_clang14_rodata_has_real_sizes_and_offsets() -> None:
    """global_data.bpf.o is built by clang 14: the file's DATASECs say size 0, every var at 0."""
    with Object.open(FIXTURES / "global_data.bpf.o") as obj:
        raw, opened = obj._file_btf(), obj.btf
        assert raw is not None and opened is not None
        (rid,) = raw.find_ids(".rodata")
        assert raw.type(rid).size == 0  # what clang 14 wrote
        ro = opened.type(rid)
        elf = {d.name: d for d in obj.model.datasecs}[".rodata"]
        assert ro.size == elf.size > 0
        offsets = sorted(v.offset for v in ro.vars)
        assert offsets == sorted(v.offset for v in elf.vars) and len(set(offsets)) == len(offsets) > 1
