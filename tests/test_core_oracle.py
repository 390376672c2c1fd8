"""CO-RE relocation against libbpf 1.1 (the ORACLE, through ctypes).

For every core_* fixture, program and target (a custom BTF file, or the
running kernel) the relocated instructions must equal those libbpf hands to
the kernel: libbpf's are captured in a custom SEC() handler's
prog_prepare_load_fn (called after all relocation, right before
BPF_PROG_LOAD, which the handler then cancels), ours come from the CO-RE
engine plus the linker.  Map fds in ld_imm64 are masked.  Programs that the
verifier accepts are then loaded by both and run: what they store must be
the same.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import pytest

from pybpfload import Map, Object, Program
from pybpfload.reloc import co_re as core
from pybpfload.btf.ext import parse_ext
from pybpfload.elf.model import RelocKind
from pybpfload.elf.reader import read_elf
from pybpfload.errors import BPFError, RelocationError
from pybpfload.reloc.linker import link

from .conftest import FIXTURES
from .test_elf_oracle import _OpenOpts, libbpf

pytestmark = [pytest.mark.kernel, pytest.mark.oracle]

TARGET_A = FIXTURES / "core_target_a.bpf.o"
TARGET_B = FIXTURES / "core_target_b.bpf.o"
KERNEL = None  # the running kernel's BTF

# (object, program, target)
CASES: List[Tuple[str, str, Optional[Path]]] = [
    (obj, prog, tgt)
    for tgt in (TARGET_A, TARGET_B)
    for obj, prog in (
        ("core_fields", "core_consts"),
        ("core_fields", "core_reads"),
        ("core_fields", "core_unguarded"),
        ("core_types", "core_types"),
        ("core_types_matches", "core_types"),
    )
] + [("core_task", "core_task", KERNEL), ("btf_core", "btf_core_prog", KERNEL)]

_PREPARE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long)


class _HandlerOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("cookie", ctypes.c_long),
        ("prog_setup_fn", ctypes.c_void_p),
        ("prog_prepare_load_fn", _PREPARE),
        ("prog_attach_fn", ctypes.c_void_p),
    ]


def _lib() -> ctypes.CDLL:
    lib = libbpf()
    vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for name, res, args in (
        ("bpf_object__load", i, [vp]),
        ("bpf_object__find_program_by_name", vp, [vp, cp]),
        ("bpf_object__find_map_by_name", vp, [vp, cp]),
        ("bpf_program__set_autoload", i, [vp, ctypes.c_bool]),
        ("bpf_program__fd", i, [vp]),
        ("bpf_map__fd", i, [vp]),
        ("libbpf_register_prog_handler", i, [cp, ctypes.c_int, ctypes.c_int, ctypes.POINTER(_HandlerOpts)]),
        ("libbpf_unregister_prog_handler", i, [i]),
    ):
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    global _KEEPER
    if _KEEPER is None:
        # libbpf 1.1 frees its handler array when the last custom handler is
        # unregistered but keeps the pointer (realloc to 0): a later register
        # double-frees.  One handler for a section nobody uses stays registered.
        _KEEPER = _HandlerOpts(sz=ctypes.sizeof(_HandlerOpts))
        assert lib.libbpf_register_prog_handler(b"pybpfload_never_used", 6, 0, ctypes.byref(_KEEPER)) > 0
    return lib


_KEEPER: Optional[_HandlerOpts] = None


def _open(lib: ctypes.CDLL, path: Path, target: Optional[Path]) -> int:
    o = _OpenOpts(sz=ctypes.sizeof(_OpenOpts))
    if target is not None:
        o.btf_custom_path = str(target).encode()
    obj = lib.bpf_object__open_file(str(path).encode(), ctypes.byref(o))
    assert obj, f"libbpf cannot open {path}"
    return obj


def libbpf_relocated(path: Path, prog: str, target: Optional[Path]) -> Union[bytes, int]:
    """The instructions libbpf would load for ``prog``, or libbpf's (negative) error."""
    lib = _lib()
    captured: Dict[str, bytes] = {}

    def prepare(p: int, _opts: int, _cookie: int) -> int:
        n = lib.bpf_program__insn_cnt(p)
        captured["insns"] = ctypes.string_at(lib.bpf_program__insns(p), n * 8)
        return -errno.ECANCELED

    cb = _PREPARE(prepare)
    hopts = _HandlerOpts(sz=ctypes.sizeof(_HandlerOpts), prog_prepare_load_fn=cb)
    ids = [lib.libbpf_register_prog_handler(sec, t, 0, ctypes.byref(hopts)) for sec, t in ((b"xdp", 6), (b"raw_tp+", 17))]
    assert all(x >= 0 for x in ids), ids
    try:
        obj = _open(lib, path, target)
        try:
            p = lib.bpf_object__next_program(obj, None)
            while p:
                lib.bpf_program__set_autoload(p, lib.bpf_program__name(p).decode() == prog)
                p = lib.bpf_object__next_program(obj, p)
            err = lib.bpf_object__load(obj)
        finally:
            lib.bpf_object__close(obj)
    finally:
        for x in ids:
            lib.libbpf_unregister_prog_handler(x)
    if "insns" in captured:
        return captured["insns"]
    assert err < 0
    return err


def our_relocated(path: Path, prog: str, target: Optional[Path]) -> Tuple[bytes, List[int]]:
    """Our CO-RE-relocated, linked instructions and the ld_imm64 slots that hold map fds."""
    with Object.open(path, btf_custom_path=str(target) if target else None) as obj:
        for name, p in obj.programs.items():
            p.autoload = name == prog
        assert obj.btf is not None and obj.model.btf_ext_raw is not None
        ext = parse_ext(obj.model.btf_ext_raw, obj.btf.string)
        insns = core.relocate_object(obj, ext)
        spec = obj.program_spec(prog)
        assert spec is not None
        linked = link(obj.model, spec, lambda s: insns.get(id(s), s.insns))
        masked = [i for i, r in linked.refs if r.kind in (RelocKind.MAP, RelocKind.DATA)]
        return linked.insns, masked


def _masked(insns: bytes, slots: List[int]) -> List[Tuple[int, int, int, int]]:
    out = [struct.unpack_from("<BBhi", insns, i) for i in range(0, len(insns), 8)]
    for s in slots:
        code, regs, _, _ = out[s]
        out[s] = (code, regs & 0x0F, 0, 0)  # keep opcode and dst, drop src (pseudo) and fd
        out[s + 1] = (0, 0, 0, 0)
    return out


def _id(case: Tuple[str, str, Optional[Path]]) -> str:
    obj, prog, tgt = case
    return f"{obj}-{prog}-{tgt.stem.split('.')[0] if tgt else 'kernel'}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_relocated_instructions_equal_libbpf(case: Tuple[str, str, Optional[Path]]) -> None:
    name, prog, target = case
    path = FIXTURES / f"{name}.bpf.o"
    theirs = libbpf_relocated(path, prog, target)
    assert isinstance(theirs, bytes), f"libbpf failed to relocate: {theirs}"
    ours, slots = our_relocated(path, prog, target)
    assert len(ours) == len(theirs)
    assert _masked(ours, slots) == _masked(theirs, slots)


def test_the_cases_cover_every_relocation_kind_and_poisoning() -> None:
    """The differential cases above exercise every kind, and relocations that fail."""
    kinds = set()
    poisoned = not_found = 0
    for name, _prog, target in CASES:
        with Object.open(FIXTURES / f"{name}.bpf.o") as obj:
            assert obj.btf is not None and obj.model.btf_ext_raw is not None
            ext = parse_ext(obj.model.btf_ext_raw, obj.btf.string)
            targets = core.file_targets(target) if target else core.kernel_targets()
            rel = core.relocate(obj.model, obj.btf, ext, targets)
        kinds |= {r.relo.kind for r in rel.records}
        poisoned += sum(r.poisoned for r in rel.records)
        not_found += sum(1 for r in rel.records if r.result is not None and not r.result.resolved and not r.poisoned)
    from pybpfload.btf.ext import CoreReloKind

    assert kinds == set(CoreReloKind)
    assert poisoned and not_found


# ---------------------------------------------------------------- behaviour
def _target_data(target: Path) -> bytes:
    """The target layout's struct core_s instance (core_s_data, first in its .data)."""
    sec = read_elf(target.read_bytes()).section_by_name(".data")
    assert sec is not None
    return sec.data


def _run_ours(path: Path, prog: str, target: Path, data: bytes) -> bytes:
    with Object.open(path, btf_custom_path=str(target)) as obj:
        obj.load()
        names = {obj.map_spec(n).real_name: n for n in obj.maps}  # type: ignore[union-attr]
        if ".data" in names:
            m = obj.maps[names[".data"]]
            m[0] = data[: m.value_size].ljust(m.value_size, b"\0")
        r = obj.programs[prog].test_run(b"\0" * 64)
        assert r.retval == 2
        return bytes(obj.maps[names[".bss"]][0])


def _run_libbpf(path: Path, prog: str, target: Path, data: bytes) -> bytes:
    lib = _lib()
    obj = _open(lib, path, target)
    try:
        assert lib.bpf_object__load(obj) == 0, "libbpf failed to load"
        maps = {}
        m = lib.bpf_object__next_map(obj, None)
        while m:
            maps[lib.bpf_map__name(m).decode()] = lib.bpf_map__fd(m)
            m = lib.bpf_object__next_map(obj, m)
        p = lib.bpf_object__find_program_by_name(obj, prog.encode())
        with Program.from_fd(lib.bpf_program__fd(p)) as pr:
            data_map = next((fd for n, fd in maps.items() if n.endswith(".data")), None)
            if data_map is not None:
                with Map.from_fd(data_map) as dm:
                    dm[0] = data[: dm.value_size].ljust(dm.value_size, b"\0")
            assert pr.test_run(b"\0" * 64).retval == 2
        bss = next(fd for n, fd in maps.items() if n.endswith(".bss"))
        with Map.from_fd(bss) as bm:
            return bytes(bm[0])
    finally:
        lib.bpf_object__close(obj)


RUNS = [
    (obj, prog, tgt)
    for tgt in (TARGET_A, TARGET_B)
    for obj, prog in (("core_fields", "core_consts"), ("core_fields", "core_reads"), ("core_types", "core_types"), ("core_types_matches", "core_types"))
]


@pytest.mark.parametrize("case", RUNS, ids=[_id(c) for c in RUNS])
def test_programs_compute_what_libbpf_programs_compute(case: Tuple[str, str, Path]) -> None:
    name, prog, target = case
    path = FIXTURES / f"{name}.bpf.o"
    data = _target_data(target)
    ours = _run_ours(path, prog, target, data)
    theirs = _run_libbpf(path, prog, target, data)
    assert ours == theirs
    assert any(ours), "the program stored nothing"


def _out(bss: bytes) -> List[int]:
    return [struct.unpack_from("<Q", bss, i)[0] for i in range(0, 64 * 8, 8)]


# values from the initialisers in core_target_{a,b}.bpf.c
READS = {
    TARGET_A: {40: 11, 41: 2,  # BPF_CORE_READ reads the local size (2 bytes); the direct load (52) is widened
               42: 2**64 - 3, 43: 44, 44: 22, 45: 32, 46: 102, 47: 6, 48: 2**64 - 5,
               49: 0x3FFFFFFFF, 50: 2**64 - 1000, 51: 11, 52: 0x10002, 53: 21, 54: 2**64 - 5, 55: 21 + 31},
    TARGET_B: {40: 1, 41: 2, 42: 3, 43: 4, 44: 7, 45: 10, 46: 12, 47: 5, 48: 17, 49: 0x100000001,
               50: 2**64 - 3, 51: 1, 52: 2, 53: 6, 54: 17, 55: 6 + 9},
}


@pytest.mark.parametrize("target", [TARGET_A, TARGET_B], ids=["A", "B"])
def test_reads_follow_the_target_layout(target: Path) -> None:
    out = _out(_run_ours(FIXTURES / "core_fields.bpf.o", "core_reads", target, _target_data(target)))
    assert {i: out[i] for i in READS[target]} == READS[target]


def test_unguarded_read_of_a_missing_field_is_explained() -> None:
    """The poisoned instruction is reached: the verifier refuses it, and the log says which relocation."""
    from pybpfload.errors import VerifierError

    with Object.open(FIXTURES / "core_fields.bpf.o", btf_custom_path=str(TARGET_B)) as obj:
        for n, p in obj.programs.items():
            p.autoload = n == "core_unguarded"
        with pytest.raises(VerifierError) as ei:
            obj.load()
    # the loader explains the poisoned instruction the verifier reached (libbpf's wording, plus why)
    explained = ei.value
    assert "failed to resolve CO-RE relocation <byte_off> [8] struct core_s.gone (0:11 @ offset 80)" in explained.log
    assert "field .gone not found" in explained.log and "core_target_b" in explained.log
    assert "invalid func unknown#195896080" not in explained.log
    assert explained.errno == errno.EINVAL and "core_unguarded" in str(explained)


def test_ambiguous_or_invalid_targets_fail_like_libbpf(tmp_path: Path) -> None:
    """A relocation libbpf refuses (here: a signed field whose size changed, read
    with a direct load of the original size, is poisoned, not refused) — and a
    target that is not BTF fails both."""
    bad = tmp_path / "garbage.btf"
    bad.write_bytes(b"\x9f\xeb" + b"\0" * 30)
    theirs = libbpf_relocated(FIXTURES / "core_fields.bpf.o", "core_consts", bad)
    assert isinstance(theirs, int) and theirs < 0
    with Object.open(FIXTURES / "core_fields.bpf.o", btf_custom_path=str(bad)) as obj:
        with pytest.raises((BPFError, RelocationError)):
            obj.load()
