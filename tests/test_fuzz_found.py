"""Regressions for defects fuzzing found (issue 16 item 1) and ``pybpfload core --json`` errors (issue 15 item 4).

Crafted objects live in fixtures/fuzz_regressions/ (written by its
make_fuzz_regressions.py); BTF-level inputs are built here.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

from pybpfload.abi.record import Record
from pybpfload.reloc import co_re as core
from pybpfload.btf import Spec
from pybpfload.btf import relo_core as C
from pybpfload.btf import types as T
from pybpfload.btf.cdump import CDumper, dump_c
from pybpfload.btf.encode import Builder
from pybpfload.btf.ext import CoreRelo, CoreReloKind
from pybpfload.btf.query import alignof, describe, sizeof, type_name
from pybpfload.elf.model import MapKind
from pybpfload.errors import BPFError, BTFError, RelocationError
from pybpfload.object import Object

from .conftest import FIXTURES

FUZZ = FIXTURES / "fuzz_regressions"
VMLINUX = "/sys/kernel/btf/vmlinux"
K = CoreReloKind


def _cli(*args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "pybpfload", *args], capture_output=True, text=True, timeout=300)


def _int(b: Builder) -> int:
    return b.add(T.Int(0, "int", 4, T.INT_SIGNED, 0, 32))


# ---------------------------------------------------------------- 1. describe / sizeof recursion
def _sizeless() -> Tuple[Spec, List[int]]:
    """const void, a typedef of a function prototype, a forward declaration, a typedef pointing at itself."""
    b = Builder()
    i = _int(b)
    cv = b.add(T.Const(0, "", 0))
    fp = b.add(T.FuncProto(0, "", i, (T.Param("x", i),)))
    handler = b.add(T.Typedef(0, "proc_handler", fp))
    fwd = b.add(T.Fwd(0, "opaque", False))
    cfwd = b.add(T.Const(0, "", fwd))
    loop = b.add(T.Typedef(0, "loop", 0))
    b.replace(loop, T.Typedef(0, "loop", loop))
    return b.spec(), [cv, handler, fwd, cfwd, loop]


def test_types_without_a_size_are_described_and_refused_with_their_id() -> None:
    spec, ids = _sizeless()
    cv, handler, fwd, cfwd, loop = ids
    assert describe(spec, cv) == "const void (const id 2)"
    assert describe(spec, handler) == "proc_handler (typedef id 4)"
    assert describe(spec, fwd) == "struct opaque (fwd id 5)"
    for tid in ids:
        describe(spec, tid)  # never raises
        with pytest.raises(BTFError, match=rf"BTF type {tid}\b"):
            sizeof(spec, tid)
        with pytest.raises(BTFError):
            alignof(spec, tid)
    with pytest.raises(BTFError, match=r"BTF type 4 \(proc_handler \(typedef id 4\)\) has no size"):
        sizeof(spec, handler)
    with pytest.raises(BTFError, match=rf"BTF type {loop}: reference chain too long"):
        sizeof(spec, loop)


def test_an_over_deep_typedef_chain_is_an_error_naming_the_type() -> None:
    b = Builder()
    tid = _int(b)
    for n in range(40):  # libbpf's MAX_RESOLVE_DEPTH is 32
        tid = b.add(T.Typedef(0, f"t{n}", tid))
    spec = b.spec()
    with pytest.raises(BTFError, match=rf"BTF type {tid}: reference chain too long"):
        sizeof(spec, tid)
    assert f"typedef id {tid}" in describe(spec, tid)


@pytest.mark.parametrize("name", ["externs.bpf.o", "gcc_perfbuf_emit.bpf.o"])
@pytest.mark.parametrize("fmt", ["raw", "json", "c"])
def test_btf_dump_of_objects_with_sizeless_types(name: str, fmt: str) -> None:
    r = _cli("btf", "dump", str(FIXTURES / name), "--format", fmt)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    if fmt == "json":
        assert all("description" in t for t in json.loads(r.stdout))


def test_c_dump_of_sizeless_types_and_of_a_typedef_loop() -> None:
    spec, ids = _sizeless()
    with pytest.raises(BTFError, match=rf"BTF type \[{ids[-1]}\]"):  # the self-referencing typedef
        dump_c(spec)
    d = CDumper(spec)
    text = "".join(d.dump_type(tid) for tid in ids[:-1])
    assert "typedef int proc_handler(int x);" in text and "struct opaque;" in text


@pytest.mark.skipif(not os.path.exists(VMLINUX), reason="no kernel BTF")
@pytest.mark.parametrize("kind", [K.TYPE_EXISTS, K.TYPE_SIZE, K.TYPE_MATCHES, K.TYPE_ID_TARGET])
def test_core_type_relocation_on_a_typedef_of_a_function_prototype(kind: CoreReloKind) -> None:
    """vmlinux has ~80 typedefs of function prototypes (proc_handler, bio_end_io_t...): describing the
    candidates used to recurse forever."""
    b = Builder()
    i = _int(b)
    fp = b.add(T.FuncProto(0, "", i, ()))
    td = b.add(T.Typedef(0, "proc_handler", fp))
    local = b.spec()
    targets = core.file_targets(VMLINUX)
    cands = targets.find(local, td)
    assert cands, "vmlinux has no proc_handler"
    relo = CoreRelo(0, td, 0, kind, "0")
    if kind == K.TYPE_SIZE:  # libbpf: btf__resolve_size fails, so does the relocation
        with pytest.raises(RelocationError, match=r"proc_handler.*has no size"):
            C.calc_relo_insn(relo, local, cands, "prog")
        return
    res = C.calc_relo_insn(relo, local, cands, "prog")
    assert not res.poison
    assert any("proc_handler (typedef id" in c for c in res.candidates)


@pytest.mark.skipif(not os.path.exists(VMLINUX), reason="no kernel BTF")
def test_core_check_of_a_type_exists_on_proc_handler() -> None:
    """fixtures/fuzz_regressions/core_proc_handler.bpf.c: bpf_core_type_exists(proc_handler), as libbpf: 1."""
    r = _cli("core", str(FUZZ / "core_proc_handler.bpf.o"), "--btf", VMLINUX, "--json")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    (rel,) = json.loads(r.stdout)["relocations"]
    assert rel["kind"] == "TYPE_EXISTS" and rel["results"][0]["status"] == "ok" and rel["results"][0]["value"] == 1


@pytest.mark.kernel
def test_load_with_a_type_exists_on_proc_handler() -> None:
    with Object.open(FUZZ / "core_proc_handler.bpf.o") as obj:
        obj.load()
        assert obj.programs["proc_handler_exists"].test_run(b"\0" * 64).retval == 2  # XDP_PASS


# ---------------------------------------------------------------- 2. C dump of long modifier chains
def _modifier_chain(n: int) -> Spec:
    b = Builder()
    tid = _int(b)
    kinds = (T.Const, T.Volatile, T.Restrict)
    for k in range(n):
        tid = b.add(kinds[k % 3](0, "", tid))
    return b.spec()


def _count_visits(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    visits = [0]
    orig = CDumper._order_type

    def counting(self: CDumper, tid: int, through_ptr: bool) -> int:
        visits[0] += 1
        return orig(self, tid, through_ptr)

    monkeypatch.setattr(CDumper, "_order_type", counting)
    return visits


def test_c_dump_of_chained_modifiers_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    visits = _count_visits(monkeypatch)
    n = 30_000
    spec = _modifier_chain(n)
    t0 = time.monotonic()
    assert dump_c(spec, header=False) == ""
    assert time.monotonic() - t0 < 5
    assert visits[0] <= 3 * (n + 1)  # was n * (n + 1) / 2


def test_c_dump_of_chained_arrays_and_prototypes_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    visits = _count_visits(monkeypatch)
    b = Builder()
    i = _int(b)
    tid = i
    for k in range(3000):
        if k % 3 == 0:
            tid = b.add(T.Array(0, "", tid, i, 2))
        elif k % 3 == 1:
            tid = b.add(T.FuncProto(0, "", tid, (T.Param("a", i),)))
        else:
            tid = b.add(T.TypeTag(0, "tag", tid))
    CDumper(b.spec()).dump_all()
    assert visits[0] <= 10 * len(b)


def test_c_dump_of_a_modifier_loop_is_an_error() -> None:
    b = Builder()
    c = b.add(T.Const(0, "", 0))
    v = b.add(T.Volatile(0, "", c))
    b.replace(c, T.Const(0, "", v))
    with pytest.raises(BTFError, match="loop"):
        dump_c(b.spec())


def _prototype_dag(depth: int, through_pointers: bool) -> Tuple[Builder, int]:
    """Prototypes whose return and parameters are the previous prototype (or a pointer to it): 3**depth paths."""
    b = Builder()
    cur = _int(b)
    for _ in range(depth):
        ref = b.add(T.Pointer(0, "", cur)) if through_pointers else cur
        cur = b.add(T.FuncProto(0, "", ref, (T.Param("a", ref), T.Param("b", ref))))
    return b, cur


@pytest.mark.parametrize("through_pointers", [False, True])
def test_prototypes_of_prototypes_are_refused_not_spelled_out(through_pointers: bool) -> None:
    """The spelling of such a type is exponential in its depth: describe and the C dump give up early."""
    b, proto = _prototype_dag(15 if through_pointers else 30, through_pointers)  # within the 32-level bound
    b.add(T.Typedef(0, "td", proto))
    ptr = b.add(T.Pointer(0, "", proto))
    b.add(T.Struct(0, "holder", 8, (T.Member("f", ptr, 0, 0),)))  # ordered through a pointer
    spec = b.spec()
    t0 = time.monotonic()
    assert describe(spec, proto).endswith(f"(func_proto id {proto})")
    with pytest.raises(BTFError, match="too complex to spell"):
        type_name(spec, proto)
    with pytest.raises(BTFError, match=r"too large to write out|types to walk"):
        dump_c(spec)
    assert time.monotonic() - t0 < 10
    small, sproto = _prototype_dag(3, through_pointers)
    small.add(T.Typedef(0, "td", sproto))
    assert "typedef" in dump_c(small.spec())


# ---------------------------------------------------------------- 3. TYPE_MATCHES on nested anonymous members
def _nested_anon(depth: int, fanout: int, leaf: str) -> Tuple[Spec, int]:
    """struct root { struct { struct { ... struct { int <leaf>; } } } } with ``fanout`` anonymous members a level."""
    b = Builder()
    i = _int(b)
    cur = b.add(T.Struct(0, "", 4, (T.Member(leaf, i, 0, 0),)))
    for d in range(depth):
        name = "root" if d == depth - 1 else ""
        cur = b.add(T.Struct(0, name, 4, tuple(T.Member("", cur, 0, 0) for _ in range(fanout))))
    return b.spec(), cur


def test_types_match_on_nested_anonymous_members_is_not_exponential(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = [0]
    orig = C._TypesMatch._match

    def counting(self: Any, *a: Any) -> Any:
        calls[0] += 1
        return orig(self, *a)

    monkeypatch.setattr(C._TypesMatch, "_match", counting)
    depth = 24  # 2**24 tries without memoisation
    local, lroot = _nested_anon(depth, 1, "missing")
    target, troot = _nested_anon(depth, 2, "other")
    t0 = time.monotonic()
    assert C.types_match(local, lroot, target, troot) is False
    assert time.monotonic() - t0 < 5
    assert calls[0] <= 2 * depth + 2
    same, sroot = _nested_anon(depth, 2, "missing")
    assert C.types_match(local, lroot, same, sroot) is True


def test_types_match_depth_bound_as_libbpf() -> None:
    """libbpf gives up (an error, not a mismatch) past 32 levels of members; remembered results keep that."""
    local, lroot = _nested_anon(30, 1, "x")  # the int member 31 levels below the root
    target, troot = _nested_anon(30, 2, "x")
    assert C.types_match(local, lroot, target, troot) is True
    local, lroot = _nested_anon(31, 1, "x")
    target, troot = _nested_anon(31, 2, "x")
    with pytest.raises(C._Fail, match="too deep"):
        C.types_match(local, lroot, target, troot)
    relo = CoreRelo(0, lroot, 0, K.TYPE_MATCHES, "0")
    with pytest.raises(RelocationError, match="too deep"):
        C.calc_relo_insn(relo, local, [C.Candidate(target, troot, "target")], "prog")


def test_types_match_remembered_results_respect_the_depth_left() -> None:
    """A pair first matched high up and met again 31 levels down fails there, as in libbpf."""
    b = Builder()
    i = _int(b)
    leaf = b.add(T.Struct(0, "leaf", 4, (T.Member("v", i, 0, 0),)))
    cur = leaf
    for _ in range(30):
        cur = b.add(T.Struct(0, "", 4, (T.Member("n", cur, 0, 0),)))
    root = b.add(T.Struct(0, "root", 8, (T.Member("a", leaf, 0, 0), T.Member("b", cur, 32, 0))))
    spec = b.spec()
    with pytest.raises(C._Fail, match="too deep"):
        C.types_match(spec, root, spec, root)
    assert C.types_match(spec, cur, spec, cur) is True  # 31 levels fit


@pytest.mark.parametrize("leaf", ["other", "wanted"])
def test_field_relocation_through_shared_anonymous_members_is_not_exponential(leaf: str) -> None:
    """Searching a member through anonymous members reached by many paths (2**26 here) walks each once."""
    lb = Builder()
    li = _int(lb)
    lroot = lb.add(T.Struct(0, "root", 4, (T.Member("wanted", li, 0, 0),)))
    local = lb.spec()
    target, troot = _nested_anon(26, 2, leaf)
    relo = CoreRelo(0, lroot, 0, K.FIELD_BYTE_OFFSET, "0:0")
    t0 = time.monotonic()
    res = C.calc_relo_insn(relo, local, [C.Candidate(target, troot, "target")], "prog")
    assert time.monotonic() - t0 < 5
    if leaf == "other":
        assert res.target is None and res.poison
    else:
        assert res.target is not None and not res.poison and res.new_val == 0
        assert list(res.target.raw) == [0] * 28  # root, 26 anonymous levels, the member


def test_type_relocation_on_prototypes_sharing_parameters_is_not_exponential() -> None:
    """types_are_compat (TYPE_EXISTS) compares each pair of prototypes once, as types_match does."""
    b, proto = _prototype_dag(15, through_pointers=True)  # 3**15 paths, 30 levels: within the bounds
    td = b.add(T.Typedef(0, "callback_t", proto))
    spec = b.spec()
    t0 = time.monotonic()
    assert C.types_are_compat(spec, td, spec, td) is True
    for kind in (K.TYPE_EXISTS, K.TYPE_MATCHES):
        res = C.calc_relo_insn(CoreRelo(0, td, 0, kind, "0"), spec, [C.Candidate(spec, td, "target")], "prog")
        assert res.new_val == 1
    assert time.monotonic() - t0 < 5
    deeper, dproto = _prototype_dag(17, through_pointers=True)  # past libbpf's chain bound: an error, as before
    dspec = deeper.spec()
    with pytest.raises(C._Fail, match="too deep"):
        C.types_are_compat(dspec, dproto, dspec, dproto)


# ---------------------------------------------------------------- 4. a huge .bss
def _big_bytes(objs: Any, limit: int = 64 << 20) -> List[str]:
    """Paths of bytes-like values over ``limit`` bytes reachable through dataclass/list/tuple/dict fields."""
    found: List[str] = []
    seen = set()

    def walk(x: Any, path: str, depth: int) -> None:
        if id(x) in seen or depth > 6:
            return
        seen.add(id(x))
        if isinstance(x, (bytes, bytearray, memoryview)):
            if len(x) > limit:
                found.append(path)
            return
        if isinstance(x, (list, tuple)):
            for k, v in enumerate(x):
                walk(v, f"{path}[{k}]", depth + 1)
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{path}[{k!r}]", depth + 1)
        elif hasattr(x, "__dataclass_fields__") or isinstance(x, Record):
            for f in getattr(x, "__dataclass_fields__", None) or x._fields:
                walk(getattr(x, f, None), f"{path}.{f}", depth + 1)

    walk(objs, "model", 0)
    return found


@pytest.fixture
def traced() -> Iterator[None]:
    gc.collect()
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def test_a_1gib_bss_is_not_materialised_by_the_parser(traced: None) -> None:
    obj = Object.open(FUZZ / "bss_1gib.bpf.o")
    try:
        bss = next(ms for ms in obj.model.maps if ms.kind is MapKind.BSS)
        assert bss.value_size == 1 << 30 and bss.initial_value is None
        assert _big_bytes(obj.model) == []
    finally:
        obj.close()


@pytest.mark.kernel
def test_loading_a_1gib_bss_uploads_nothing(traced: None) -> None:
    """The kernel zero-fills a new array map: load neither copies nor uploads the .bss image."""
    with Object.open(FUZZ / "bss_1gib.bpf.o") as obj:
        gc.collect()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            obj.load()
        except BPFError as e:  # a kernel may refuse a 1 GiB value: a clean error then
            assert "Traceback" not in str(e)
        peak = tracemalloc.get_traced_memory()[1]
        assert peak - base < 64 << 20, f"load allocated {(peak - base) >> 20} MiB"


@pytest.mark.kernel
def test_a_1gib_bss_holds_no_memory_from_open_to_close(traced: None) -> None:
    obj = Object.open(FUZZ / "bss_1gib.bpf.o")
    try:
        try:
            obj.load()
        except BPFError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        obj.close()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    assert peak < 128 << 20 and held < 64 << 20, f"peak {peak >> 20} MiB, held after close {held >> 20} MiB"


# ---------------------------------------------------------------- 5. a program name that is not UTF-8
@pytest.mark.kernel
def test_a_program_name_the_kernel_refuses_is_reported_as_such() -> None:
    with Object.open(FUZZ / "prog_name_not_utf8.bpf.o") as obj:
        (name,) = obj.programs
        with pytest.raises(BPFError) as ei:
            obj.load()
        msg = str(ei.value)
        assert "invalid program name" in msg and "not UTF-8" in msg
        assert ascii(name) in msg and "verifier log is empty" not in msg
        assert getattr(ei.value, "errno", None) == 22  # EINVAL, as the kernel (and libbpf) say
        assert not any(m.created for m in obj.maps.values())  # refused before any syscall


@pytest.mark.kernel
def test_the_load_command_says_the_program_name_is_invalid(tmp_path: Path) -> None:
    r = _cli("load", str(FUZZ / "prog_name_not_utf8.bpf.o"), "/sys/fs/bpf/pybpfload_fuzz_found_never_made")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "invalid program name" in r.stderr and "xdp\\ufffdcount" in r.stderr


# ---------------------------------------------------------------- 6-7. pybpfload core: unreadable inputs, --json
def test_core_with_an_unreadable_target_btf_is_not_portable() -> None:
    for obj in ("xdp_count.bpf.o", "core_fields.bpf.o"):  # without and with CO-RE relocations
        r = _cli("core", str(FIXTURES / obj), "--btf", "/nonexistent")
        assert r.returncode == 1, r.stdout
        assert "portable: every" not in r.stdout and "NOT portable" in r.stdout
        assert "/nonexistent" in r.stdout and "No such file" in r.stdout
        r = _cli("core", str(FIXTURES / obj), "--btf", "/nonexistent", "--json")
        assert r.returncode == 1
        data = json.loads(r.stdout)
        assert data["portable"] is False and data["errors"][0]["btf"] == "/nonexistent"


def test_core_with_a_directory_as_target_btf() -> None:
    r = _cli("core", str(FIXTURES / "core_fields.bpf.o"), "--btf", str(FIXTURES), "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "Is a directory" in json.loads(r.stdout)["errors"][0]["error"]


@pytest.mark.parametrize("obj", ["/nonexistent.bpf.o", str(FIXTURES / "malformed" / "not_elf.o")])
def test_core_json_when_the_object_cannot_be_opened(obj: str) -> None:
    r = _cli("core", obj, "--btf", str(FIXTURES / "core_target_a.bpf.o"), "--json")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    data = json.loads(r.stdout)
    assert data["portable"] is False and data["object"] == obj and data["error"]
    r = _cli("core", obj, "--btf", str(FIXTURES / "core_target_a.bpf.o"))
    assert r.returncode == 2 and r.stdout.startswith("pybpfload core: ")


REGRESSIONS = Path(__file__).resolve().parent.parent / "fuzz" / "regressions"


@pytest.mark.parametrize("name", ["kconfig-values-a4564163d6a5", "set-value-2006a4d14e80"])
def test_a_kconfig_claiming_192mib_is_refused_at_open(name: str, traced: None) -> None:
    """kconfig_only.bpf.o whose CONFIG_DEFAULT_HOSTNAME is a char[201326592]: the load built
    that image (three copies: a MemoryError under the fuzzer's cap). Refused at open now,
    naming .kconfig, before anything is allocated."""
    data = (REGRESSIONS / "prepare" / f"memoryerror-pybpfload-reloc-extern-values-{name}").read_bytes()
    with pytest.raises(BPFError, match=r"\.kconfig externs take 201326605 bytes, more than an array map value can hold"):
        Object.open_mem(data)
    assert tracemalloc.get_traced_memory()[1] < 16 << 20


def test_a_kconfig_string_is_written_with_its_nul_only() -> None:
    """As libbpf's set_kcfg_value_str: the string and one NUL; the rest of the array is the
    image's zeros, never a padding copy the size of the array."""
    from pybpfload.elf.model import ExternKind
    from pybpfload.reloc.extern_values import kconfig_values

    obj = Object.open(FIXTURES / "kconfig_only.bpf.o")
    host = next(e for e in obj.model.externs if e.name == "CONFIG_DEFAULT_HOSTNAME")
    assert host.kind is ExternKind.KCONFIG and host.kcfg_size > 8
    size = host.kcfg_offset + host.kcfg_size
    image = kconfig_values([host], size, config_text=lambda: 'CONFIG_DEFAULT_HOSTNAME="ab"\n')
    assert image[host.kcfg_offset : host.kcfg_offset + host.kcfg_size] == b"ab" + bytes(host.kcfg_size - 2)
    long = "x" * (host.kcfg_size + 5)
    image = kconfig_values([host], size, config_text=lambda: f'CONFIG_DEFAULT_HOSTNAME="{long}"\n')
    assert image[host.kcfg_offset : host.kcfg_offset + host.kcfg_size] == b"x" * (host.kcfg_size - 1) + b"\0"
