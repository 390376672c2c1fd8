"""Queries (size, alignment, member offsets) checked by clang, and the on-disk index cache."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import List

import pytest

from pybpfload.btf import Spec, _cache, _index, query
from pybpfload.btf import types as T
from pybpfload.btf.cdump import dump_c
from pybpfload.errors import BTFError

from .conftest import FIXTURES, require_tool
from .test_btf_decode import VMLINUX, elf_section


def _has_wide_int(spec: Spec, tid: int, depth: int = 0) -> bool:
    """Whether a 16-byte integer is embedded (by value) in the type."""
    t = spec.resolve(tid)
    if depth > 20:
        return False
    if isinstance(t, T.Int):
        return t.size > 8
    if isinstance(t, T.Array):
        return _has_wide_int(spec, t.type, depth + 1)
    if isinstance(t, T.COMPOSITES):
        return any(_has_wide_int(spec, m.type, depth + 1) for m in t.members)
    return False


def _static_asserts(spec: Spec, ids: List[int]) -> str:
    lines = []
    for tid in ids:
        t = spec.type(tid)
        kw = "struct" if isinstance(t, T.Struct) else "union"
        name = f"{kw} {t.name}"
        align = spec.align(tid)
        # libbpf's btf__align_of caps integer alignment at the pointer size; clang aligns
        # __int128 to 16 bytes.  pybpfload follows libbpf, so expect clang's 16 there.
        if align == 8 and _has_wide_int(spec, tid):
            align = 16
        lines.append(f"_Static_assert(sizeof({name}) == {spec.size(tid)}, \"size {t.name}\");")
        lines.append(f"_Static_assert(_Alignof({name}) == {align}, \"align {t.name}\");")
        for path, f in query.members(spec, tid)[:40]:
            if f.bitfield_size == 0:
                lines.append(f"_Static_assert(__builtin_offsetof({name}, {path}) == {f.offset}, \"{t.name}.{path}\");")
    return "\n".join(lines) + "\n"


def _check_with_clang(tmp_path: Path, spec: Spec, ids: List[int]) -> None:
    clang = require_tool("clang")
    (tmp_path / "types.h").write_text(dump_c(spec))
    src = tmp_path / "check.c"
    src.write_text('#include "types.h"\n' + _static_asserts(spec, ids))
    r = subprocess.run([clang, "-target", "bpf", "-fsyntax-only", str(src)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]


def _named_records(spec: Spec) -> List[int]:
    counts = Counter(t.name for t in spec if isinstance(t, T.COMPOSITES) and t.name)
    return [t.id for t in spec if isinstance(t, T.COMPOSITES) and t.name and counts[t.name] == 1]


def test_layout_of_fixture_types_agrees_with_clang(tmp_path: Path) -> None:
    spec = Spec.from_bytes(elf_section(FIXTURES / "btf_kinds.bpf.o", ".BTF") or b"")
    ids = _named_records(spec)
    assert spec.align(spec.find_id("packed_s")) == 1 and spec.align(spec.find_id("aligned_s")) == 8
    _check_with_clang(tmp_path, spec, ids)


def test_layout_of_vmlinux_types_agrees_with_clang(tmp_path: Path) -> None:
    if not os.path.exists(VMLINUX):
        pytest.skip("no kernel BTF")
    spec = Spec.from_file(VMLINUX)
    ids = _named_records(spec)
    _check_with_clang(tmp_path, spec, ids[:: max(1, len(ids) // 400)] + [spec.find_id("task_struct")])


def test_field_paths() -> None:
    spec = Spec.from_bytes(elf_section(FIXTURES / "btf_kinds.bpf.o", ".BTF") or b"")
    nested = spec.find_id("nested")
    assert query.field(spec, nested, "as_float").offset == 4  # through the anonymous union
    assert query.field(spec, nested, "halves.hi").bit_offset == 48
    assert query.field(spec, nested, "inner.name[3]").offset == 8 + 3
    assert query.field(spec, nested, "matrix[2][1]").offset == 40 + (2 * 4 + 1) * 4
    f = query.field(spec, spec.find_id("bits"), "d")
    assert (f.bit_offset, f.bitfield_size) == (15, 40)
    with pytest.raises(BTFError, match="no member"):
        query.field(spec, nested, "nope")
    with pytest.raises(BTFError, match="not an array"):
        query.field(spec, nested, "kind[1]")
    assert query.type_name(spec, query.field(spec, nested, "callbacks").type) == "int (*[2])(struct nested *, void *)"
    assert spec.describe(nested) == "struct nested (struct id 2, size 136)"


# ------------------------------------------------------------------ the index cache


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("PYBPFLOAD_CACHE_DIR", str(d))
    return d


def _blob() -> bytes:
    return elf_section(FIXTURES / "btf_kinds.bpf.o", ".BTF") or b""


def test_cache_is_written_and_used(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cold = Spec.from_bytes(_blob(), cache=True)
    files = list(cache_dir.iterdir())
    assert len(files) == 1
    monkeypatch.setattr(_index, "walk", lambda words: pytest.fail("walked although cached"))
    warm = Spec.from_bytes(_blob(), cache=True)
    assert list(warm._offsets) == list(cold._offsets)
    assert [t for t in warm] == [t for t in cold]


def test_corrupt_or_foreign_cache_is_ignored(cache_dir: Path) -> None:
    cold = Spec.from_bytes(_blob(), cache=True)
    (path,) = cache_dir.iterdir()
    good = path.read_bytes()
    for bad in (good[:-4] + b"\xff\xff\xff\xff", good[:10], b"", good[:_cache._HEAD.size] + b"\0" * (len(good) - _cache._HEAD.size)):
        path.write_bytes(bad)
        assert list(Spec.from_bytes(_blob(), cache=True)._offsets) == list(cold._offsets)
    # a well-formed entry of other content, renamed to this content's key: the sample check refuses it
    other = bytearray(good)
    payload = memoryview(other)[_cache._HEAD.size :].cast("I")
    payload[1] += 1
    import struct
    import zlib

    struct.pack_into("<I", other, _cache._HEAD.size - 4, zlib.crc32(bytes(other[_cache._HEAD.size :])))
    path.write_bytes(bytes(other))
    assert _cache.load(_cache.content_key(memoryview(_blob())), Spec.from_bytes(_blob(), cache=False)._words) is None


def test_cache_carries_the_name_words(cache_dir: Path) -> None:
    """A warm open has every record's name word from the cache: name lookups need no scan,
    and a name word that does not match its record makes the entry refused."""
    cold = Spec.from_bytes(_blob(), cache=True)
    want = cold._name_words()
    warm = Spec.from_bytes(_blob(), cache=True)
    assert warm._names is not None and warm._names == want
    some = sorted({t.name for t in list(cold)[1:400] if t.name})[:20]
    assert [warm.find_ids(n) for n in some] == [Spec.from_bytes(_blob(), cache=False).find_ids(n) for n in some]
    (path,) = cache_dir.iterdir()
    other = bytearray(path.read_bytes())
    words = memoryview(other)[_cache._HEAD.size :].cast("I")
    words[len(words) // 2] ^= 1  # the first record's name word
    import struct
    import zlib

    struct.pack_into("<I", other, _cache._HEAD.size - 4, zlib.crc32(bytes(other[_cache._HEAD.size :])))
    path.write_bytes(bytes(other))
    assert _cache.load(_cache.content_key(memoryview(_blob())), Spec.from_bytes(_blob(), cache=False)._words) is None


def test_unwritable_or_disabled_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setenv("PYBPFLOAD_CACHE_DIR", str(ro / "sub"))
    if os.geteuid() == 0:  # root writes anywhere: use a path under a file instead
        (tmp_path / "file").write_bytes(b"")
        monkeypatch.setenv("PYBPFLOAD_CACHE_DIR", str(tmp_path / "file" / "sub"))
    assert len(Spec.from_bytes(_blob(), cache=True)) > 1
    monkeypatch.setenv("PYBPFLOAD_CACHE_DIR", "")
    assert _cache.cache_dir() is None
    assert len(Spec.from_bytes(_blob(), cache=True)) > 1


def test_name_lookup_same_before_and_after_the_name_index() -> None:
    """The first lookups scan the type section, later ones the gathered name_off words:
    both give every id of every name (anonymous and duplicate names included)."""
    blob = _blob()
    scanning = Spec.from_bytes(blob)
    scanning._SCANS_BEFORE_INDEX = 10**9  # never gathers
    indexed = Spec.from_bytes(blob)
    indexed._SCANS_BEFORE_INDEX = 0  # gathers at once
    names = sorted({indexed.type(i).name for i in range(1, len(indexed))})
    assert names
    by_walk: dict = {}
    for i in range(1, len(indexed)):
        by_walk.setdefault(indexed.type(i).name, []).append(i)
    for name in names:
        assert scanning.find_ids(name) == indexed.find_ids(name) == (by_walk[name] if name else [])
    assert indexed._names is not None and scanning._names is None
