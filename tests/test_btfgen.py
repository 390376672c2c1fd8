"""BTFGen (issue 21): ``pybpfload gen min-core-btf`` / :mod:`pybpfload.reloc.btfgen` against bpftool 7.1's
``gen min_core_btf``, the CO-RE results it gives, and loading with it as ``btf_custom_path``.

- differential: for each CO-RE fixture (alone and several at once), against the running kernel's BTF
  and against the core_target_a / core_target_b fixtures' BTF, the same types, members, enum values and
  sizes as bpftool's output (modulo order and ids: compared on bpftool's own JSON dump of both files),
  and in fact the same bytes;
- without bpftool: what each relocation kind keeps, on fixed fixtures (golden), and the CO-RE results
  against the minimized BTF equal to those against the full one (pure, every kernel);
- kernel: each fixture loaded with ``btf_custom_path`` = the minimized BTF and with the kernel's own
  BTF gives the same CO-RE results and the same program tags (but for bpf_core_type_id_kernel, whose
  value is a type id of the BTF used: compared by what the ids name);
- bad input: clear pybpfload errors, one-line CLI messages, exit status 1 (2 for usage).
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest

from pybpfload import BPFError, BTFError, ELFError, Object
from pybpfload.btf import Spec
from pybpfload.btf import types as T
from pybpfload.btf.ext import CoreReloKind, parse_ext
from pybpfload.reloc import btfgen
from pybpfload.reloc.btfgen import BTFGen, generate, minimize, read_btf, read_object
from pybpfload.reloc.co_re import ObjectRelocation, file_targets, last_relocation, relocate

from .conftest import FIXTURES, ROOT

VMLINUX = "/sys/kernel/btf/vmlinux"
BPFTOOL = shutil.which("bpftool")
HAVE_VMLINUX = os.path.exists(VMLINUX)

needs_bpftool = pytest.mark.skipif(BPFTOOL is None, reason="bpftool (the oracle) is not installed")
needs_vmlinux = pytest.mark.skipif(not HAVE_VMLINUX, reason="no kernel BTF")

# CO-RE fixtures relocated against the kernel, and those written against core_target_{a,b}'s BTF
KERNEL_OBJS = ("btfgen_kernel", "btfgen_kernel_matches", "core_task", "btf_core", "typed_execsnoop")
TARGET_OBJS = ("core_fields", "core_types", "core_types_matches")
TARGETS = ("core_target_a", "core_target_b")


def _obj(name: str) -> str:
    return str(FIXTURES / f"{name}.bpf.o")


def _cases() -> List[Tuple[str, Tuple[str, ...]]]:
    out: List[Tuple[str, Tuple[str, ...]]] = [(VMLINUX, (o,)) for o in KERNEL_OBJS + ("xdp_count",)]
    out.append((VMLINUX, ("btfgen_kernel", "core_task", "btf_core", "btfgen_kernel_matches")))
    for t in TARGETS:
        out.extend((_obj(t), (o,)) for o in TARGET_OBJS)
        out.append((_obj(t), TARGET_OBJS))
    return out


CASES = _cases()


def _case_id(case: Tuple[str, Tuple[str, ...]]) -> str:
    src, objs = case
    return f"{Path(src).name.replace('.bpf.o', '')}-{'+'.join(objs)}"


# ---------------------------------------------------------------- comparing BTF files
def _bpftool_types(path: Path) -> Dict[int, Dict[str, Any]]:
    assert BPFTOOL is not None
    out = subprocess.run([BPFTOOL, "-j", "btf", "dump", "file", str(path)], capture_output=True, text=True, check=True).stdout
    return {t["id"]: t for t in json.loads(out)["types"]}


_REF_KEYS = ("type_id", "ret_type_id", "index_type_id")


def _canonical(types: Dict[int, Dict[str, Any]]) -> Counter:
    """Every type as what it says, ids replaced by what they name (named types by kind, name and size;
    anonymous ones spelled out): a multiset, equal for two BTFs that differ only in order."""

    def ref(tid: int) -> Any:
        if tid == 0:
            return "void"
        t = types[tid]
        if t.get("name", "(anon)") != "(anon)":
            return [t["kind"], t["name"], t.get("size")]
        return body(t)

    def body(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (ref(x) if k in _REF_KEYS else body(x)) for k, x in v.items() if k != "id"}
        if isinstance(v, list):
            return [body(x) for x in v]
        return v

    return Counter(json.dumps(body(t), sort_keys=True) for t in types.values())


def _bpftool_min(tmp: Path, src: str, objs: Sequence[str]) -> Path:
    assert BPFTOOL is not None
    out = tmp / "bpftool.btf"
    subprocess.run([BPFTOOL, "gen", "min_core_btf", src, str(out), *map(_obj, objs)], check=True, capture_output=True)
    return out


def _needs_source(src: str) -> None:
    if not os.path.exists(src):
        pytest.skip(f"no {src}")


# ---------------------------------------------------------------- against bpftool
@needs_bpftool
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_same_types_and_members_as_bpftool(case: Tuple[str, Tuple[str, ...]], tmp_path: Path) -> None:
    src, objs = case
    _needs_source(src)
    ref = _bpftool_min(tmp_path, src, objs)
    ours = tmp_path / "ours.btf"
    ours.write_bytes(minimize(src, [_obj(o) for o in objs]))
    want, got = _canonical(_bpftool_types(ref)), _canonical(_bpftool_types(ours))
    assert got == want, f"only ours: {sorted((got - want).elements())[:5]}\nonly bpftool's: {sorted((want - got).elements())[:5]}"
    # and, kept in bpftool's order with its string table, the very same file
    assert ours.read_bytes() == ref.read_bytes()


@needs_bpftool
def test_the_comparison_sees_a_missing_member(tmp_path: Path) -> None:
    """The differential check can fail: one member fewer in a kept struct is a difference."""
    src = _obj("core_target_a")
    ref = _bpftool_min(tmp_path, src, ("core_fields",))
    gen = BTFGen(read_btf(src), src)
    gen.add(read_object(_obj("core_fields")))
    sid = next(t for t in gen.types if gen.source.name_of(t) == "core_s")
    gen.members[sid].discard(max(gen.members[sid]))
    ours = tmp_path / "ours.btf"
    ours.write_bytes(gen.encode())
    assert _canonical(_bpftool_types(ours)) != _canonical(_bpftool_types(ref))


@needs_bpftool
def test_cli_writes_what_bpftool_writes(tmp_path: Path) -> None:
    objs = ("core_fields", "core_types")
    src = _obj("core_target_b")
    ref = _bpftool_min(tmp_path, src, objs)
    out = tmp_path / "out.btf"
    r = _cli("gen", "min-core-btf", *map(_obj, objs), "--btf", src, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert r.stdout == f"{out}: {len(_bpftool_types(ref))} types, {len(ref.read_bytes())} bytes\n"


@needs_bpftool
@needs_vmlinux
def test_object_without_core_relocations_gives_empty_btf_as_bpftool(tmp_path: Path) -> None:
    ref = _bpftool_min(tmp_path, VMLINUX, ("xdp_count",))
    data = minimize(VMLINUX, [_obj("xdp_count")])
    assert data == ref.read_bytes()
    assert len(Spec.from_bytes(data)) == 1  # void only


# ---------------------------------------------------------------- what is kept (no bpftool needed)
def _kept(data: bytes) -> Dict[Tuple[str, str], Any]:
    """(kind, name) -> member names (struct/union), enumerator names (enum) or None, for named types."""
    spec = Spec.from_bytes(data)
    out: Dict[Tuple[str, str], Any] = {}
    for t in spec:
        if not t.name:
            continue
        key = (t.kind.name, t.name)
        if isinstance(t, T.COMPOSITES):
            out[key] = [m.name for m in t.members]
        elif isinstance(t, T.ENUMS):
            out[key] = [v.name for v in t.values]
        else:
            out[key] = None
    return out


def test_field_relocations_keep_the_members_taken() -> None:
    kept = _kept(minimize(_obj("core_target_a"), [_obj("core_fields")]))
    assert kept[("STRUCT", "core_s")] == [
        "c", "b", "", "a", "in", "grid", "arr", "bf_s5", "bf_u3", "bf_u33", "bf_s12", "gone", "narrow", "tail",
    ]
    assert kept[("STRUCT", "core_inner")] == ["y", "x"]
    assert kept[("STRUCT", "core_flav")] == ["new_name", "common"]
    spec = Spec.from_bytes(minimize(_obj("core_target_a"), [_obj("core_fields")]))
    s = spec.find("core_s", T.Struct)
    bits = {m.name: (m.bit_offset, m.bitfield_size) for m in s.members}
    assert bits["bf_s5"] == (968, 7) and bits["bf_u33"] == (980, 35) and s.kflag  # bitfields as in the source
    anon = spec.type(next(m.type for m in s.members if not m.name))
    assert isinstance(anon, T.Struct) and [m.name for m in anon.members] == ["", "anon_x"]  # through anonymous members


def test_type_relocations_keep_types_without_members() -> None:
    kept = _kept(minimize(_obj("core_target_a"), [_obj("core_types")]))
    assert kept == {
        ("STRUCT", "core_s"): [],
        ("INT", "int"): None,
        ("ENUM", "core_e"): ["CORE_E_B", "CORE_E_A"],  # enum value relocations: the enum whole
        ("ENUM", "core_e_gone"): ["CORE_GONE_X"],
        ("TYPEDEF", "core_s_t"): None,
        ("STRUCT", "core_tm"): [],
        ("STRUCT", "core_tm_bad"): [],
        ("UNION", "core_u"): [],
        ("TYPEDEF", "core_fn_t"): None,  # its pointer and prototype followed: int (*)(int, struct core_s *)
    }


def test_type_matches_keeps_every_member_but_not_behind_pointers() -> None:
    kept = _kept(minimize(_obj("core_target_a"), [_obj("core_types_matches")]))
    assert kept[("STRUCT", "core_tm")] == ["x", "y"]
    assert kept[("UNION", "core_u")] == ["i", "c"]
    assert kept[("STRUCT", "core_s")] == []  # only behind core_fn_t's pointer parameter
    assert ("STRUCT", "core_tm_bad") not in kept  # does not match: nothing kept for it


@needs_vmlinux
def test_kernel_pointers_not_followed_become_void() -> None:
    spec = Spec.from_bytes(minimize(VMLINUX, [_obj("btfgen_kernel")]))
    task = spec.find("task_struct", T.Struct)
    members = {m.name: m for m in task.members}
    assert {"pid", "tgid", "usage", "sched_reset_on_fork", "real_parent", "mm", "signal", "files", "comm"} <= set(members)
    assert len(task.members) <= 10  # task_struct has hundreds
    files = spec.type(members["files"].type)
    assert isinstance(files, T.Pointer) and files.type == 0  # read, never followed: void *
    parent = spec.type(members["real_parent"].type)
    assert isinstance(parent, T.Pointer) and spec.type(parent.type).name == "task_struct"
    assert members["sched_reset_on_fork"].bitfield_size == 1
    enum = spec.find("pid_type", T.Enum)
    assert "PIDTYPE_TGID" in [v.name for v in enum.values]
    assert spec.find_ids("bpf_map")  # bpf_core_type_exists: kept without members
    assert not spec.find("bpf_map", T.Struct).members


def test_fwd_and_type_tag_kept_where_bpftool_refuses() -> None:
    """bpftool stops with "unsupported kind" on a FWD behind a typedef or a TYPE_TAG; we keep them."""
    from pybpfload.btf.encode import Builder
    from pybpfload.btf.relo_core import CoreSpec

    b = Builder()
    i = b.add(T.Int(0, "int", 4, T.INT_SIGNED, 0, 32))
    fwd = b.add(T.Fwd(0, "opaque", False))
    td = b.add(T.Typedef(0, "opaque_t", fwd))
    tag = b.add(T.TypeTag(0, "rcu", i))
    s = b.add(T.Struct(0, "s", 8, (T.Member("o", td, 0, 0), T.Member("t", tag, 32, 0))))
    spec = b.spec()
    gen = BTFGen(spec)
    gen.mark_field(CoreSpec(spec, s, CoreReloKind.FIELD_BYTE_OFFSET, (0, 0)))
    gen.mark_field(CoreSpec(spec, s, CoreReloKind.FIELD_BYTE_OFFSET, (0, 1)))
    gen.mark_type(td, True)
    assert gen.types == {i, fwd, td, tag, s}
    out = Spec.from_bytes(gen.encode())
    assert [m.name for m in out.find("s", T.Struct).members] == ["o", "t"]
    assert isinstance(out.type(out.find_id("opaque")), T.Fwd)


def test_split_btf_is_refused() -> None:
    from pybpfload.btf.encode import Builder

    base = Builder()
    base.add(T.Int(0, "int", 4, T.INT_SIGNED, 0, 32))
    split = Builder(base=base.spec())
    split.add(T.Pointer(0, "", 1))
    with pytest.raises(BTFError, match="split BTF"):
        BTFGen(split.spec())


# ---------------------------------------------------------------- same CO-RE results (pure)
def _relocate(obj_path: str, target: str) -> Tuple[ObjectRelocation, Spec]:
    with Object.open(obj_path) as obj:
        assert obj.btf is not None and obj.btf_ext is not None
        ext = parse_ext(obj.btf_ext, obj.btf.string)
        targets = file_targets(target)
        return relocate(obj.model, obj.btf, ext, targets, strict=False), targets.main[1]


def _names(spec: Spec, tid: int) -> Tuple[str, str]:
    t = spec.type(tid)
    return t.kind.name, t.name


def _same_results(full: Tuple[ObjectRelocation, Spec], small: Tuple[ObjectRelocation, Spec]) -> None:
    (a, a_btf), (b, b_btf) = full, small
    assert len(a.records) == len(b.records)
    type_id_insns = set()
    for x, y in zip(a.records, b.records):
        where = f"{x.function} insn #{x.insn} {x.relo.kind.name} {x.relo.access}"
        assert (x.function, x.insn, x.relo) == (y.function, y.insn, y.relo)
        assert (x.error, x.poisoned) == (y.error, y.poisoned), where
        if x.result is None or y.result is None:
            assert x.result is y.result, where
            continue
        assert (x.result.poison, x.result.resolved, x.result.new_sz, x.result.fail_memsz_adjust) == (
            y.result.poison, y.result.resolved, y.result.new_sz, y.result.fail_memsz_adjust), where
        if x.relo.kind == CoreReloKind.TYPE_ID_TARGET and x.result.new_val:
            # an id of the BTF used: the minimized BTF's differs, the type it names does not
            assert _names(a_btf, x.result.new_val) == _names(b_btf, y.result.new_val), where
            type_id_insns.add((x.function, x.insn))
        else:
            assert x.result.new_val == y.result.new_val, where
    # the relocated instructions: the same but where a kernel type id went
    a_code, b_code = _code_by_function(a), _code_by_function(b)
    assert a_code.keys() == b_code.keys()
    for fn, code in a_code.items():
        other = b_code[fn]
        assert len(code) == len(other)
        diff = {i // 8 for i in range(0, len(code), 8) if code[i : i + 8] != other[i : i + 8]}
        assert diff <= {insn for f, insn in type_id_insns if f == fn}, fn


def _code_by_function(rel: ObjectRelocation) -> Dict[str, bytes]:
    names = {r.spec_id: r.function for r in rel.records}
    return {names[sid]: code for sid, code in rel.insns.items()}


PURE_CASES = [(VMLINUX, o) for o in KERNEL_OBJS] + [(_obj(t), o) for t in TARGETS for o in TARGET_OBJS]


@pytest.mark.parametrize("case", PURE_CASES, ids=[f"{Path(s).name.replace('.bpf.o', '')}-{o}" for s, o in PURE_CASES])
def test_same_core_results_against_the_minimized_btf(case: Tuple[str, str], tmp_path: Path) -> None:
    src, name = case
    _needs_source(src)
    small = tmp_path / "min.btf"
    small.write_bytes(minimize(src, [_obj(name)]))
    _same_results(_relocate(_obj(name), src), _relocate(_obj(name), str(small)))


def test_the_results_check_sees_a_missing_member(tmp_path: Path) -> None:
    """Minimized BTF missing one member gives other CO-RE results, and the check says so."""
    src = _obj("core_target_a")
    gen = BTFGen(read_btf(src), src)
    gen.add(read_object(_obj("core_fields")))
    sid = next(t for t in gen.types if gen.source.name_of(t) == "core_s")
    gen.members[sid].discard(min(gen.members[sid]))
    small = tmp_path / "min.btf"
    small.write_bytes(gen.encode())
    with pytest.raises(AssertionError):
        _same_results(_relocate(_obj("core_fields"), src), _relocate(_obj("core_fields"), str(small)))


# ---------------------------------------------------------------- loading with it (kernel)
def _load(path: str, custom: Optional[str]) -> Tuple[Dict[str, str], ObjectRelocation]:
    with Object.open(path, btf_custom_path=custom) as obj:
        obj.load()
        tags = {name: p.info().tag for name, p in obj.programs.items() if p.loaded}
        rel = last_relocation(obj)
        assert rel is not None
        return tags, rel


def _uses_type_ids(rel: ObjectRelocation) -> set:
    return {r.function for r in rel.records if r.relo.kind == CoreReloKind.TYPE_ID_TARGET}


LOAD_CASES = [(None, o) for o in KERNEL_OBJS if o != "typed_execsnoop"] + [(t, o) for t in TARGETS for o in TARGET_OBJS]


@pytest.mark.kernel
@pytest.mark.parametrize("case", LOAD_CASES, ids=[f"{t or 'vmlinux'}-{o}" for t, o in LOAD_CASES])
def test_loading_with_the_minimized_btf_gives_the_same_programs(case: Tuple[Optional[str], str], tmp_path: Path) -> None:
    """Loaded against the kernel's BTF (or core_target_X's) and against its minimized form: the same
    relocated instructions, so the same program tags (TYPE_ID_TARGET results aside)."""
    target, name = case
    src = VMLINUX if target is None else _obj(target)
    _needs_source(src)
    small = tmp_path / "min.btf"
    small.write_bytes(minimize(src, [_obj(name)]))
    full_tags, full_rel = _load(_obj(name), None if target is None else src)
    small_tags, small_rel = _load(_obj(name), str(small))
    full_btf = read_btf(src)
    _same_results((full_rel, full_btf), (small_rel, read_btf(small)))
    assert full_tags.keys() == small_tags.keys() and full_tags
    with_ids = _uses_type_ids(full_rel)
    for prog, tag in full_tags.items():
        if prog not in with_ids:
            assert small_tags[prog] == tag, prog
    if name == "btfgen_kernel":
        assert with_ids == {"btfgen_ids"} and full_tags["btfgen_fields"] == small_tags["btfgen_fields"]


# ---------------------------------------------------------------- bad input
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpfload", *args], capture_output=True, text=True, cwd=ROOT)


def _one_line_error(r: subprocess.CompletedProcess, code: int = 1) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("pybpfload")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_missing_source_btf(tmp_path: Path) -> None:
    with pytest.raises(BTFError, match="No such file"):
        generate([_obj("core_task")], tmp_path / "nope", tmp_path / "out")
    line = _one_line_error(_cli("gen", "min-core-btf", _obj("core_task"), "--btf", str(tmp_path / "nope"), "-o", str(tmp_path / "o")))
    assert "No such file or directory" in line and "nope" in line
    assert not (tmp_path / "o").exists()


def test_source_that_is_not_btf(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("not BTF at all, but long enough for a BTF header\n")
    with pytest.raises(BTFError, match="not BTF"):
        minimize(str(bad), [_obj("core_task")])
    with pytest.raises(BTFError, match="no .BTF section"):
        read_btf(FIXTURES / "uprobe_target")  # an ELF file without BTF
    line = _one_line_error(_cli("gen", "min-core-btf", _obj("core_task"), "--btf", str(bad), "-o", str(tmp_path / "o")))
    assert f"{bad}: not BTF: bad BTF magic" in line


def test_object_errors(tmp_path: Path) -> None:
    with pytest.raises(BTFError, match=r"no \.BTF\.ext section"):  # bpftool: "section .BTF.ext not found"
        read_object(_obj("core_target_a"))
    with pytest.raises(ELFError, match="not an ELF object"):
        read_object(ROOT / "README.md")
    with pytest.raises(BPFError, match="cannot read BPF object"):
        read_object(tmp_path / "nope.o")
    for obj, what in ((_obj("core_target_a"), ".BTF.ext"), (str(ROOT / "README.md"), "not an ELF"), (str(tmp_path / "nope.o"), "cannot read")):
        line = _one_line_error(_cli("gen", "min-core-btf", obj, "-o", str(tmp_path / "o")))
        assert what in line
    assert not (tmp_path / "o").exists()


def test_object_without_core_relocations_is_noted(tmp_path: Path) -> None:
    r = _cli("gen", "min-core-btf", _obj("xdp_count"), "--btf", _obj("core_target_a"), "-o", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert "has no CO-RE relocations" in r.stderr
    assert len(Spec.from_bytes((tmp_path / "o").read_bytes())) == 1


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    r = _cli("gen", "min-core-btf", _obj("core_task"))  # no -o
    assert r.returncode == 2 and "Traceback" not in r.stderr and "-o/--output" in r.stderr
    r = _cli("gen", "min-core-btf", "-o", str(tmp_path / "o"))  # no object
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_unwritable_output(tmp_path: Path) -> None:
    line = _one_line_error(_cli("gen", "min-core-btf", _obj("core_fields"), "--btf", _obj("core_target_a"), "-o", str(tmp_path / "no" / "such" / "x")))
    assert "cannot write" in line


# ---------------------------------------------------------------- fleets: a directory of BTFs
def _fleet(tmp_path: Path) -> Path:
    """core_target_a and _b as a BTFHub-like tree: raw BTF, an ELF object, a .btf.tar.xz archive."""
    fleet = tmp_path / "fleet"
    (fleet / "distro" / "1.0" / "x86_64").mkdir(parents=True)
    (fleet / "distro" / "2.0" / "x86_64").mkdir(parents=True)
    (fleet / "distro" / "1.0" / "x86_64" / "5.10.0-a.btf").write_bytes(read_btf(_obj("core_target_a")).raw)
    shutil.copy(_obj("core_target_b"), fleet / "distro" / "2.0" / "x86_64" / "6.1.0-b.o")
    member = tmp_path / "6.1.0-c.btf"
    member.write_bytes(read_btf(_obj("core_target_b")).raw)
    with tarfile.open(fleet / "distro" / "2.0" / "x86_64" / "6.1.0-c.btf.tar.xz", "w:xz") as tf:
        tf.add(member, arcname="./6.1.0-c.btf")
    (fleet / "README").write_text("these are kernels' BTF\n")
    return fleet


@pytest.mark.parametrize("jobs", [1, 2])
def test_fleet_directory(tmp_path: Path, jobs: int) -> None:
    fleet, out = _fleet(tmp_path), tmp_path / "out"
    r = _cli("gen", "min-core-btf", _obj("core_fields"), _obj("core_types"), "--btf", str(fleet), "-o", str(out), "-j", str(jobs))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == f"pybpfload: skipped {fleet / 'README'}: not BTF"
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["distro/1.0/x86_64/5.10.0-a.btf", "distro/2.0/x86_64/6.1.0-b.o", "distro/2.0/x86_64/6.1.0-c.btf"]
    assert r.stdout.splitlines()[-1] == f"3 of 3 BTF files minimized into {out}"
    objs = [_obj("core_fields"), _obj("core_types")]
    a, b = minimize(_obj("core_target_a"), objs), minimize(_obj("core_target_b"), objs)
    assert (out / "distro/1.0/x86_64/5.10.0-a.btf").read_bytes() == a
    assert (out / "distro/2.0/x86_64/6.1.0-b.o").read_bytes() == b
    assert (out / "distro/2.0/x86_64/6.1.0-c.btf").read_bytes() == b
    # and each loads as btf_custom_path with the same results as its source
    _same_results(_relocate(_obj("core_fields"), _obj("core_target_a")),
                  _relocate(_obj("core_fields"), str(out / "distro/1.0/x86_64/5.10.0-a.btf")))


def test_fleet_goes_on_past_a_bad_file(tmp_path: Path) -> None:
    fleet, out = _fleet(tmp_path), tmp_path / "out"
    (fleet / "broken.btf").write_bytes(b"\x9f\xeb\x01\x00garbage")
    with lzma.open(fleet / "empty.btf.tar.xz", "wb") as f:
        f.write(b"not a tar")
    r = _cli("gen", "min-core-btf", _obj("core_fields"), "--btf", str(fleet), "-o", str(out), "-q")
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(errors) == 2 and "broken.btf: not BTF" in errors[0] and "empty.btf.tar.xz: unreadable archive" in errors[1]
    assert r.stdout.splitlines() == [f"3 of 5 BTF files minimized into {out}, 2 failed"]
    assert len([p for p in out.rglob("*") if p.is_file()]) == 3
    with pytest.raises(BTFError, match="broken.btf"):
        generate([_obj("core_fields")], fleet, tmp_path / "out2")
    res = generate([_obj("core_fields")], fleet, tmp_path / "out3", keep_going=True)
    assert [(Path(r.source).name, bool(r.error)) for r in res] == [
        ("broken.btf", True), ("empty.btf.tar.xz", True), ("5.10.0-a.btf", False), ("6.1.0-b.o", False), ("6.1.0-c.btf.tar.xz", False),
    ]


def test_empty_fleet_directory(tmp_path: Path) -> None:
    (tmp_path / "fleet").mkdir()
    (tmp_path / "fleet" / "notes.txt").write_text("no kernels here\n")
    r = _cli("gen", "min-core-btf", _obj("core_task"), "--btf", str(tmp_path / "fleet"), "-o", str(tmp_path / "out"))
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.splitlines() == [f"pybpfload: skipped {tmp_path / 'fleet' / 'notes.txt'}: not BTF",
                                     f"pybpfload: error: no BTF file in {tmp_path / 'fleet'}"]


def test_api_file_into_directory(tmp_path: Path) -> None:
    """A file source with an existing directory as output goes into it, under its own name (archive suffix off)."""
    member = tmp_path / "k.btf"
    member.write_bytes(read_btf(_obj("core_target_a")).raw)
    arch = tmp_path / "k.btf.tar.gz"
    with tarfile.open(arch, "w:gz") as tf:
        tf.add(member, arcname="k.btf")
    outdir = tmp_path / "out"
    outdir.mkdir()
    [res] = generate([_obj("core_types")], arch, outdir)
    assert res.ok and res.output == str(outdir / "k.btf") and res.size == len((outdir / "k.btf").read_bytes())
    assert (outdir / "k.btf").read_bytes() == minimize(_obj("core_target_a"), [_obj("core_types")])
    assert btfgen.KERNEL_BTF == VMLINUX
