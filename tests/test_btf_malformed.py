"""Malformed BTF raises BTFError — fast, without other exceptions or big allocations."""

from __future__ import annotations

import contextlib
import random
import resource
import struct
import time
from typing import Iterator, List

import pytest

from pybpfload.btf import Spec
from pybpfload.btf import query
from pybpfload.btf import types as T
from pybpfload.btf.cdump import dump_c
from pybpfload.btf.encode import Builder
from pybpfload.errors import BTFError

from .conftest import FIXTURES
from .test_btf_decode import elf_section

HDR = struct.Struct("<HBBIIIII")


def blob(types: bytes, strings: bytes = b"\0int\0", **hdr: int) -> bytes:
    fields = dict(magic=0xEB9F, version=1, flags=0, hdr_len=24, type_off=0, type_len=len(types), str_off=len(types), str_len=len(strings))
    fields.update(hdr)
    return HDR.pack(*fields.values()) + types + strings


def rec(name: int, kind: int, vlen: int, size_type: int, *extra: int, kflag: int = 0) -> bytes:
    return struct.pack("<III", name, (kflag << 31) | (kind << 24) | vlen, size_type) + struct.pack(f"<{len(extra)}I", *extra)


INT = rec(1, 1, 0, 4, 32)


def exercise(spec: Spec) -> None:
    """Everything a caller may do with a Spec: decode, query, dump, encode."""
    for tid in range(1, len(spec)):
        spec.type(tid)
        spec.describe(tid)
        for f in (spec.resolve, spec.size, spec.align):
            try:
                f(tid)
            except BTFError:
                pass
    dump_c(spec)
    Builder.from_spec(spec).encode()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x9f\xeb\x01", "too short"),
        (blob(INT, magic=0x1234), "magic"),
        (blob(INT, magic=0x9FEB), "big-endian"),
        (blob(INT, version=2), "version"),
        (blob(INT, hdr_len=8), "header length"),
        (blob(INT, hdr_len=1 << 30), "header length"),
        (blob(INT, type_off=2), "type section"),
        (blob(INT, type_len=1 << 31), "type section"),
        (blob(INT, type_len=15), "type section"),
        (blob(INT, str_len=1 << 30), "string section"),
        (blob(INT, str_off=4), "overlap"),
        (blob(INT, strings=b"x\0"), "empty string"),
        (blob(INT, strings=b"\0int"), "NUL-terminated"),
        (blob(INT, strings=b""), "string section"),
        (blob(INT[:-4]), "truncated"),
        (blob(rec(0, 4, 0xFFFF, 8)), "truncated"),  # huge vlen, no members
        (blob(rec(0, 19, 0xFFFF, 8) + rec(0, 6, 3, 4)), "truncated"),
        (blob(rec(1, 25, 0, 4)), "unknown BTF kind"),
        (blob(rec(1, 0, 0, 4)), "unknown BTF kind"),
        (blob(INT + b"\0\0\0"), "type section"),
    ],
)
def test_bad_blobs(data: bytes, message: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(BTFError, match=message):
        Spec.from_bytes(data, cache=False)
    assert time.perf_counter() - t0 < 0.5


def test_string_offset_out_of_range() -> None:
    spec = Spec.from_bytes(blob(rec(999, 1, 0, 4, 32) + rec(0, 4, 1, 4, 1000, 1, 0)), cache=False)
    assert len(spec) == 3
    with pytest.raises(BTFError, match="string offset"):
        spec.type(1)
    with pytest.raises(BTFError, match="string offset"):
        spec.type(2)  # a member name
    with pytest.raises(BTFError):
        spec.type(3)
    with pytest.raises(BTFError):
        spec.type(-1)


LOOPS: List[bytes] = [
    rec(1, 8, 0, 1),  # typedef int -> itself
    rec(0, 10, 0, 2) + rec(0, 9, 0, 1),  # const -> volatile -> const
    rec(0, 3, 0, 0, 1, 1, 4),  # array of itself
    rec(1, 8, 0, 2) + rec(0, 2, 0, 1),  # typedef -> ptr -> typedef
    rec(1, 4, 1, 4, 1, 1, 0),  # struct containing itself
    rec(0, 13, 1, 1, 0, 1),  # func proto returning itself and taking itself
]


@pytest.mark.parametrize("types", LOOPS)
def test_reference_loops_end_in_btf_error(types: bytes) -> None:
    spec = Spec.from_bytes(blob(types), cache=False)
    t0 = time.perf_counter()
    for f in (spec.resolve, spec.size, spec.align, lambda i: query.skip_qualifiers(spec, i)):
        try:
            f(1)
        except BTFError:
            pass
    spec.describe(1)  # never raises: it is for error messages
    try:
        dump_c(spec)
    except BTFError:
        pass
    assert time.perf_counter() - t0 < 2


def test_dangling_type_ids() -> None:
    spec = Spec.from_bytes(blob(rec(0, 2, 0, 77) + rec(1, 8, 0, 77)), cache=False)
    with pytest.raises(BTFError, match="77"):
        spec.type(spec.type(1).type)  # type: ignore[attr-defined]
    with pytest.raises(BTFError, match="77"):
        spec.resolve(2)
    assert spec.size(1) == 8  # a pointer's size does not need its target
    assert spec.describe(2).startswith("int") or "typedef" in spec.describe(2)


def _mutations(data: bytes, n: int, seed: int) -> List[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(b))
            b[pos] = rng.choice((0, 0xFF, rng.randrange(256), b[pos] ^ (1 << rng.randrange(8))))
        if rng.random() < 0.2:
            b = b[: rng.randrange(len(b))]
        out.append(bytes(b))
    return out


@contextlib.contextmanager
def memory_limit(extra: int = 1 << 30) -> Iterator[None]:
    """Cap the address space at its current size plus ``extra``: a wild allocation is a MemoryError."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    limit = used + extra if hard == resource.RLIM_INFINITY else min(hard, used + extra)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("fixture", ["btf_kinds.bpf.o", "btf_core.bpf.o"])
def test_random_corruption_only_raises_btf_error(fixture: str) -> None:
    data = elf_section(FIXTURES / fixture, ".BTF") or b""
    assert data
    outcomes = {"ok": 0, "BTFError": 0}
    t0 = time.perf_counter()
    with memory_limit():
        for mutated in _mutations(data, 300, seed=4):
            try:
                exercise(Spec.from_bytes(mutated, cache=False))
                outcomes["ok"] += 1
            except BTFError:
                outcomes["BTFError"] += 1
    assert outcomes["BTFError"] > 0 and outcomes["ok"] > 0
    assert time.perf_counter() - t0 < 60


def test_header_fields_fuzzed() -> None:
    data = elf_section(FIXTURES / "btf_kinds.bpf.o", ".BTF") or b""
    rng = random.Random(7)
    rejected = 0
    with memory_limit():
        for _ in range(500):
            b = bytearray(data)
            off = rng.randrange(4, 24, 4)
            struct.pack_into("<I", b, off, rng.choice((0, 1, 3, 0xFFFFFFFF, 0x80000000, rng.randrange(1 << 32), len(data))))
            try:
                exercise(Spec.from_bytes(bytes(b), cache=False))
            except BTFError:
                rejected += 1
    assert rejected > 100




def test_builder_rejects_unencodable_values() -> None:
    b = Builder()
    i = b.add(T.Int(0, "int", 4, T.INT_SIGNED, 0, 32))
    b.add(T.Struct(0, "s", 4, (T.Member("bf", i, 1 << 25, 3),)))
    with pytest.raises(BTFError, match="bitfield"):
        b.encode()
    b = Builder()
    b.add(T.Int(0, "bad", 4, 0, 0, 200))
    with pytest.raises(BTFError, match="INT"):
        b.encode()
