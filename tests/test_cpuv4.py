"""BPF ISA v4 (clang-19 -mcpu=v4; Linux 6.6+): objects with every v4 instruction
class, decoded, relocated (CO-RE on sign-extending loads) and loaded.

- The fixtures (fixtures/src/cpuv4*.bpf.c, built by the Makefile's
  ``%.cpuv4.bpf.o`` rule) hold each class, as our decoder names them; their
  text is llvm-objdump-19's (when installed).
- CO-RE patches a BPF_LDX | BPF_MEMSX load as libbpf's bpf_core_patch_insn
  does any LDX: the offset, and the size keeping the mode (BPF_MODE(code) |
  new size | class); a signed field whose size differs is poisoned
  (fail_memsz_adjust), sign-extending load or not.  Relocated instructions are
  compared with libbpf 1.1's (ctypes, captured before BPF_PROG_LOAD, so on
  every kernel).
- Where the kernel takes the v4 classes a program uses (by the loader's probes,
  features.cpu_v4_supported: kernels are not all or nothing, Debian's 6.1 takes
  gotol alone) the programs run (BPF_PROG_TEST_RUN) and compute what a model
  of the ISA says, with the program tags of libbpf 1.1's loads (bpftool prog
  loadall); elsewhere the load is a VerifierError whose text says "this kernel
  does not support BPF ISA v4 instructions (cpu v4, Linux 6.6+)" and names the
  first instruction of a class the kernel lacks.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import threading
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

from pybpfload import Object, Program
from pybpfload.btf.ext import parse_ext
from pybpfload.btf.relo_core import POISON_IMM
from pybpfload.elf import insn as I
from pybpfload.elf.parse import parse_object
from pybpfload.errors import VerifierError
from pybpfload.kernel.program import CPU_V4_REFUSED
from pybpfload.reloc import co_re as core
from pybpfload.reloc.linker import link
from pybpfload.syscall import ProgType, features

from .conftest import FIXTURES, fixture_path

ALU = FIXTURES / "cpuv4.cpuv4.bpf.o"
CORE = FIXTURES / "cpuv4_core.cpuv4.bpf.o"
TARGET = FIXTURES / "cpuv4_target.cpuv4.bpf.o"
GOTOL = FIXTURES / "cpuv4_gotol.cpuv4.bpf.o"
OBJECTS = [ALU, CORE, TARGET, GOTOL]

# What each program must hold (at least), by our decoder's names (Insn.name).
CLASSES: Dict[str, Set[str]] = {
    "v4_sdiv": {"sdiv64 reg", "smod64 reg", "sdiv64 imm", "smod64 imm", "sdiv32 reg", "smod32 reg", "sdiv32 imm", "smod32 imm"},
    "v4_movsx": {"movsx64 reg", "movsx32 reg"},
    "v4_ldsx": {"ldxsb", "ldxsh", "ldxsw"},
    "v4_bswap": {"bswap16", "bswap32", "bswap64"},
    "v4_gotol": {"gotol"},
    "v4_core_task": {"ldxsw"},
    "v4_core_sx": {"ldxsb", "ldxsh", "ldxsw"},
    "v4_core_grown": {"ldxsb"},
    "v4_long_jump": {"gotol"},
}


def _programs(path: Path) -> Dict[str, List[I.Insn]]:
    model = parse_object(fixture_path(path.name).read_bytes(), "x")
    return {p.name: I.decode(p.insns) for p in model.programs}


def _classes(path: Path, prog: Optional[str] = None) -> Set[str]:
    """The v4 classes the programs of ``path`` (or just ``prog``) use."""
    return {c for name, insns in _programs(path).items() if prog in (None, name) for i in insns for c in [i.cpu_v4_class] if c}


def _missing(classes: Set[str]) -> Set[str]:
    """Those of ``classes`` this kernel does not take, by the loader's probes."""
    return {c for c in classes if not features.cpu_v4_supported(c)}


def _need(classes: Set[str]) -> None:
    missing = _missing(classes)
    if missing:
        pytest.skip(f"this kernel lacks BPF ISA v4's {', '.join(sorted(missing))} (the clear error is tested instead)")


# ---------------------------------------------------------------- decoding (pure)
def test_every_v4_class_is_in_the_fixtures() -> None:
    seen: Dict[str, Set[str]] = {}
    for path in OBJECTS:
        for name, insns in _programs(path).items():
            seen[name] = {i.name for i in insns if i.is_cpu_v4}
    assert set(seen) == set(CLASSES)
    for name, want in CLASSES.items():
        assert want <= seen[name], (name, want - seen[name])
    # the movsx widths: (s8), (s16), (s32) into 64 bits, (s8), (s16) into 32
    movsx = {(i.cls, i.off) for i in _programs(ALU)["v4_movsx"] if i.name.startswith("movsx")}
    assert movsx == {(I.BPF_ALU64, 8), (I.BPF_ALU64, 16), (I.BPF_ALU64, 32), (I.BPF_ALU, 8), (I.BPF_ALU, 16)}


def test_clang_writes_gotol_for_a_jump_beyond_16_bits() -> None:
    (insns,) = _programs(GOTOL).values()
    far = [i for i in insns if i.name == "gotol"]
    assert len(far) == 1 and far[0].imm > 0x7FFF and far[0].off == 0
    assert sum(i.slots for i in insns) > 1 << 15


def test_older_fixtures_have_no_v4_instruction() -> None:
    for path in sorted(FIXTURES.glob("*.bpf.o")):
        if path.name.endswith(".cpuv4.bpf.o"):
            continue
        model = parse_object(path.read_bytes(), "x", relaxed_maps=True)
        for p in model.programs:
            assert I.first_cpu_v4(p.insns) is None, (path.name, p.name)


def test_names_and_text_of_v4_instructions() -> None:
    cases = [
        (I.Insn(0x3F, 1, 2, 1), "sdiv64 reg", "r1 s/= r2"),
        (I.Insn(0x34, 1, 0, 1, -3), "sdiv32 imm", "w1 s/= -3"),
        (I.Insn(0x9F, 1, 2, 1), "smod64 reg", "r1 s%= r2"),
        (I.Insn(0x94, 1, 0, 1, 10), "smod32 imm", "w1 s%= 10"),
        (I.Insn(0xBF, 1, 2, 32), "movsx64 reg", "r1 = (s32)r2"),
        (I.Insn(0xBC, 1, 2, 8), "movsx32 reg", "w1 = (s8)w2"),
        (I.Insn(0x91, 1, 2, -3), "ldxsb", "r1 = *(s8 *)(r2 - 3)"),
        (I.Insn(0x89, 1, 2, 4), "ldxsh", "r1 = *(s16 *)(r2 + 4)"),
        (I.Insn(0x81, 1, 2), "ldxsw", "r1 = *(s32 *)(r2 + 0)"),
        (I.Insn(0xD7, 3, imm=64), "bswap64", "r3 = bswap64 r3"),
        (I.Insn(0x06, imm=-70000), "gotol", "gotol -70000"),
    ]
    for insn, name, text in cases:
        assert (insn.name, I.format_insn(insn), insn.is_cpu_v4) == (name, text, True)
        assert insn.cpu_v4_class in I.CPU_V4_CLASSES
        assert I.first_cpu_v4([I.Insn(0xB7), insn, I.Insn(0x95)]) == (1, insn)
    mixed = [I.Insn(0x06, imm=3), I.Insn(0xB7), I.Insn(0x37, 0, 0, 1, 3), I.Insn(0x95)]
    assert [i.cpu_v4_class for i in mixed] == ["gotol", None, "sdiv", None]
    assert I.first_cpu_v4(mixed) == (0, mixed[0]) and I.first_cpu_v4(mixed, ["sdiv", "ldsx"]) == (2, mixed[2])
    assert I.first_cpu_v4(mixed, []) is None
    for older in (I.Insn(0x3F, 1, 2), I.Insn(0xBF, 1, 2), I.Insn(0x61, 1, 2), I.Insn(0xDC, 1, imm=16), I.Insn(0x05, off=3), I.Insn(0x16, 1, off=2)):
        assert not older.is_cpu_v4, older
    assert I.opcode_name(0x91) == "ldxsb" and I.opcode_name(0x06) == "gotol"


def _objdump19(path: Path) -> Dict[int, Tuple[str, str]]:
    out = subprocess.run(["llvm-objdump-19", "-d", "--no-print-imm-hex", str(path)], capture_output=True, text=True, check=True)
    rows: Dict[int, Tuple[str, str]] = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^\s*(\d+):\t([0-9a-f ]+)\t(.*)$", line)
        if m:
            rows[int(m.group(1))] = (m.group(2).strip(), re.sub(r" <[^>]*>$", "", m.group(3)))
    return rows


@pytest.mark.oracle
@pytest.mark.parametrize("path", OBJECTS, ids=[p.name for p in OBJECTS])
def test_text_matches_llvm_objdump_19(path: Path) -> None:
    if shutil.which("llvm-objdump-19") is None:  # llvm 14's objdump cannot decode v4 (not in CI)
        pytest.skip("llvm-objdump-19 is not installed (Debian's llvm-19)")
    rows = _objdump19(path)
    model = parse_object(path.read_bytes(), "x")
    compared = 0
    for p in model.programs:
        for slot, insn in I.iter_insns(p.insns):
            hexb, text = rows[p.insn_off + slot]
            assert (insn.encode().hex(" "), I.format_insn(insn)) == (hexb, text), (p.name, slot)
            compared += 1
    assert compared == sum(p.insn_cnt - sum(1 for i in I.decode(p.insns) if i.is_ldimm64) for p in model.programs)


# ---------------------------------------------------------------- CO-RE (pure)
def _relocated(path: Path, prog: str, target: Optional[Path]) -> Tuple[bytes, List[int]]:
    with Object.open(path, btf_custom_path=str(target) if target else None) as obj:
        assert obj.btf is not None and obj.model.btf_ext_raw is not None
        insns = core.relocate_object(obj, parse_ext(obj.model.btf_ext_raw, obj.btf.string))
        spec = obj.program_spec(prog)
        assert spec is not None
        linked = link(obj.model, spec, lambda s: insns.get(id(s), s.insns))
        from pybpfload.elf.model import RelocKind

        return linked.insns, [i for i, r in linked.refs if r.kind in (RelocKind.MAP, RelocKind.DATA)]


def test_core_patches_sign_extending_loads_keeping_their_mode() -> None:
    insns, _ = _relocated(CORE, "v4_core_sx", TARGET)
    loads = [(i.code, i.off) for i in I.decode(insns) if i.cls == I.BPF_LDX]
    # target: pad@0 w@8 u@12 (u16) grown@14 h@16 pad2@18 b@19
    assert loads == [(0x91, 19), (0x89, 16), (0x81, 8), (0x89, 12)]  # u: 1 -> 2 bytes, still BPF_MEMSX


def test_core_poisons_a_signed_field_of_another_size() -> None:
    insns, _ = _relocated(CORE, "v4_core_grown", TARGET)
    decoded = I.decode(insns)
    assert not any(i.cls == I.BPF_LDX for i in decoded)
    assert any(i.is_helper_call and i.imm == POISON_IMM for i in decoded)


def test_core_on_a_sign_extending_load_of_a_kernel_field() -> None:
    from pybpfload.btf.query import field
    from pybpfload.btf.vmlinux import vmlinux_spec

    vm = vmlinux_spec()
    (tid,) = [t for t in vm.find_ids("task_struct") if vm.kind_of(t).name == "STRUCT"]
    insns, _ = _relocated(ALU, "v4_core_task", None)
    loads = [(i.code, i.off) for i in I.decode(insns) if i.cls == I.BPF_LDX]
    want = [(0x81, field(vm, tid, name).bit_offset // 8) for name in ("exit_signal", "pid")]
    assert loads == want


# ---------------------------------------------------------------- CO-RE against libbpf 1.1
def _masked(insns: bytes, slots: List[int]) -> List[Tuple[int, int, int, int]]:
    out = [struct.unpack_from("<BBhi", insns, i) for i in range(0, len(insns), 8)]
    for s in slots:
        out[s] = (out[s][0], out[s][1] & 0x0F, 0, 0)
        out[s + 1] = (0, 0, 0, 0)
    return out


CORE_CASES = [(CORE, "v4_core_sx", TARGET), (CORE, "v4_core_grown", TARGET), (ALU, "v4_core_task", None)]


@pytest.mark.kernel
@pytest.mark.oracle
@pytest.mark.parametrize("case", CORE_CASES, ids=[c[1] for c in CORE_CASES])
def test_relocated_instructions_equal_libbpf(case: Tuple[Path, str, Optional[Path]]) -> None:
    """libbpf 1.1 relocates the MEMSX loads alike (captured before BPF_PROG_LOAD: any kernel)."""
    from .test_core_oracle import libbpf_relocated

    path, prog, target = case
    theirs = libbpf_relocated(path, prog, target)
    assert isinstance(theirs, bytes), f"libbpf failed: {theirs}"
    ours, slots = _relocated(path, prog, target)
    assert _masked(ours, slots) == _masked(theirs, slots)


# ---------------------------------------------------------------- the ISA, modelled
def _s(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _sdiv(a: int, b: int, bits: int) -> int:
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return _s(q if (a < 0) == (b < 0) else -q, bits)


def _smod(a: int, b: int, bits: int) -> int:
    if b == 0:
        return _s(a, bits)
    return _s(a - b * _sdiv(a, b, bits), bits)


def _bswap(v: int, n: int) -> int:
    return int.from_bytes((v & ((1 << (8 * n)) - 1)).to_bytes(n, "little"), "big")


# (sd_a, sd_b, sd_c, sd_d): by zero and by -1 too (never LLONG_MIN / -1: kernels
# 6.6 to 6.11 trap on it in the x86 JIT)
DIVISIONS = [(-7, 2, -9, 4), (7, -2, 9, -4), (-(1 << 62) - 5, 3, -(1 << 30) - 1, 7), (-7, 0, -9, 0), (-7, -1, -9, -1), (1 << 40, -(1 << 33), 1 << 30, -3)]
MOVES = [0x1234567890ABCDEF, 0x80, 0xFFFFFFFF80008080, 0x7F7F7F7F, 0]
LOADS = [(-5, -1000, -100000, 0xF0), (127, 32767, 2**31 - 1, 0x7F), (-128, -32768, -(2**31), 0x80)]


def _expect_sdiv(a: int, b: int, c: int, d: int) -> List[int]:
    return [
        _sdiv(a, b, 64), _smod(a, b, 64), _sdiv(a, -7, 64), _smod(a, 5, 64),
        _sdiv(c, d, 32), _smod(c, d, 32), _sdiv(c, -3, 32), _smod(c, 10, 32),
    ]  # fmt: skip


def _expect_movsx(x: int) -> List[int]:
    return [_s(x, 8), _s(x, 16), _s(x, 32), _s(x, 8) & 0xFFFFFFFF, _s(x, 16) & 0xFFFFFFFF]


def _expect_bswap(x: int) -> List[int]:
    return [_bswap(x, 2), _bswap(x, 4), _s(_bswap(x, 8), 64)]


# ---------------------------------------------------------------- kernel: refused below 6.6
def _assert_v4_refused(exc: BaseException, prog: Optional[str] = None) -> None:
    assert isinstance(exc, VerifierError), repr(exc)
    text = str(exc)
    assert CPU_V4_REFUSED in text and exc.hint.startswith(CPU_V4_REFUSED), text
    assert exc.log, "the kernel's own words are kept"
    if prog is not None:
        assert prog in text, text
    assert re.search(r"insn #(\d+) \((.*)\) is one", exc.hint), exc.hint


_CLASS_TEXT = [("ldsx", r"= \*\(s\d+ \*\)"), ("movsx", r"= \(s\d+\)[rw]"), ("sdiv", r" s[/%]= "), ("bswap", r"bswap"), ("gotol", r"^gotol ")]


def _hinted(exc: VerifierError) -> str:
    """The v4 class of the instruction the hint names (told by its text, as format_insn writes it)."""
    m = re.search(r"insn #\d+ \((.*)\) is one", exc.hint)
    assert m, exc.hint
    found = [c for c, pattern in _CLASS_TEXT if re.search(pattern, m.group(1))]
    assert len(found) == 1, exc.hint
    return found[0]


def test_the_text_of_an_instruction_tells_its_v4_class() -> None:
    """What _hinted relies on, over every instruction of the fixtures."""
    for path in OBJECTS:
        for insns in _programs(path).values():
            for i in insns:
                text = I.format_insn(i)
                found = [c for c, pattern in _CLASS_TEXT if re.search(pattern, text)]
                assert found == ([i.cpu_v4_class] if i.is_cpu_v4 else []), text


@pytest.mark.kernel
@pytest.mark.parametrize("path", [ALU, GOTOL], ids=["cpuv4", "cpuv4_gotol"])
def test_loads_where_the_kernel_has_v4_else_clear_error(path: Path) -> None:
    missing = _missing(_classes(path))
    with Object.open(path) as obj:
        if not missing:
            obj.load()
            assert all(p.loaded for p in obj.programs.values())
            return
        with pytest.raises(VerifierError) as ei:
            obj.load()
        assert not any(p.loaded for p in obj.programs.values())
    # the first program (in the object's order) with an instruction of a class the kernel lacks
    first = next(name for name in _programs(path) if _classes(path, name) & missing)
    _assert_v4_refused(ei.value, first)
    assert _hinted(ei.value) in missing


@pytest.mark.kernel
def test_core_object_refused_clearly_without_v4() -> None:
    if not _missing({"ldsx"}):
        pytest.skip("the kernel takes sign-extending loads: test_core_sign_extending_loads_compute_as_libbpf runs instead")
    with Object.open(CORE, btf_custom_path=str(TARGET)) as obj:
        with pytest.raises(VerifierError) as ei:
            obj.load()
    _assert_v4_refused(ei.value, "v4_core_sx")
    assert _hinted(ei.value) == "ldsx"


@pytest.mark.kernel
def test_hint_only_for_programs_with_v4_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused program with a v4 instruction gets the hint when the probes say its class
    is missing (forced here, so that the check holds on every kernel); one without never does."""
    monkeypatch.setattr(features, "cpu_v4_supported", lambda what, token=None: False)
    bad_movsx = [I.Insn(0xB7, 0), I.Insn(0xBF, 0, 0, 7), I.Insn(0x95)]  # r0 = (s7)r0: no such width
    with pytest.raises(VerifierError) as ei:
        Program.load(bad_movsx, ProgType.BPF_PROG_TYPE_SOCKET_FILTER, name="v4_bad")
    _assert_v4_refused(ei.value)
    assert "insn #1 (r0 = (s7)r0) is one" in ei.value.hint
    uninit = [I.Insn(0x95)]  # exit with r0 unset: refused, and nothing to do with v4
    with pytest.raises(VerifierError) as ei:
        Program.load(uninit, ProgType.BPF_PROG_TYPE_SOCKET_FILTER, name="not_v4")
    assert not ei.value.hint and CPU_V4_REFUSED not in str(ei.value)


@pytest.mark.kernel
def test_probe_agrees_with_the_verifier() -> None:
    """cpu_v4_supported says, class by class, what loading such an instruction says."""
    singles = {
        "movsx": [I.Insn(0xB7, 0), I.Insn(0xBF, 0, 0, 8), I.Insn(0x95)],
        "sdiv": [I.Insn(0xB7, 0), I.Insn(0x37, 0, 0, 1, 3), I.Insn(0x95)],
        "bswap": [I.Insn(0xB7, 0), I.Insn(0xD7, 0, imm=16), I.Insn(0x95)],
        "gotol": [I.Insn(0xB7, 0), I.Insn(0x06, imm=0), I.Insn(0x95)],
        "ldsx": [I.Insn(0x7A, 10, off=-8, imm=-1), I.Insn(0x91, 0, 10, -8), I.Insn(0x95)],
    }
    for what, insns in singles.items():
        try:
            Program.load(insns, ProgType.BPF_PROG_TYPE_SOCKET_FILTER, name=f"v4_{what}").close()
            loaded = True
        except VerifierError as e:
            _assert_v4_refused(e)
            loaded = False
        assert loaded == features.cpu_v4_supported(what), what
    assert features.has_cpu_v4() == all(features.cpu_v4_supported(c) for c in I.CPU_V4_CLASSES)


# ---------------------------------------------------------------- kernel: run where v4 is
def _out(obj: Object, n: int) -> List[int]:
    return list(obj.bss.out)[:n]


@pytest.mark.kernel
def test_programs_compute_what_the_isa_says() -> None:
    _need(_classes(ALU))
    with Object.open(ALU) as obj:
        obj.load()
        d, progs = obj.data, obj.programs
        for a, b, c, dd in DIVISIONS:
            d.sd_a, d.sd_b, d.sd_c, d.sd_d = a, b, c, dd
            assert progs["v4_sdiv"].test_run().retval == 0
            assert _out(obj, 8) == _expect_sdiv(a, b, c, dd), (a, b, c, dd)
        for x in MOVES:
            d.mv_x = x
            progs["v4_movsx"].test_run()
            assert _out(obj, 5) == _expect_movsx(x), hex(x)
            d.bs_x = x
            progs["v4_bswap"].test_run()
            assert _out(obj, 3) == _expect_bswap(x), hex(x)
        for s8, s16, s32, u8 in LOADS:
            d.ld_s8, d.ld_s16, d.ld_s32, d.ld_u8 = s8, s16, s32, u8
            progs["v4_ldsx"].test_run()
            assert _out(obj, 4) == [s8, s16, s32, _s(u8, 8)]
        progs["v4_gotol"].test_run()
        assert _out(obj, 1) == [10]


def _proc_exit_signal(tid: Optional[int] = None) -> int:
    path = "/proc/self/stat" if tid is None else f"/proc/self/task/{tid}/stat"
    with open(path) as f:
        return int(f.read().rsplit(")", 1)[1].split()[38 - 3])


@pytest.mark.kernel
def test_core_sign_extending_load_of_task_exit_signal() -> None:
    """(long)task->exit_signal: a thread's is -1, sign-extended to 64 bits; the kernel's
    /proc stat says the same; pid is the caller's thread id."""
    _need(_classes(ALU, "v4_core_task"))
    with Object.open(ALU) as obj:
        for name, p in obj.programs.items():
            p.autoload = name == "v4_core_task"
        obj.load()
        prog = obj.programs["v4_core_task"]
        prog.test_run()
        main = (_out(obj, 2), _proc_exit_signal(), threading.get_native_id())
        seen: Dict[str, Tuple[List[int], int, int]] = {}

        def in_thread() -> None:
            prog.test_run()
            tid = threading.get_native_id()
            seen["t"] = (_out(obj, 2), _proc_exit_signal(tid), tid)

        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
    for got, exit_signal, tid in (main, seen["t"]):
        assert got == [exit_signal, tid]
    assert seen["t"][0][0] == -1


def _target_instance() -> bytes:
    from pybpfload.elf.reader import read_elf

    sec = read_elf(TARGET.read_bytes()).section_by_name(".data")
    assert sec is not None
    return sec.data


def _run_core_ours() -> List[int]:
    with Object.open(CORE, btf_custom_path=str(TARGET)) as obj:
        obj.programs["v4_core_grown"].autoload = False
        obj.load()
        m = next(m for n, m in obj.maps.items() if n.endswith(".data"))
        m.raw[0] = _target_instance().ljust(m.value_size, b"\0")
        assert obj.programs["v4_core_sx"].test_run().retval == 0
        return _out(obj, 4)


def _run_core_libbpf() -> List[int]:
    from .test_core_oracle import _lib, _open

    lib = _lib()
    obj = _open(lib, CORE, TARGET)
    try:
        p = lib.bpf_object__find_program_by_name(obj, b"v4_core_grown")
        lib.bpf_program__set_autoload(p, False)
        assert lib.bpf_object__load(obj) == 0, "libbpf failed to load"
        maps = {}
        m = lib.bpf_object__next_map(obj, None)
        while m:
            maps[lib.bpf_map__name(m).decode()] = lib.bpf_map__fd(m)
            m = lib.bpf_object__next_map(obj, m)
        from pybpfload import Map

        data_fd = next(fd for n, fd in maps.items() if n.endswith(".data"))
        with Map.from_fd(data_fd) as dm:
            dm.raw[0] = _target_instance().ljust(dm.value_size, b"\0")
        sx = lib.bpf_object__find_program_by_name(obj, b"v4_core_sx")
        with Program.from_fd(lib.bpf_program__fd(sx)) as pr:
            assert pr.test_run().retval == 0
        bss_fd = next(fd for n, fd in maps.items() if n.endswith(".bss"))
        with Map.from_fd(bss_fd) as bm:
            raw = bytes(bm.raw[0])
        return list(struct.unpack_from("<4q", raw))
    finally:
        lib.bpf_object__close(obj)


@pytest.mark.kernel
@pytest.mark.oracle
def test_core_sign_extending_loads_compute_as_libbpf() -> None:
    _need(_classes(CORE, "v4_core_sx"))
    ours = _run_core_ours()
    # b, h, w moved; u read as s8 locally, 16 bits in the target: the load widened
    # and still sign-extending, so the 16-bit 0x80ff comes back as -32513
    assert ours == [-5, -1000, -100000, _s(0x80FF, 16)]
    assert ours == _run_core_libbpf()


@pytest.mark.kernel
def test_core_poisoned_sign_extending_load_is_explained() -> None:
    """Poisoned, the program holds no v4 instruction: the same explained error on every kernel."""
    with Object.open(CORE, btf_custom_path=str(TARGET)) as obj:
        obj.programs["v4_core_sx"].autoload = False
        with pytest.raises(VerifierError) as ei:
            obj.load()
    assert "grown" in str(ei.value) and not ei.value.hint, str(ei.value)


@pytest.mark.kernel
def test_long_jump_runs_both_ways() -> None:
    _need(_classes(GOTOL))
    with Object.open(GOTOL) as obj:
        obj.load()
        prog = obj.programs["v4_long_jump"]
        obj.data.skip = 1
        assert prog.test_run().retval == 1 and obj.bss.sink == 0
        obj.data.skip = 0
        assert prog.test_run().retval == 2 and obj.bss.sink == (1 << 15) - 1


@pytest.mark.kernel
@pytest.mark.oracle
@pytest.mark.parametrize("path", [ALU, GOTOL], ids=["cpuv4", "cpuv4_gotol"])
def test_same_tags_as_libbpf(path: Path, bpffs: Path) -> None:
    """bpftool 7.1 (libbpf 1.1) loads the v4 objects where the kernel can: the same
    programs with the same tags (the kernel's hash of the instructions it was given)."""
    from .test_load import LibbpfRefused, _libbpf_load

    try:
        theirs, _ = _libbpf_load(path, bpffs)
    except LibbpfRefused as refused:
        assert _missing(_classes(path)), f"libbpf could not load it: {refused}"
        with Object.open(path) as obj:
            with pytest.raises(VerifierError) as ei:
                obj.load()
        _assert_v4_refused(ei.value)
        return
    with Object.open(path) as obj:
        obj.load()
        ours = {name: p.info().tag for name, p in obj.programs.items()}
    assert set(ours) == set(theirs)
    for name, tag in ours.items():
        assert tag == theirs[name]["tag"], name


def test_each_probe_holds_its_class_alone() -> None:
    probes = features._CPU_V4_PROBES  # noqa: SLF001
    assert tuple(probes) == I.CPU_V4_CLASSES
    for what, insns in probes.items():
        assert {i.cpu_v4_class for i in I.decode(insns) if i.is_cpu_v4} == {what}
    with pytest.raises(ValueError, match="ldsx, movsx, sdiv, bswap, gotol"):
        features.cpu_v4_supported("mulx")
