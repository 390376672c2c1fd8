"""Arena (issue 21 item 3): BPF_MAP_TYPE_ARENA and ``__arena`` globals (clang 19, ".addr_space.1").

fixtures/arena.bpf.o (clang-19 -mcpu=v3): an arena of 16 pages; six ``__arena``
globals (an int, a struct, an array, a static, the address of the page the
program allocates and how many words it wrote there) and a ``.bss`` counter
beside them; two SEC("syscall") programs run by BPF_PROG_TEST_RUN.

- Pure, everywhere: the model (the arena map's initial value is .addr_space.1,
  the globals' relocations are global data of the arena map), libbpf's open-time
  refusals, where the globals go (libbpf 1.7's rule), the ld_imm64 of every arena
  global as libbpf computes it — the expectation computed here from the ELF
  relocations read with pyelftools and libbpf's formula (``insn[1].imm =
  insn[0].imm + st_value + arena_data_off``, src_reg BPF_PSEUDO_MAP_VALUE, imm
  the arena's fd) — and the mapping and the typed view over a memfd standing in
  for the arena.
- Oracle (a kernel, any): the relocated instructions of current libbpf (trixie's
  1.5 and sid's 1.7, those cached by ``python -m realworld libbpf``) after its load,
  and after both loads on a kernel with arena, program tags and map definitions.
- Kernel: where the loader's probe says the kernel creates arena maps (6.9+: the
  6.12 and 7.x guests) load, run, and the globals both ways through ``obj.arena``,
  the page the program allocated through the mapping, ``map_extra``; elsewhere
  (5.10, 6.1, and builds that refuse arena maps: EPERM on this host) the clear
  NotSupportedError.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import pybpfload as bpf
from pybpfload.abi.uapi import MapType
from pybpfload.elf import parse
from pybpfload.elf.model import ARENA_SEC, PAGE_SIZE, MapKind, MapSpec, RelocKind
from pybpfload.errors import BPFError, ELFError, StateError, SyscallError
from pybpfload.kernel.arena import ArenaMapping
from pybpfload.kernel.maps import Map
from pybpfload.reloc import arena_globals
from pybpfload.reloc.linker import link
from pybpfload.syscall import features

from .conftest import fixture_path
from .kernel_adapt import assert_not_supported

FIXTURE = "arena.bpf.o"
PAGES = 16
BPF_F_MMAPABLE = 1 << 10
BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE = 1, 2
LD_IMM64 = 0x18
INITIAL = {"counter": 7, "origin": {"x": 3, "y": 4, "sum": 0}, "squares": [0, 1, 4, 9, 0, 0, 0, 0], "hidden": 42,
           "page_addr": 0, "page_words": 0}  # fmt: skip


# ---------------------------------------------------------------- the ELF, read independently (pyelftools)
def _elf() -> Dict[str, Any]:
    """.addr_space.1's bytes and index, its symbols, and every relocation of the programs (pyelftools)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    with open(fixture_path(FIXTURE), "rb") as f:
        elf = ELFFile(f)
        sec = elf.get_section_by_name(ARENA_SEC)
        arena_idx = next(i for i, s in enumerate(elf.iter_sections()) if s.name == ARENA_SEC)
        symtab = elf.get_section_by_name(".symtab")
        syms = list(symtab.iter_symbols())
        funcs = {s.name: (s["st_value"] // 8, s["st_size"] // 8) for s in syms if s["st_info"]["type"] == "STT_FUNC"}
        relocs: List[Tuple[int, int]] = []  # (insn index in the section, symbol index)
        for rs in elf.iter_sections():
            if isinstance(rs, RelocationSection) and rs.name == ".relsyscall":
                relocs += [(r["r_offset"] // 8, r["r_info_sym"]) for r in rs.iter_relocations()]
        return {
            "data": sec.data(),
            "index": arena_idx,
            "symbols": {s.name: s["st_value"] for s in syms if s["st_shndx"] == arena_idx and s["st_info"]["type"] == "STT_OBJECT"},
            "funcs": funcs,
            # program -> [(insn index in the program, st_value)] of every relocation against .addr_space.1
            "arena_refs": {
                name: [(i - start, syms[si]["st_value"]) for i, si in relocs
                       if start <= i < start + n and syms[si]["st_shndx"] == arena_idx]
                for name, (start, n) in funcs.items()
            },
        }  # fmt: skip


def _ld(insns: bytes, idx: int) -> Tuple[int, int, int]:
    """(src_reg, imm, next imm) of the ld_imm64 at ``idx``."""
    code, regs, _, imm = struct.unpack_from("<BBhi", insns, idx * 8)
    assert code == LD_IMM64, (idx, code)
    return regs >> 4, imm, struct.unpack_from("<i", insns, idx * 8 + 12)[0]


# ---------------------------------------------------------------- pure: the model
def test_model_arena_map_and_globals() -> None:
    elf = _elf()
    with bpf.Object.open(fixture_path(FIXTURE)) as obj:
        model = obj.model
        assert model.arena_map == "arena"
        ms = obj.map_spec("arena")
        assert ms is not None and ms.kind is MapKind.BTF
        assert (ms.type, ms.key_size, ms.value_size, ms.max_entries, ms.flags) == (MapType.BPF_MAP_TYPE_ARENA, 0, 0, PAGES, BPF_F_MMAPABLE)
        assert ms.initial_value == elf["data"] == obj.maps["arena"].initial_value  # libbpf: bpf_map__initial_value
        # DATASEC .addr_space.1: clang 19 leaves size and global offsets 0; libbpf's fix-ups from the symbols
        ds = model.datasec(ARENA_SEC)
        assert ds is not None and ds.size == len(elf["data"]) == 76
        assert {v.name: v.offset for v in ds.vars} == {**elf["symbols"], "hidden": 56}
        # every relocation against .addr_space.1 is global data of the arena map at the symbol's value
        for name, refs in elf["arena_refs"].items():
            spec = obj.program_spec(name)
            assert spec is not None and refs
            got = [(r.insn_idx, r.sym_off) for r in spec.relocs if r.map_name == "arena" and r.kind is RelocKind.DATA]
            assert got == refs, name
        assert obj.globals[ARENA_SEC] is obj.arena and list(obj.arena) == list(INITIAL)


def test_libbpf_api_initial_value() -> None:
    """bpf_map__initial_value / set_initial_value of an arena: its __arena globals (libbpf's arena_data)."""
    import pybpfload.libbpf as L

    size = ctypes.c_size_t(0)
    with bpf.Object.open(fixture_path(FIXTURE)) as obj:
        m = obj.maps["arena"]
        assert L.bpf_map__initial_value(m, size) == _elf()["data"] and size.value == 76
        assert L.bpf_map__set_initial_value(m, bytes(75)) == -errno.EINVAL  # libbpf: size must be arena_data_sz
        assert L.bpf_map__set_initial_value(m, bytes(range(76))) == 0 and obj.arena.counter == 0x03020100


def test_addr_space_casts_are_not_cpu_v4() -> None:
    """clang's address space casts (64-bit moves with off 1) are arena instructions, named as llvm-objdump names them."""
    from pybpfload.elf import insn as I

    with bpf.Object.open(fixture_path(FIXTURE)) as obj:
        insns = I.decode(obj.programs["arena_run"].insns)
    casts = [i for i in insns if i.is_addr_space_cast]
    assert casts and I.first_cpu_v4(obj.programs["arena_run"].insns) is None
    assert str(casts[0]) == "r2 = addr_space_cast(r1, 0x0, 0x1)" and casts[0].name == "addr_space_cast"


class _Sec:
    """A stand-in for an ELF section: what the arena rule reads of it."""

    def __init__(self, size: int, index: int = 5) -> None:
        self.size, self.index, self.data = size, index, bytes(size)


def _arena_spec(name: str, pages: int) -> MapSpec:
    return MapSpec(name, MapKind.BTF, MapType.BPF_MAP_TYPE_ARENA, 0, 0, pages, BPF_F_MMAPABLE)


def test_open_refusals_as_libbpf() -> None:
    """libbpf's bpf_object__init_user_btf_maps: one arena, needed by globals, large enough for them."""
    with pytest.raises(ELFError, match="only single ARENA map is supported"):
        parse._arena([_arena_spec("a", 1), _arena_spec("b", 1)], None, {})
    with pytest.raises(ELFError, match=r"ARENA map should be explicitly declared in SEC\(\"\.maps\"\)"):
        parse._arena([], _Sec(8), {})
    with pytest.raises(ELFError, match=r"declared ARENA map size \(%d\) is too small" % PAGE_SIZE):
        parse._arena([_arena_spec("a", 1)], _Sec(PAGE_SIZE + 1), {})
    maps, data_maps = [_arena_spec("a", 1)], {}  # type: ignore[var-annotated]
    assert parse._arena(maps, _Sec(PAGE_SIZE), data_maps) == "a"  # a whole page fits in one
    assert maps[0].initial_value == bytes(PAGE_SIZE) and data_maps == {5: "a"}
    maps = [_arena_spec("a", 1)]
    assert parse._arena(maps, None, {}) == "a" and maps[0].initial_value is None  # an arena without globals


def test_where_the_globals_go() -> None:
    """libbpf 1.7: the end of the arena (whole pages) where the kernel takes large ld_imm64 offsets; else 0."""
    assert arena_globals.mmap_size(PAGES) == PAGES * PAGE_SIZE
    assert arena_globals.data_offset(PAGES, 76, full_range_off=True) == (PAGES - 1) * PAGE_SIZE
    assert arena_globals.data_offset(PAGES, PAGE_SIZE + 1, full_range_off=True) == (PAGES - 2) * PAGE_SIZE
    assert arena_globals.data_offset(PAGES, PAGE_SIZE, full_range_off=True) == (PAGES - 1) * PAGE_SIZE
    assert arena_globals.data_offset(PAGES, 76, full_range_off=False) == 0
    assert arena_globals.data_offset(4, 100, full_range_off=True, page_size=1 << 16) == 3 << 16  # 64 KiB pages


FAKE_FDS = {"arena": 100, "arena.bss": 101}


def _relocate(obj: bpf.Object, monkeypatch: pytest.MonkeyPatch, full_range: bool, resolve: bool = False) -> Tuple[Dict[str, bytes], int]:
    """The loader's own relocation steps (its _Load) with stand-in map fds: each program's
    instructions as the kernel would get them, and the arena offset used."""
    from pybpfload.elf.model import ExternKind
    from pybpfload.reloc.extern_values import KsymValue
    from pybpfload.reloc.loader import _Load

    monkeypatch.setattr(Map, "fileno", lambda self: FAKE_FDS[self.name])
    monkeypatch.setattr(features, "has_ldimm64_full_range_off", lambda token=None: full_range)
    ld = _Load(obj)
    if resolve:
        ld._resolve_externs()
    else:  # unresolved weak kfuncs: poisoned calls
        ld.ksyms = {e.name: KsymValue(resolved=False) for e in obj.model.externs if e.kind is ExternKind.KSYM}
    ld._place_arena_globals()
    out = {}
    for name in obj.programs:
        spec = obj.program_spec(name)
        assert spec is not None
        linked = link(obj.model, spec)
        insns = bytearray(linked.insns)
        ld._patch_refs(obj.programs[name], insns, linked)
        out[name] = bytes(insns)
    return out, ld.arena_data_off


@pytest.mark.parametrize("full_range", [False, True], ids=["globals-at-start", "globals-at-end"])
def test_relocated_as_libbpf(monkeypatch: pytest.MonkeyPatch, full_range: bool) -> None:
    elf = _elf()
    want_off = (PAGES - 1) * PAGE_SIZE if full_range else 0
    with bpf.Object.open(fixture_path(FIXTURE)) as obj:
        relocated, off = _relocate(obj, monkeypatch, full_range)
        assert off == want_off and obj.maps["arena"].__dict__["_arena_globals"] == (want_off, 76)
        for name, insns in relocated.items():
            original = obj.programs[name].insns
            for idx, st_value in elf["arena_refs"][name]:
                _, imm, _ = _ld(original, idx)
                # libbpf: RELO_DATA of the arena map, insn[1].imm = insn[0].imm + sym_off + arena_data_off
                assert _ld(insns, idx) == (BPF_PSEUDO_MAP_VALUE, FAKE_FDS["arena"], imm + st_value + want_off), (name, idx)
            # the other references as before: &arena a map fd, .bss global data at its offset
            for r in obj.program_spec(name).relocs:  # type: ignore[union-attr]
                if r.kind is RelocKind.MAP:
                    assert _ld(insns, r.insn_idx)[:2] == (BPF_PSEUDO_MAP_FD, FAKE_FDS["arena"])
                elif r.map_name == "arena.bss":
                    assert _ld(insns, r.insn_idx) == (BPF_PSEUDO_MAP_VALUE, FAKE_FDS["arena.bss"], r.sym_off)
        # clang refers to the static 'hidden' through the section symbol (st_value 0) and imm 0x38
        assert {_ld(obj.programs["arena_run"].insns, i)[1] for i, v in elf["arena_refs"]["arena_run"] if v == 0} == {0, 0x38}


# ---------------------------------------------------------------- pure: the mapping and the typed view
@pytest.fixture
def memfd() -> Iterator[int]:
    """A memfd of 16 pages: an arena's stand-in (a shared file mapping behaves alike)."""
    fd = os.memfd_create("arena-test")
    os.ftruncate(fd, PAGES * PAGE_SIZE)
    try:
        yield fd
    finally:
        os.close(fd)


def test_mapping_reads_writes_and_unmaps(memfd: int) -> None:
    a = ArenaMapping(memfd, PAGES * PAGE_SIZE, name="fake")
    try:
        assert len(a) == a.size == PAGES * PAGE_SIZE and a.address % PAGE_SIZE == 0 and not a.closed
        a[0:4] = b"abcd"
        a[5] = 7
        a.write(PAGE_SIZE, b"xyz")
        assert os.pread(memfd, 6, 0) == b"abcd\x00\x07" and a[5] == 7 and a[0:2] == b"ab"
        assert a.read(PAGE_SIZE, 3) == b"xyz" and os.pread(memfd, 3, PAGE_SIZE) == b"xyz"
        os.pwrite(memfd, b"seen", 2 * PAGE_SIZE)  # the file's bytes are the mapping's
        assert a.read(2 * PAGE_SIZE, 4) == b"seen"
        assert a.offset_of(a.address + 10) == 10
        with pytest.raises(ValueError):
            a.offset_of(a.address + a.size)
        with pytest.raises(IndexError):
            a.read(a.size - 2, 4)
        with pytest.raises(ValueError):
            a[0:4] = b"toolong"
    finally:
        a.close()
    assert a.closed and "unmapped" in repr(a)
    for use in (lambda: a[0], lambda: a.read(0, 1), lambda: a.write(0, b"x"), a.buffer):
        with pytest.raises(StateError, match="unmapped"):
            use()
    a.close()  # twice is fine


def test_mapping_at_an_address(memfd: int) -> None:
    """map_extra: exactly there, and an address in use refused (MAP_FIXED_NOREPLACE, not libbpf's MAP_FIXED)."""
    size = PAGES * PAGE_SIZE
    probe = ArenaMapping(memfd, size)
    free = probe.address
    probe.close()
    a = ArenaMapping(memfd, size, address=free, name="fixed")
    try:
        assert a.address == free
        with pytest.raises(SyscallError) as ei:
            ArenaMapping(memfd, size, address=free, name="again")
        assert ei.value.errno == errno.EEXIST and "map_extra" in str(ei.value)
    finally:
        a.close()


def test_typed_view_before_load_and_over_a_mapping(memfd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """obj.arena: the image before load; after load, the arena's memory (here a memfd's)."""
    with bpf.Object.open(fixture_path(FIXTURE)) as obj:
        assert obj.arena._asdict() == INITIAL
        obj.arena.counter = 9
        obj.arena.origin.x = 11  # a member of a struct global: written back into the image
        image = obj.maps["arena"].initial_value
        assert image is not None and struct.unpack_from("<ii", image, 0) == (9, 0) and struct.unpack_from("<i", image, 8) == (11,)
        with pytest.raises(BPFError, match="does not fit"):
            obj.arena.counter = 2**40

        m = obj.maps["arena"]
        off = (PAGES - 1) * PAGE_SIZE
        a = ArenaMapping(memfd, PAGES * PAGE_SIZE, name="arena")
        a.globals_offset, a.globals_size = off, len(image)
        a.write(off, image)  # what the load does right after mmapping the arena
        m.__dict__["_arena"] = a
        created = Map.created
        monkeypatch.setattr(Map, "created", property(lambda self: self.__dict__.get("_arena") is not None or created.fget(self)))  # type: ignore[attr-defined]
        assert obj.arena.counter == 9 and obj.arena.origin.x == 11
        obj.arena.counter = 100
        obj.arena.squares = list(range(8))
        obj.arena.origin.y = -8
        assert os.pread(memfd, 4, off) == struct.pack("<i", 100)
        assert os.pread(memfd, 32, off + 24) == struct.pack("<8I", *range(8))
        assert os.pread(memfd, 4, off + 12) == struct.pack("<i", -8)
        os.pwrite(memfd, struct.pack("<Q", 0x1234), off + 64)  # as a program would write page_addr
        assert obj.arena.page_addr == 0x1234
        assert m.initial_value == os.pread(memfd, 76, off)  # the globals' live bytes
        with pytest.raises(BPFError, match="arena"):
            m.mmap()
        m.close()  # unmaps
        assert a.closed


# ---------------------------------------------------------------- kernel
def _arena_in_kernel() -> bool:
    return features.map_type_supported(MapType.BPF_MAP_TYPE_ARENA)


def _assert_refused(obj: bpf.Object) -> None:
    """The loader's probe says this kernel has no arena maps: the clear error, nothing left loaded."""
    with pytest.raises(BPFError) as ei:
        obj.load()
    assert_not_supported(ei.value, "map type arena", "'arena'")
    assert not obj.loaded and not any(p.loaded for p in obj.programs.values())
    assert not any(m.created for m in obj.maps.values())


@pytest.mark.kernel
def test_load_run_and_share_globals() -> None:
    with bpf.Object.open(fixture_path(FIXTURE)) as obj:
        if not _arena_in_kernel():
            _assert_refused(obj)
            return
        obj.load()
        m = obj.maps["arena"]
        a = m.arena
        info = m.info()
        assert (info.type, info.max_entries, info.flags & BPF_F_MMAPABLE, info.map_extra) == (MapType.BPF_MAP_TYPE_ARENA, PAGES, BPF_F_MMAPABLE, 0)
        assert a.size == PAGES * PAGE_SIZE
        off = arena_globals.data_offset(PAGES, 76, full_range_off=features.has_ldimm64_full_range_off())
        assert (a.globals_offset, a.globals_size) == (off, 76)
        # the globals were copied in, where the programs' instructions point
        assert a.read(off, 76) == obj.map_spec("arena").initial_value  # type: ignore[union-attr]
        assert obj.arena._asdict() == INITIAL

        # written by Python, read by the program
        obj.arena.counter = 100
        obj.arena.origin = {"x": 5, "y": 6}
        run = obj.programs["arena_run"]
        assert run.test_run().retval == 0
        # written by the program, read by Python
        v = obj.arena
        assert (v.counter, v.origin.sum, v.squares, v.hidden, v.page_words) == (101, 56, [i * i + 101 for i in range(8)], 43, 3)
        assert obj.bss.runs == 1
        page = a.offset_of(v.page_addr)  # a user address inside the mapping
        assert page % PAGE_SIZE == 0 and not off <= page < off + PAGE_SIZE  # a page of its own
        assert struct.unpack("<3I", a.read(page, 12)) == (0xFEEDBEEF, 101, 43)
        assert m.initial_value == a.read(off, 76)
        with pytest.raises(StateError):  # libbpf: -EBUSY
            m.initial_value = bytes(76)
        import pybpfload.libbpf as L

        assert L.bpf_map__initial_value(m) == a.read(0, 76)  # as libbpf 1.7: from the start of the mapping
        assert L.bpf_map__set_initial_value(m, bytes(76)) == -errno.EBUSY

        assert run.test_run().retval == 0  # one page only, by the first run
        assert (v.counter, a.offset_of(v.page_addr), obj.bss.runs) == (102, page, 2)
        assert obj.programs["arena_free"].test_run().retval == 0
        assert (v.page_addr, v.page_words) == (0, 0)
        assert a.read(page, 12) == bytes(12)  # freed: the page reads as a fresh zero page
    assert a.closed
    with pytest.raises(StateError):
        a.read(0, 1)


@pytest.mark.kernel
def test_map_extra_places_the_arena() -> None:
    """map_extra set: the arena is mapped there (and the program's pointers share its upper 32 bits)."""
    addr = 1 << 44  # as the kernel selftests on x86-64: far above this process's mappings
    with bpf.Object.open(fixture_path(FIXTURE)) as obj:
        obj.maps["arena"].map_extra = addr
        if not _arena_in_kernel():
            _assert_refused(obj)
            return
        with open("/proc/self/maps") as f:
            used = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in f]
        if any(lo < addr + PAGES * PAGE_SIZE and addr < hi for lo, hi in used):
            pytest.skip(f"{addr:#x} is in use in this process")
        obj.load()
        a = obj.maps["arena"].arena
        assert a.address == addr and obj.maps["arena"].info().map_extra == addr
        assert obj.programs["arena_run"].test_run().retval == 0
        assert obj.arena.page_addr >> 32 == addr >> 32 and obj.arena.counter == 8


@pytest.mark.kernel
def test_arena_made_by_hand() -> None:
    args = (MapType.BPF_MAP_TYPE_ARENA, 0, 0, 4, BPF_F_MMAPABLE)
    if not _arena_in_kernel():
        with pytest.raises(BPFError) as ei:
            Map.create(*args, name="hand").close()
        assert_not_supported(ei.value, "map type arena", "'hand'")
        return
    with Map.create(*args, name="hand") as m:
        a = m.arena  # mapped on first use
        assert a is m.arena and a.size == 4 * PAGE_SIZE and (a.globals_offset, a.globals_size) == (0, 0)
        a[0:3] = b"xyz"  # user space faults the page in
        assert a.read(0, 3) == b"xyz" and m.initial_value is None
        with pytest.raises(BPFError, match="map.arena"):
            m.mmap()
    assert a.closed


# ---------------------------------------------------------------- oracle: current libbpf
TOOLS = Path(__file__).resolve().parent.parent / "tools"


def _current_libbpfs() -> List[Any]:
    """Current libbpf as cached by ``python -m realworld libbpf`` (trixie: 1.5, sid: 1.7), loaded by ctypes."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    from realworld import libbpf_current, oracle

    found = []
    for suite in ("trixie", "sid"):
        got = libbpf_current.cached(suite)
        if got is not None:
            found.append(oracle.Libbpf(got.path, f"{suite} libbpf"))
    return found


def _libbpf_load(lib: Any, path: Path) -> Dict[str, Any]:
    """libbpf's load of ``path``: its result, each program's instructions after it (relocated even
    when the load then fails: current libbpf relocates before creating maps) and, when
    loaded, program tags, the kernel's translation of each program, the kernel's view of
    each map and where libbpf mapped the arena (``bpf_map__initial_value``: its mapping)."""
    from realworld.sweep import describe

    L = lib.lib()
    obj = L.bpf_object__open_file(str(path).encode(), None)
    assert obj, f"{lib.version()} cannot open {path}"
    try:
        rc = L.bpf_object__load(obj)
        out: Dict[str, Any] = {"rc": rc, "insns": {}, "tags": {}, "xlated": {}, "maps": {}, "arena_at": 0}
        p = L.bpf_object__next_program(obj, None)
        while p:
            name = L.bpf_program__name(p).decode()
            out["insns"][name] = ctypes.string_at(L.bpf_program__insns(p), L.bpf_program__insn_cnt(p) * 8)
            if rc == 0:
                out["tags"][name] = describe(0, L.bpf_program__fd(p))
                with bpf.Program.from_fd(L.bpf_program__fd(p)) as kp:
                    out["xlated"][name] = kp.xlated_insns()
            p = L.bpf_object__next_program(obj, p)
        m = L.bpf_object__next_map(obj, None)
        while m and rc == 0:
            name = L.bpf_map__name(m).decode()
            out["maps"][name] = describe(1, L.bpf_map__fd(m))
            if L.bpf_map__type(m) == MapType.BPF_MAP_TYPE_ARENA:
                out["arena_at"] = L.bpf_map__initial_value(m, ctypes.byref(ctypes.c_size_t(0)))
            m = L.bpf_object__next_map(obj, m)
        return out
    finally:
        L.bpf_object__close(obj)


def _xlated_normalised(xlated: bytes, arena_at: int, arena_size: int, data_off: int) -> bytes:
    """The kernel's translation with what differs between two loads taken out: map ids
    (ld_imm64 of a map or its value), and arena addresses (the kernel resolves an arena
    global to its user address: the mapping's start + where its loader put the globals)."""
    out = bytearray(xlated)
    i = 0
    while i < len(out) // 8:
        if out[i * 8] != LD_IMM64:
            i += 1
            continue
        src = out[i * 8 + 1] >> 4
        lo, hi = struct.unpack_from("<I", out, i * 8 + 4)[0], struct.unpack_from("<I", out, i * 8 + 12)[0]
        value = lo | hi << 32
        if src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE):
            struct.pack_into("<I", out, i * 8 + 4, 0)  # the map's id
        elif src == 0 and arena_at <= value < arena_at + arena_size:
            struct.pack_into("<Q", out, i * 8 + 4, 0)
            struct.pack_into("<I", out, i * 8 + 4, value - arena_at - data_off)
            struct.pack_into("<I", out, i * 8 + 12, 0)
        i += 2
    return bytes(out)


def _normalised(insns: bytes, arena_refs: List[Tuple[int, int]], arena_off: int) -> bytes:
    """Map fds zeroed (each loader has its own), the arena offset taken out of arena references."""
    out = bytearray(insns)
    arena_at = {i for i, _ in arena_refs}
    i = 0
    while i < len(out) // 8:
        if out[i * 8] == LD_IMM64:
            if out[i * 8 + 1] >> 4 in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE):
                struct.pack_into("<i", out, i * 8 + 4, 0)
            if i in arena_at:
                (imm2,) = struct.unpack_from("<i", out, i * 8 + 12)
                struct.pack_into("<i", out, i * 8 + 12, imm2 - arena_off)
            i += 2
            continue
        i += 1
    return bytes(out)


def _version(lib: Any) -> Tuple[int, ...]:
    """(1, 7) for "v1.7"."""
    return tuple(int(x) for x in lib.version().lstrip("v").split(".")[:2])


@pytest.mark.kernel
def test_current_libbpf_relocates_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every instruction as current libbpf relocates it, but for where the globals are (1.5 puts
    them at the start of the arena; 1.7 and we at its end where the kernel allows); on a
    kernel with arena, the same program tags, translations (arena addresses taken relative
    to each loader's mapping and globals) and maps."""
    libs = _current_libbpfs()
    if not libs:
        pytest.skip("no current libbpf cached (python -m realworld libbpf [--suite sid])")
    elf = _elf()
    path = fixture_path(FIXTURE)
    full_range = features.has_ldimm64_full_range_off()
    ours_off = arena_globals.data_offset(PAGES, 76, full_range_off=full_range)
    size = PAGES * PAGE_SIZE
    with bpf.Object.open(path) as obj:
        if _arena_in_kernel():
            obj.load()
            ours = {n: p.insns for n, p in obj.programs.items()}
            tags = {n: p.info().tag for n, p in obj.programs.items()}
            arena_at = obj.maps["arena"].arena.address
            xlated = {n: _xlated_normalised(p.xlated_insns(), arena_at, size, ours_off) for n, p in obj.programs.items()}
            maps = {n: (int(i.type), i.key_size, i.value_size, i.max_entries, i.flags, i.map_extra)
                    for n, i in ((n, m.info()) for n, m in obj.maps.items())}  # fmt: skip
        else:  # the load stops at the arena: relocate as the loader does, with stand-in fds
            with monkeypatch.context() as mp:
                ours, _ = _relocate(obj, mp, full_range, resolve=True)
            tags, xlated, maps = {}, {}, {}
    checked = []
    for lib in libs:
        theirs = _libbpf_load(lib, path)
        lib_off = ours_off if _version(lib) >= (1, 7) else 0  # 1.4-1.6: always at the start
        for name, insns in ours.items():
            got = theirs["insns"][name]
            assert _ld(got, elf["arena_refs"][name][0][0])[0] == BPF_PSEUDO_MAP_VALUE, f"{lib.version()} did not relocate {name}"
            assert _normalised(insns, elf["arena_refs"][name], ours_off) == _normalised(got, elf["arena_refs"][name], lib_off), (lib.version(), name)
            assert (_normalised(insns, [], 0) == _normalised(got, [], 0)) == (lib_off == ours_off), (lib.version(), name)
        if tags:
            assert theirs["rc"] == 0, (lib.version(), theirs["rc"])
            for name, tag in tags.items():
                # the kernel's tag zeroes both immediates of a map value's ld_imm64: the arena
                # offset does not show in it (the instructions above and below do)
                assert theirs["tags"][name] == tag, (lib.version(), name)
                got_x = _xlated_normalised(theirs["xlated"][name], theirs["arena_at"], size, lib_off)
                assert got_x == xlated[name], (lib.version(), name)
            for name, desc in maps.items():
                assert theirs["maps"][name][:6] == desc, (lib.version(), name)
        else:
            assert theirs["rc"] != 0  # libbpf cannot create the arena either
        checked.append(f"{lib.version()} (globals at {lib_off})")
    print(f"ours: globals at {ours_off}; same relocations as {', '.join(checked)}" + (", same translations and tags" if tags else ""))
