"""The fuzz targets: what each does with its input bytes.

Each target takes ``bytes`` and either returns or raises; the harness says
which outcomes are fine.  None of them calls bpf(2): :func:`setup` replaces
the syscall with a trap (reaching it is a crash of the harness), answers
the feature probes the pure steps consult, and points every kernel-BTF
lookup at ``fuzz/data/vmlinux_piece.btf`` (a small, fixed subset of a real
vmlinux BTF).

* ``elf`` — ``Object.open_mem`` of the input, then everything an opened
  object shows (programs, maps, BTF, .BTF.ext, disassembly).
* ``btf`` — ``Spec.from_bytes``; every type decoded and queried (size,
  alignment, C name, members), name lookups, the C dump, and an
  encode/decode round trip that must give the same types.
* ``btf_ext`` — first byte picks a CO-RE fixture, the rest is its
  ``.BTF.ext``: decoded, packed back, then every CO-RE record applied
  (``core.relocate``, non-strict) against the fixture's own BTF and the
  vmlinux piece.
* ``core`` — first byte picks a CO-RE fixture, the rest is a *target* BTF:
  the fixture's relocations applied against it as ``pybpfload core`` /
  ``btf_custom_path`` do, and each result formatted.
* ``prepare`` — an ELF opened with a kconfig and ``btf_custom_path``, then
  ``Object.load()``'s steps up to the PROG_LOAD syscall: externs (kconfig,
  ksyms), struct_ops planning, the object's BTF fixed up and sanitised for
  a full and an empty feature set and re-encoded, CO-RE, linking of
  subprograms, map / data / extern references patched (maps get stand-in
  fds), helper fix-ups, func/line info, attach BTF ids.
"""

from __future__ import annotations


from pathlib import Path
from typing import Any, Callable, Dict, List, Set, Tuple

from . import CORE_FIXTURES, DATA, ROOT

PIECE_PATH = DATA / "vmlinux_piece.btf"
KCONFIG = "CONFIG_BPF_SYSCALL=y\nCONFIG_HZ=250\nCONFIG_BPF_JIT=m\nCONFIG_DEFAULT_HOSTNAME=\"fuzz\"\nCONFIG_NR_CPUS=64\n"
MAX_QUERIED = 256  # types queried one by one in the btf target (all are decoded and dumped)


class HarnessError(AssertionError):
    """The code under test did something the fuzzer forbids (a bpf(2) call)."""


_state: Dict[str, Any] = {}


def _no_syscall(*args: object) -> int:
    raise HarnessError("the fuzzer reached a system call through pybpfload.syscall._raw")


def setup() -> None:
    """Make the pure steps pure and quiet; load the fixed inputs (once per process)."""
    if _state:
        return
    from pybpfload.reloc import extern_values as externs, loader
    from pybpfload.syscall import features
    from pybpfload import log
    from pybpfload.btf import Spec
    from pybpfload.syscall import _raw

    _raw.syscall = _no_syscall  # type: ignore[assignment]
    log.set_print(lambda level, msg: None)
    # feature probes the pure steps consult, answered up front (they would load programs)
    features._cache[("has_probe_read_kernel",)] = False  # exercises the helper fix-up
    features._cache[("has_bpf_cookie",)] = True
    features._cache[("has_prog_name",)] = True
    features._cache[("has_ldimm64_full_range_off",)] = True  # __arena globals at the arena's end
    externs.kallsyms = lambda names, path="": {n: 0xFFFFFFFF81000000 + 16 * i for i, n in enumerate(sorted(set(names)))}  # type: ignore[assignment]
    loader._has_syscall_wrapper = lambda: True  # type: ignore[assignment]

    _state["piece"] = Spec.from_file(PIECE_PATH, cache=False)
    _state["fixtures"] = [_open_fixture(ROOT / "fixtures" / name) for name in CORE_FIXTURES]


def _open_fixture(path: Path) -> Tuple[Any, Any, Any]:
    from pybpfload import Object
    from pybpfload.btf.ext import parse_ext

    obj = Object.open(path)
    btf = obj.btf
    assert btf is not None and obj.model.btf_ext_raw is not None
    return obj.model, btf, parse_ext(obj.model.btf_ext_raw, btf.string)


def _fixture(selector: int) -> Tuple[Any, Any, Any]:
    fx: List[Tuple[Any, Any, Any]] = _state["fixtures"]
    return fx[selector % len(fx)]


# ------------------------------------------------------------------ elf
def fuzz_elf(data: bytes) -> None:
    from pybpfload import Object

    with Object.open_mem(data, object_name="fuzz") as obj:
        _touch_object(obj)


def _touch_object(obj: Any) -> None:
    from pybpfload.btf.ext import parse_ext
    from pybpfload.elf.insn import disasm

    repr(obj)
    _ = (obj.license, obj.externs, obj.subprograms, obj.model.kversion)
    for name, p in obj.programs.items():
        spec = obj.program_spec(name)
        _ = (p.name, p.type, p.expected_attach_type, p.section_name, p.attach_target, repr(p))
        if spec is not None:
            disasm(spec.insns, annotate=True)
    for name, m in obj.maps.items():
        _ = (m.type, m.key_size, m.value_size, m.max_entries, m.flags, obj.map_spec(name), repr(m))
    btf = obj.btf
    if btf is not None:
        for tid in range(1, min(len(btf), 64)):
            btf.type(tid)
        if obj.btf_ext is not None:
            parse_ext(obj.btf_ext, btf.string)


# ------------------------------------------------------------------ btf
def fuzz_btf(data: bytes) -> None:
    from pybpfload.btf import Spec

    spec = Spec.from_bytes(data, cache=False)
    _query_all(spec)
    _dump(spec)
    _round_trip(spec)


def _query_all(spec: Any) -> None:
    from pybpfload.btf import query
    from pybpfload.btf import types as T
    from pybpfload.errors import BPFError

    n = len(spec)
    names: Set[str] = set()
    for tid in range(1, n):
        t = spec.type(tid)
        spec.kind_of(tid)
        spec.name_of(tid)
        if t.name and len(names) < 32:
            names.add(t.name)
    for tid in range(0, min(n, MAX_QUERIED)):
        t = spec.type(tid)
        for q in (query.sizeof, query.alignof, query.describe, query.type_name, query.skip_modifiers, query.is_packed):
            try:
                q(spec, tid)
            except BPFError:
                pass
        if isinstance(t, T.COMPOSITES):
            try:
                fields = query.members(spec, tid)
            except BPFError:
                continue
            for fname, _f in fields[:4]:
                if fname:
                    try:
                        query.field(spec, tid, fname).offset  # noqa: B018
                    except BPFError:
                        pass
    for name in sorted(names):
        spec.find_ids(name)
        try:
            spec.find_id(name)
        except BPFError:
            pass


def _dump(spec: Any) -> None:
    from pybpfload.btf.cdump import dump_c

    dump_c(spec)


def _round_trip(spec: Any) -> None:
    from pybpfload.btf import Spec
    from pybpfload.btf.encode import Builder
    from pybpfload.errors import BPFError

    from .harness import PropertyViolation

    try:
        raw = Builder.from_spec(spec).encode()
    except BPFError:
        return  # types the encoder refuses to write (say, a name too long): a clear refusal
    again = Spec.from_bytes(raw, cache=False)
    if len(again) != len(spec):
        raise PropertyViolation(f"BTF round trip: {len(spec)} types became {len(again)}")
    for tid in range(1, len(spec)):
        a, b = spec.type(tid), again.type(tid)
        if a != b:
            raise PropertyViolation(f"BTF round trip changed type [{tid}]: {a!r} -> {b!r}")


# ------------------------------------------------------------------ btf_ext
def fuzz_btf_ext(data: bytes) -> None:
    from pybpfload.btf.relo_core import Candidates, kind_str
    from pybpfload.btf.ext import pack_func_info, pack_line_info, parse_ext
    from pybpfload.reloc.co_re import relocate

    if not data:
        return
    model, local, _ = _fixture(data[0])
    ext = parse_ext(data[1:], local.string)
    for fis in ext.func_info.values():
        pack_func_info(fis, 1)
    for lis in ext.line_info.values():
        pack_line_info(lis, 1)
        for li in lis:
            _ = (li.line_num, li.column)
    for relos in ext.core_relos.values():
        for r in relos:
            _ = (r.access_spec, kind_str(r.kind))
    if ext.core_relos:
        rel = relocate(model, local, ext, Candidates(("self", local), [("vmlinux", _state["piece"])]), strict=False)
        for rec in rel.records:
            rec.describe()


# ------------------------------------------------------------------ core
def fuzz_core(data: bytes) -> None:
    from pybpfload.btf import Spec
    from pybpfload.btf.relo_core import Candidates
    from pybpfload.reloc.co_re import relocate
    from pybpfload.cli.corecheck import _target_result

    if not data:
        return
    model, local, ext = _fixture(data[0])
    target = Spec.from_bytes(data[1:], cache=False)
    rel = relocate(model, local, ext, Candidates(("target", target), []), strict=False)
    for rec in rel.records:
        rec.describe()
        _target_result("target", rec)


# ------------------------------------------------------------------ prepare
class _StandInFd:
    """What a created map / loaded BTF holds, without a kernel object behind it."""

    closed = False

    def __init__(self, n: int) -> None:
        self.raw = self.fd = n

    def fileno(self) -> int:
        return self.raw

    def close(self) -> None:
        pass


def fuzz_prepare(data: bytes) -> None:
    from pybpfload import Object

    with Object.open_mem(data, object_name="fuzz", kconfig=KCONFIG, btf_custom_path=str(PIECE_PATH)) as obj:
        _prepare(obj)


def _prepare(obj: Any) -> None:
    """Object.load() (pybpfload/loader.py) step by step, stopping short of every syscall."""
    from pybpfload.btf import Spec
    from pybpfload.btf.fixup import BtfFeatures
    from pybpfload.btf.fixup import mark_funcs_static, needs_sanitizing, sanitize
    from pybpfload.reloc.linker import LinkedProgram, link
    from pybpfload.reloc.loader import _Load, opened_btf
    from pybpfload.reloc.struct_ops_plan import fill_prog_fds

    piece = _state["piece"]
    load = _Load(obj)
    load._kernel_btfs = lambda: iter([("vmlinux", piece)])  # type: ignore[method-assign]
    # 1. externs, struct_ops against the kernel's types
    load._resolve_externs()
    load._init_struct_ops()
    load._place_arena_globals()
    # 2. the object's BTF as it would be uploaded, for a new and an old kernel
    model = obj.model
    if model.btf_raw is not None:
        hidden = {p.name for p in model.programs if p.mark_btf_static and p.is_subprog}
        for feats in (BtfFeatures(), BtfFeatures.none()):
            b = opened_btf(model, Spec.from_bytes(model.btf_raw, cache=False))
            mark_funcs_static(b, hidden)
            if needs_sanitizing(feats):
                sanitize(b, feats)
            Spec.from_bytes(b.encode(), cache=False)
    # 3. maps "created": stand-in fds; 4-5. programs relocated, up to PROG_LOAD
    maps = list(obj.maps.values())
    try:
        for i, m in enumerate(maps):
            object.__setattr__(m, "_fd", _StandInFd(100 + i))
        load.btf_handle = _StandInFd(99)  # type: ignore[assignment]
        core_insns = load._apply_core()
        for name, prog in obj.programs.items():
            spec = obj.program_spec(name)
            if spec is None or not prog.autoload:
                continue
            if prog._insns != spec.insns:
                linked = LinkedProgram(name, prog._insns, (), ())
            else:
                linked = link(model, spec, (lambda p: core_insns.get(id(p), p.insns)) if core_insns else None)
            insns = bytearray(linked.insns)
            load._patch_refs(prog, insns, linked)
            load._fixup_helpers(insns)
            load._ext_info(linked)
            load._attach_btf(prog)
        plan = load.st_ops_plan
        if plan is not None:
            for ks in plan.maps.values():
                fill_prog_fds(ks, {p: 7 for p, _ in ks.prog_slots})
    finally:
        load.btf_handle = None
        for m in maps:
            object.__setattr__(m, "_fd", None)


TARGETS: Dict[str, Callable[[bytes], None]] = {
    "elf": fuzz_elf,
    "btf": fuzz_btf,
    "btf_ext": fuzz_btf_ext,
    "core": fuzz_core,
    "prepare": fuzz_prepare,
}


def target(name: str) -> Callable[[bytes], None]:
    setup()
    return TARGETS[name]


def seed_dir(name: str) -> Path:
    from . import SEEDS

    return SEEDS[name]


