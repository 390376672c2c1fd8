"""pybpfload.libbpf against libbpf itself.

The same walks over the libbpf-named API run twice: through
``pybpfload.libbpf`` and through Debian's libbpf.so.1 (1.1, the ORACLE,
called with ctypes), and must give the same return values and errno.
Tests marked ``kernel`` load objects and touch maps through both.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

import pybpfload.libbpf as L
from pybpfload.btf import types as T
from pybpfload.cli.demo import bundled_object
from pybpfload.elf.insn import Insn
from pybpfload.abi.uapi import MapType, ProgInfo, ProgType

from .conftest import FIXTURES, REQUIRE_KERNEL, fixture_path
from .kernel_adapt import as_libbpf_1_1_kversion

pytestmark = pytest.mark.oracle

# Objects libbpf 1.x refuses to open (see test_elf_oracle.py).
LIBBPF_REFUSES = {"legacy_maps.bpf.o", "map_unknown_field.bpf.o"}
# SEC() names libbpf 1.1 does not know (it leaves the program type UNSPEC)
NEWER_SECTIONS = ("tcx", "netfilter", "netkit", "kprobe.session", "uprobe.session", "uprobe.multi", "uretprobe.multi", "uprobe.multi.s", "fentry.multi",
                  "fsession", "tc", "tp.s", "cgroup/connect_unix", "sk_skb/verdict")  # fmt: skip
# Objects whose '?.struct_ops' / '.struct_ops.link' maps libbpf 1.1 does not see (tests/test_struct_ops.py covers them)
LIBBPF_1_1_BLIND = {"struct_ops_link.bpf.o", "struct_ops_bad.bpf.o"}
# Objects libbpf 1.1 refuses and newer libbpf opens: __arena globals (libbpf 1.4; tests/test_arena.py)
LIBBPF_1_1_REFUSES = {"arena.bpf.o"}
OPENABLE = sorted(p.name for p in FIXTURES.glob("*.bpf.o") if p.name not in LIBBPF_REFUSES | LIBBPF_1_1_BLIND | LIBBPF_1_1_REFUSES)

vp, cp, i32, u32, u64, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_size_t


class _TestRunOpts(ctypes.Structure):
    _fields_ = [
        ("sz", sz),
        ("data_in", vp),
        ("data_out", vp),
        ("data_size_in", u32),
        ("data_size_out", u32),
        ("ctx_in", vp),
        ("ctx_out", vp),
        ("ctx_size_in", u32),
        ("ctx_size_out", u32),
        ("retval", u32),
        ("repeat", i32),
        ("duration", u32),
        ("flags", u32),
        ("cpu", u32),
        ("batch_size", u32),
    ]


class _OpenOpts(ctypes.Structure):
    _fields_ = [
        ("sz", sz),
        ("object_name", cp),
        ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", cp),
        ("_attach_prog_fd", u32),
        ("kconfig", cp),
        ("btf_custom_path", cp),
        ("kernel_log_buf", vp),
        ("kernel_log_size", sz),
        ("kernel_log_level", u32),
    ]


_SIGS: Dict[str, Any] = {
    "libbpf_major_version": (u32, []),
    "libbpf_minor_version": (u32, []),
    "libbpf_version_string": (cp, []),
    "libbpf_strerror": (i32, [i32, ctypes.c_char_p, sz]),
    "libbpf_set_print": (vp, [vp]),
    "libbpf_bpf_prog_type_str": (cp, [i32]),
    "libbpf_bpf_map_type_str": (cp, [i32]),
    "libbpf_bpf_attach_type_str": (cp, [i32]),
    "libbpf_bpf_link_type_str": (cp, [i32]),
    "libbpf_prog_type_by_name": (i32, [cp, ctypes.POINTER(i32), ctypes.POINTER(i32)]),
    "libbpf_probe_bpf_prog_type": (i32, [i32, vp]),
    "libbpf_probe_bpf_map_type": (i32, [i32, vp]),
    "libbpf_probe_bpf_helper": (i32, [i32, i32, vp]),
    "bpf_object__open": (vp, [cp]),
    "bpf_object__open_file": (vp, [cp, vp]),
    "bpf_object__open_mem": (vp, [ctypes.c_char_p, sz, vp]),
    "bpf_object__load": (i32, [vp]),
    "bpf_object__close": (None, [vp]),
    "bpf_object__name": (cp, [vp]),
    "bpf_object__kversion": (ctypes.c_uint, [vp]),
    "bpf_object__set_kversion": (i32, [vp, u32]),
    "bpf_object__btf": (vp, [vp]),
    "bpf_object__btf_fd": (i32, [vp]),
    "bpf_object__find_program_by_name": (vp, [vp, cp]),
    "bpf_object__find_map_by_name": (vp, [vp, cp]),
    "bpf_object__next_program": (vp, [vp, vp]),
    "bpf_object__prev_program": (vp, [vp, vp]),
    "bpf_object__next_map": (vp, [vp, vp]),
    "bpf_object__prev_map": (vp, [vp, vp]),
    "bpf_object__pin_maps": (i32, [vp, cp]),
    "bpf_object__pin_programs": (i32, [vp, cp]),
    "bpf_program__fd": (i32, [vp]),
    "bpf_program__name": (cp, [vp]),
    "bpf_program__section_name": (cp, [vp]),
    "bpf_program__type": (i32, [vp]),
    "bpf_program__set_type": (i32, [vp, i32]),
    "bpf_program__expected_attach_type": (i32, [vp]),
    "bpf_program__set_expected_attach_type": (i32, [vp, i32]),
    "bpf_program__autoload": (ctypes.c_bool, [vp]),
    "bpf_program__set_autoload": (i32, [vp, ctypes.c_bool]),
    "bpf_program__flags": (u32, [vp]),
    "bpf_program__insn_cnt": (sz, [vp]),
    "bpf_program__insns": (vp, [vp]),
    "bpf_program__set_insns": (i32, [vp, vp, sz]),
    "bpf_map__fd": (i32, [vp]),
    "bpf_map__name": (cp, [vp]),
    "bpf_map__type": (i32, [vp]),
    "bpf_map__key_size": (u32, [vp]),
    "bpf_map__value_size": (u32, [vp]),
    "bpf_map__max_entries": (u32, [vp]),
    "bpf_map__set_max_entries": (i32, [vp, u32]),
    "bpf_map__map_flags": (u32, [vp]),
    "bpf_map__numa_node": (u32, [vp]),
    "bpf_map__map_extra": (u64, [vp]),
    "bpf_map__pin_path": (cp, [vp]),
    "bpf_map__is_internal": (ctypes.c_bool, [vp]),
    "bpf_map__btf_key_type_id": (u32, [vp]),
    "bpf_map__btf_value_type_id": (u32, [vp]),
    "bpf_map__initial_value": (vp, [vp, ctypes.POINTER(sz)]),
    "bpf_map__set_initial_value": (i32, [vp, ctypes.c_char_p, sz]),
    "bpf_map__inner_map": (vp, [vp]),
    "bpf_map_lookup_elem": (i32, [i32, vp, vp]),
    "bpf_map_update_elem": (i32, [i32, vp, vp, u64]),
    "bpf_map_delete_elem": (i32, [i32, vp]),
    "bpf_map_get_next_key": (i32, [i32, vp, vp]),
    "bpf_prog_test_run_opts": (i32, [i32, ctypes.POINTER(_TestRunOpts)]),
    "bpf_prog_get_next_id": (i32, [u32, ctypes.POINTER(u32)]),
    "bpf_map_get_next_id": (i32, [u32, ctypes.POINTER(u32)]),
    "btf__type_cnt": (u32, [vp]),
    "btf__find_by_name_kind": (i32, [vp, cp, u32]),
    "btf__find_by_name": (i32, [vp, cp]),
    "btf__name_by_offset": (cp, [vp, u32]),
    "btf__fd": (i32, [vp]),
    "btf__parse": (vp, [cp, vp]),
    "btf__load_vmlinux_btf": (vp, []),
    "btf__free": (None, [vp]),
    "btf__resolve_type": (i32, [vp, u32]),
    "btf__resolve_size": (ctypes.c_int64, [vp, u32]),
}

_ORACLE: Optional[ctypes.CDLL] = None


def oracle() -> ctypes.CDLL:
    """libbpf.so.1, with its own CDLL handle (argtypes set here do not leak to other tests)."""
    global _ORACLE
    if _ORACLE is not None:
        return _ORACLE
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
    except OSError as e:
        msg = f"libbpf.so (the oracle) is not installed: {e}"
        if REQUIRE_KERNEL:
            pytest.fail(msg)
        pytest.skip(msg)
    for name, (res, args) in _SIGS.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    lib.libbpf_set_print(None)
    _ORACLE = lib
    return lib


class C:
    """libbpf.so behind the calling conventions of pybpfload.libbpf (str in / out, holders)."""

    def __init__(self) -> None:
        self.lib = oracle()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        f = getattr(self.lib, name)
        res = _SIGS[name][0]

        def call(*args: Any) -> Any:
            conv = [a.encode() if isinstance(a, str) else a for a in args]
            ctypes.set_errno(0)
            r = f(*conv)
            if res is cp and r is not None:
                return r.decode()
            return r

        return call

    @staticmethod
    def errno() -> int:
        return ctypes.get_errno()


class P:
    """pybpfload.libbpf, with the same errno accessor."""

    def __getattr__(self, name: str) -> Any:
        return getattr(L, name)

    @staticmethod
    def errno() -> int:
        return L.get_errno()


def _both() -> List[Any]:
    return [P(), C()]


# ------------------------------------------------------------------ version, strings, errors
def test_version_matches_the_mirrored_libbpf() -> None:
    p, c = _both()
    got = [(api.libbpf_major_version(), api.libbpf_minor_version(), api.libbpf_version_string()) for api in (p, c)]
    assert got[0] == got[1] == (1, 1, "v1.1")


def test_strerror_both_forms_match_libbpf() -> None:
    lib = oracle()
    for err in [*range(3995, 4016), 1, 2, 13, 22, 95, 524, -1, -4001, -4007]:
        for size in (128, 20, 10, 1):
            cbuf = ctypes.create_string_buffer(size)
            ret = lib.libbpf_strerror(err, cbuf, size)
            if abs(err) == 4006:  # libbpf prints "(null)" for LOAD; see test_errors_log.py
                continue
            buf = bytearray(size)
            assert L.libbpf_strerror(err, buf) == ret
            assert bytes(buf).split(b"\0")[0] == cbuf.value
            assert L.libbpf_strerror(err, None, size) == (ret, cbuf.value.decode())


def test_type_strings_match_libbpf() -> None:
    p, c = _both()
    for fn in ("libbpf_bpf_prog_type_str", "libbpf_bpf_map_type_str", "libbpf_bpf_attach_type_str", "libbpf_bpf_link_type_str"):
        compared = 0
        for t in range(0, 80):
            theirs = getattr(c, fn)(t)
            if theirs is None:
                continue  # libbpf 1.1 does not know this type
            assert getattr(p, fn)(t) == theirs, (fn, t)
            compared += 1
        assert compared > 5, fn
    assert L.libbpf_bpf_prog_type_str(10_000) is None


def test_prog_type_by_name_matches_libbpf() -> None:
    lib = oracle()
    names = ["xdp", "xdp/frags", "kprobe/do_sys_open", "tp/syscalls/x", "cgroup_skb/ingress", "socket", "lsm/file_open",
             "fentry/x", "iter/task", "struct_ops/x", "sk_lookup", "nosuch", "sec_with_/", "tc", "syscall", "uprobe"]  # fmt: skip
    for n in names:
        pt, at = ctypes.c_int(-1), ctypes.c_int(-1)
        ctypes.set_errno(0)
        ret = lib.libbpf_prog_type_by_name(n.encode(), ctypes.byref(pt), ctypes.byref(at))
        ours_pt, ours_at = ctypes.c_int(-1), ctypes.c_int(-1)
        assert L.libbpf_prog_type_by_name(n, ours_pt, ours_at) == ret, n
        if ret == 0:
            assert (ours_pt.value, ours_at.value) == (pt.value, at.value), n


# ------------------------------------------------------------------ objects, opened (no kernel)
def _walk(api: Any, path: str) -> Dict[str, Any]:
    """Everything the accessors report about an opened object, in iteration order."""
    obj = api.bpf_object__open_file(path, None)
    assert obj is not None and obj != 0, path
    try:
        out: Dict[str, Any] = {"name": api.bpf_object__name(obj), "kversion": api.bpf_object__kversion(obj)}
        progs = []
        p = api.bpf_object__next_program(obj, None)
        while p is not None:
            progs.append(
                {
                    "name": api.bpf_program__name(p),
                    "sec": api.bpf_program__section_name(p),
                    "type": api.bpf_program__type(p),
                    "attach": api.bpf_program__expected_attach_type(p),
                    "autoload": api.bpf_program__autoload(p),
                    "flags": api.bpf_program__flags(p),
                    "insn_cnt": api.bpf_program__insn_cnt(p),
                    "fd": (api.bpf_program__fd(p), api.errno()),
                    "found": api.bpf_object__find_program_by_name(obj, api.bpf_program__name(p)) == p,
                }
            )
            p = api.bpf_object__next_program(obj, p)
        out["programs"] = progs
        last = api.bpf_object__prev_program(obj, None)
        out["last_program"] = api.bpf_program__name(last) if last else None
        maps = []
        m = api.bpf_object__next_map(obj, None)
        while m is not None:
            maps.append(
                {
                    "name": api.bpf_map__name(m),
                    "type": api.bpf_map__type(m),
                    "key": api.bpf_map__key_size(m),
                    "value": api.bpf_map__value_size(m),
                    "max_entries": api.bpf_map__max_entries(m),
                    "flags": api.bpf_map__map_flags(m),
                    "numa": api.bpf_map__numa_node(m),
                    "extra": api.bpf_map__map_extra(m),
                    "pin_path": api.bpf_map__pin_path(m),
                    "internal": api.bpf_map__is_internal(m),
                    "btf_ids": (api.bpf_map__btf_key_type_id(m), api.bpf_map__btf_value_type_id(m)),
                    "fd": api.bpf_map__fd(m),
                    "found": api.bpf_object__find_map_by_name(obj, api.bpf_map__name(m)) == m,
                }
            )
            m = api.bpf_object__next_map(obj, m)
        out["maps"] = maps
        missing = api.bpf_object__find_program_by_name(obj, "no_such_program")
        out["missing_program"] = (missing is None, api.errno())
        missing = api.bpf_object__find_map_by_name(obj, "no_such_map")
        out["missing_map"] = (missing is None, api.errno())
        out["pin_maps_before_load"] = api.bpf_object__pin_maps(obj, "/sys/fs/bpf/x")
        out["pin_programs_before_load"] = api.bpf_object__pin_programs(obj, "/sys/fs/bpf/x")
        btf = api.bpf_object__btf(obj)
        out["btf"] = btf is not None
        if btf is not None:
            out["btf_fd"] = (api.btf__fd(btf), api.bpf_object__btf_fd(obj))
            out["type_cnt"] = api.btf__type_cnt(btf)
            out["missing_type"] = (api.btf__find_by_name_kind(btf, "no_such_type", 4), api.errno())
            out["void"] = api.btf__find_by_name_kind(btf, "void", 1)
        out["set_kversion"] = (api.bpf_object__set_kversion(obj, 0x050A00), api.bpf_object__kversion(obj))
        return out
    finally:
        api.bpf_object__close(obj)


@pytest.mark.parametrize("name", OPENABLE)
def test_open_accessors_match_libbpf(name: str) -> None:
    p, c = _both()
    path = str(fixture_path(name))
    ours, theirs = _walk(p, path), _walk(c, path)
    ours["kversion"] = as_libbpf_1_1_kversion(ours["kversion"])  # a Debian kernel: 1.1 reads the release
    for mine, their in zip(ours["programs"], theirs["programs"]):
        if their["type"] == 0 and mine["type"] != 0:  # a SEC() name newer than libbpf 1.1 (tcx, netfilter...)
            assert any(mine["sec"] == n or mine["sec"].startswith(n + "/") for n in NEWER_SECTIONS), mine
            mine["type"] = mine["attach"] = 0
        if mine["type"] == ProgType.BPF_PROG_TYPE_STRUCT_OPS:  # 1.1: the object's member index at open; 1.3+: 0 until load
            assert mine["attach"] == 0
            their["attach"] = 0
    for mine, their in zip(ours["maps"], theirs["maps"]):
        if mine["type"] == MapType.BPF_MAP_TYPE_STRUCT_OPS:  # 1.4+ report the object's struct as value type; 1.1 does not
            assert their["btf_ids"] == (0, 0) and mine["btf_ids"][0] == 0 and mine["btf_ids"][1] > 0
            their["btf_ids"] = mine["btf_ids"]
    assert ours == theirs


@pytest.mark.parametrize("name", OPENABLE)
def test_btf_lookups_match_libbpf(name: str) -> None:
    p, c = _both()
    path = str(fixture_path(name))
    po, co = p.bpf_object__open_file(path, None), c.bpf_object__open_file(path, None)
    try:
        pb, cb = p.bpf_object__btf(po), c.bpf_object__btf(co)
        if not pb:
            assert not cb
            return
        spec = pb.spec
        checked = 0
        for tid in range(1, len(spec)):
            t = spec.type(tid)
            for q in (p, c):
                assert q.btf__resolve_type(pb if q is p else cb, tid) is not None
            assert p.btf__resolve_type(pb, tid) == c.btf__resolve_type(cb, tid), tid
            if not t.name:
                continue
            kind = int(spec.kind_of(tid))
            assert p.btf__find_by_name_kind(pb, t.name, kind) == c.btf__find_by_name_kind(cb, t.name, kind), t
            assert p.btf__find_by_name(pb, t.name) == c.btf__find_by_name(cb, t.name), t
            checked += 1
        assert checked > 0
    finally:
        p.bpf_object__close(po)
        c.bpf_object__close(co)


def test_btf_parse_and_vmlinux_match_libbpf() -> None:
    p, c = _both()
    for path in (str(fixture_path("btf_kinds.bpf.o")), "/sys/kernel/btf/vmlinux"):
        if not os.path.exists(path):
            continue
        pb, cb = p.btf__parse(path, None), c.btf__parse(path, None)
        try:
            assert p.btf__type_cnt(pb) == c.btf__type_cnt(cb) > 1
            for name, kind in (("task_struct", 4), ("int", 1), ("u32", 8), ("no_such", 4)):
                assert p.btf__find_by_name_kind(pb, name, kind) == c.btf__find_by_name_kind(cb, name, kind), name
        finally:
            p.btf__free(pb)
            c.btf__free(cb)
    pv, cv = p.btf__load_vmlinux_btf(), c.btf__load_vmlinux_btf()
    try:
        tid = c.btf__find_by_name_kind(cv, "task_struct", 4)
        assert p.btf__find_by_name_kind(pv, "task_struct", 4) == tid > 0
        assert p.btf__resolve_size(pv, tid) == c.btf__resolve_size(cv, tid)
    finally:
        p.btf__free(pv)
        c.btf__free(cv)


def test_open_failures_match_libbpf(tmp_path: Path) -> None:
    p, c = _both()
    for api in (p, c):
        assert not api.bpf_object__open_file(str(tmp_path / "missing.o"), None)
        assert api.errno() == errno.ENOENT
        assert L.libbpf_get_error(None) == -errno.ENOENT or api is c
    assert L.bpf_object__open_file("", None) is None and L.get_errno() == errno.EINVAL
    for bad in ("not_elf.o", "truncated_half.o", "wrong_machine.o"):
        path = str(FIXTURES / "malformed" / bad)
        assert L.bpf_object__open_file(path, None) is None
        assert L.get_errno() > 0 and L.libbpf_get_error(None) < 0
        assert not c.bpf_object__open_file(path, None)  # libbpf refuses them too


def test_open_mem_and_options_match_libbpf() -> None:
    p, c = _both()
    data = Path(bundled_object()).read_bytes()
    opts = _OpenOpts(sz=ctypes.sizeof(_OpenOpts), object_name=b"renamed")
    co = c.bpf_object__open_mem(data, len(data), ctypes.byref(opts))
    po = p.bpf_object__open_mem(data, len(data), L.BpfObjectOpenOpts(object_name="renamed"))
    po2 = p.bpf_object__open_mem(data, len(data), {"object_name": "renamed"})
    try:
        assert p.bpf_object__name(po) == p.bpf_object__name(po2) == c.bpf_object__name(co) == "renamed"
    finally:
        for api, o in ((p, po), (p, po2), (c, co)):
            api.bpf_object__close(o)
    assert L.bpf_object__open_mem(b"", 0, None) is None and L.get_errno() == errno.EINVAL


def test_insns_and_set_insns_before_load() -> None:
    lib = oracle()
    path = bundled_object()
    co = lib.bpf_object__open_file(path.encode(), None)
    po = L.bpf_object__open_file(path, None)
    try:
        cprog = lib.bpf_object__find_program_by_name(co, b"xdp_count")
        pprog = L.bpf_object__find_program_by_name(po, "xdp_count")
        n = lib.bpf_program__insn_cnt(cprog)
        theirs = ctypes.string_at(lib.bpf_program__insns(cprog), n * 8)
        arr = L.bpf_program__insns(pprog)
        assert bytes(arr) == theirs and len(arr) == L.bpf_program__insn_cnt(pprog) == n
        assert (arr[4].code, arr[4].dst_reg, arr[5].code) == (theirs[32], theirs[33] & 0xF, theirs[40])
        new = Insn(0xB7, 0, imm=1).encode() + Insn(0x95).encode()  # r0 = 1; exit
        assert L.bpf_program__set_insns(pprog, new, 2) == 0
        assert lib.bpf_program__set_insns(cprog, new, 2) == 0
        assert bytes(L.bpf_program__insns(pprog)) == ctypes.string_at(lib.bpf_program__insns(cprog), 16)
        assert L.bpf_program__set_insns(pprog, new, 3) == -errno.EINVAL  # more than given
    finally:
        L.bpf_object__close(po)
        lib.bpf_object__close(co)


def test_initial_value_matches_libbpf() -> None:
    lib = oracle()
    path = str(fixture_path("global_data.bpf.o"))
    co = lib.bpf_object__open_file(path.encode(), None)
    po = L.bpf_object__open_file(path, None)
    try:
        for pm in L.bpf_object__for_each_map(po):
            cm = lib.bpf_object__find_map_by_name(co, L.bpf_map__name(pm).encode())
            size = ctypes.c_size_t(0)
            ptr = lib.bpf_map__initial_value(cm, ctypes.byref(size))
            psize = ctypes.c_size_t(0)
            mine = L.bpf_map__initial_value(pm, psize)
            assert mine == (ctypes.string_at(ptr, size.value) if ptr else None), L.bpf_map__name(pm)
            assert psize.value == size.value
            new = bytes(range(1, 1 + L.bpf_map__value_size(pm)))
            theirs_ret = lib.bpf_map__set_initial_value(cm, new, len(new))
            assert L.bpf_map__set_initial_value(pm, new, len(new)) == theirs_ret
            assert L.bpf_map__set_initial_value(pm, new + b"x", len(new) + 1) == lib.bpf_map__set_initial_value(
                cm, new + b"x", len(new) + 1
            )
            if theirs_ret == 0:
                assert L.bpf_map__initial_value(pm) == new
    finally:
        L.bpf_object__close(po)
        lib.bpf_object__close(co)


# ------------------------------------------------------------------ loaded (kernel)
@pytest.fixture
def both_loaded() -> Iterator[SimpleNamespace]:
    """xdp_count loaded through libbpf.so and through pybpfload.libbpf."""
    lib = oracle()
    path = bundled_object()
    co = lib.bpf_object__open_file(path.encode(), None)
    po = L.bpf_object__open_file(path, None)
    try:
        assert lib.bpf_object__load(co) == 0
        assert L.bpf_object__load(po) == 0
        yield SimpleNamespace(lib=lib, co=co, po=po)
    finally:
        L.bpf_object__close(po)
        lib.bpf_object__close(co)


@pytest.mark.kernel
def test_loaded_accessors_and_setters_match_libbpf(both_loaded: SimpleNamespace) -> None:
    lib, co, po = both_loaded.lib, both_loaded.co, both_loaded.po
    cprog = lib.bpf_object__find_program_by_name(co, b"xdp_count")
    pprog = L.bpf_object__find_program_by_name(po, "xdp_count")
    cmap = lib.bpf_object__find_map_by_name(co, b"pkt_count")
    pmap = L.bpf_object__find_map_by_name(po, "pkt_count")
    assert L.bpf_program__fd(pprog) > 2 and lib.bpf_program__fd(cprog) > 2
    assert L.bpf_map__fd(pmap) > 2 and L.bpf_object__btf_fd(po) > 2
    assert L.btf__fd(L.bpf_object__btf(po)) == L.bpf_object__btf_fd(po)
    calls: List[Any] = [
        ("bpf_program__set_type", pprog, cprog, ProgType.BPF_PROG_TYPE_SOCKET_FILTER),
        ("bpf_program__set_expected_attach_type", pprog, cprog, 1),
        ("bpf_program__set_autoload", pprog, cprog, False),
        ("bpf_map__set_max_entries", pmap, cmap, 8),
        ("bpf_object__set_kversion", po, co, 1),
    ]
    for name, mine, theirs, arg in calls:
        ctypes.set_errno(0)
        want = getattr(lib, name)(theirs, arg)
        want_errno = ctypes.get_errno()
        assert want < 0
        assert getattr(L, name)(mine, arg) == want, name
        assert L.get_errno() == want_errno, name
    assert L.bpf_object__load(po) == lib.bpf_object__load(co) == -errno.EINVAL  # twice
    # the same program: the same tag
    tags = []
    for fd in (L.bpf_program__fd(pprog), lib.bpf_program__fd(cprog)):
        info, n = ProgInfo(), ctypes.c_uint32(ctypes.sizeof(ProgInfo))
        assert L.bpf_obj_get_info_by_fd(fd, info, n) == 0 and n.value > 0
        tags.append(bytes(info.tag))
    assert tags[0] == tags[1]


@pytest.mark.kernel
def test_test_run_opts_match_libbpf(both_loaded: SimpleNamespace) -> None:
    lib, po = both_loaded.lib, both_loaded.po
    fd = L.bpf_program__fd(L.bpf_object__find_program_by_name(po, "xdp_count"))
    packet = bytes.fromhex("ffffffffffff0200000000010800") + bytes(50)
    out = bytearray(256)
    opts = L.BpfTestRunOpts(data_in=packet, data_out=out, repeat=2)
    assert L.bpf_prog_test_run_opts(fd, opts) == 0
    cin, cout = ctypes.create_string_buffer(packet, len(packet)), ctypes.create_string_buffer(256)
    copts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), data_in=ctypes.addressof(cin), data_size_in=len(packet),
                         data_out=ctypes.addressof(cout), data_size_out=256, repeat=2)  # fmt: skip
    assert lib.bpf_prog_test_run_opts(fd, ctypes.byref(copts)) == 0
    assert (opts.retval, opts.data_size_out) == (copts.retval, copts.data_size_out) == (2, len(packet))
    assert bytes(out[: opts.data_size_out]) == cout.raw[: copts.data_size_out] == packet
    # both runs counted (2 + 2) in the map, read through both APIs
    pmap = L.bpf_object__find_map_by_name(po, "pkt_count")
    key, mine, theirs = ctypes.c_uint32(0), ctypes.c_uint64(), ctypes.c_uint64()
    assert L.bpf_map__lookup_elem(pmap, key, 4, mine, 8, 0) == 0
    assert lib.bpf_map_lookup_elem(L.bpf_map__fd(pmap), ctypes.byref(key), ctypes.byref(theirs)) == 0
    assert mine.value == theirs.value == 4
    assert L.bpf_prog_test_run_opts(fd, L.BpfTestRunOpts()) == lib.bpf_prog_test_run_opts(
        fd, ctypes.byref(_TestRunOpts(sz=ctypes.sizeof(_TestRunOpts)))
    )  # no packet: the same error


def _map_op(impl: str, lib: ctypes.CDLL, fd: int, op: Any, key: Any, val: Any) -> Any:
    """Run one map operation through pybpfload.libbpf or libbpf.so; (return value, errno on failure)."""
    kind = op[0]
    if impl == "ours":
        if kind == "update":
            r = L.bpf_map_update_elem(fd, key, val, op[3])
        elif kind == "lookup":
            r = L.bpf_map_lookup_elem(fd, key, val)
        else:
            r = L.bpf_map_delete_elem(fd, key)
        return r, (L.get_errno() if r else 0)
    ctypes.set_errno(0)
    k, v = ctypes.byref(key), ctypes.byref(val)
    if kind == "update":
        r = lib.bpf_map_update_elem(fd, k, v, op[3])
    elif kind == "lookup":
        r = lib.bpf_map_lookup_elem(fd, k, v)
    else:
        r = lib.bpf_map_delete_elem(fd, k)
    return r, (ctypes.get_errno() if r else 0)


@pytest.mark.kernel
def test_map_ops_match_libbpf() -> None:
    """One hash map, the same operations through both libraries: same returns, errno and contents."""
    lib = oracle()
    fd = L.bpf_map_create(MapType.BPF_MAP_TYPE_HASH, "cmp", 4, 8, 4, None)
    assert fd > 2
    try:
        ops: List[Any] = []
        for k in (1, 2, 3, 4, 5):
            ops.append(("update", k, k * 10, L.BPF_NOEXIST))
        ops += [("update", 1, 11, L.BPF_NOEXIST), ("update", 9, 1, L.BPF_EXIST), ("update", 1, 12, L.BPF_EXIST)]
        ops += [("lookup", 1), ("lookup", 7), ("delete", 2), ("delete", 2), ("lookup", 2)]
        state = []
        for impl in ("ours", "libbpf"):
            if impl == "libbpf":  # same starting point: empty the map
                for k in range(10):
                    L.bpf_map_delete_elem(fd, ctypes.c_uint32(k))
            results = []
            for op in ops:
                key = ctypes.c_uint32(op[1])
                val = ctypes.c_uint64(op[2] if len(op) > 2 else 0)
                r, e = _map_op(impl, lib, fd, op, key, val)
                results.append((op, r, e, val.value if op[0] == "lookup" and r == 0 else None))
            keys = []
            cur: Any = None
            while True:
                nxt = ctypes.c_uint32()
                r = (
                    L.bpf_map_get_next_key(fd, cur, nxt)
                    if impl == "ours"
                    else lib.bpf_map_get_next_key(fd, ctypes.byref(cur) if cur is not None else None, ctypes.byref(nxt))
                )
                if r:
                    assert r == -errno.ENOENT
                    break
                keys.append(nxt.value)
                cur = nxt
            state.append((results, sorted(keys)))
        assert state[0] == state[1]
        assert state[0][1] == [1, 3, 4] and any(r[1] == -errno.E2BIG for r in state[0][0])
        # a short buffer is refused, not overrun
        assert L.bpf_map_lookup_elem(fd, b"\1\0", bytearray(8)) == -errno.EINVAL
        assert L.bpf_map_lookup_elem(fd, ctypes.c_uint32(1), bytearray(4)) == -errno.EINVAL
        assert L.bpf_map_lookup_elem(fd, ctypes.c_uint32(1), b"readonly") == -errno.EINVAL
    finally:
        os.close(fd)


@pytest.mark.kernel
def test_ids_and_fd_by_id_match_libbpf(both_loaded: SimpleNamespace) -> None:
    lib = oracle()
    for ours, theirs in ((L.bpf_prog_get_next_id, lib.bpf_prog_get_next_id), (L.bpf_map_get_next_id, lib.bpf_map_get_next_id)):
        mine_ids, their_ids = [], []
        for fn, out in ((ours, mine_ids), (theirs, their_ids)):
            cur = 0
            while True:
                nxt = ctypes.c_uint32()
                r = fn(cur, nxt) if fn is ours else fn(cur, ctypes.byref(nxt))
                if r:
                    assert r == -errno.ENOENT
                    break
                out.append(nxt.value)
                cur = nxt.value
        assert mine_ids == their_ids and mine_ids
    fd = L.bpf_object__btf_fd(both_loaded.po)
    map_fd = L.bpf_map__fd(L.bpf_object__find_map_by_name(both_loaded.po, "pkt_count"))
    from pybpfload.kernel.maps import Map

    with Map.from_fd(map_fd) as m:
        again = L.bpf_map_get_fd_by_id(m.id)
    assert again > 2 and fd > 2
    os.close(again)
    assert L.bpf_prog_get_fd_by_id(0xFFFFFFF0) == -errno.ENOENT and L.get_errno() == errno.ENOENT


@pytest.mark.kernel
def test_probes_match_libbpf() -> None:
    lib = oracle()
    compared = 0
    for t in range(0, 40):
        want = lib.libbpf_probe_bpf_prog_type(t, None)
        if want == -errno.EOPNOTSUPP and L.libbpf_probe_bpf_prog_type(t) >= 0:
            continue  # a type newer than libbpf 1.1
        assert L.libbpf_probe_bpf_prog_type(t) == want, ProgType(t) if t in ProgType._value2member_map_ else t
        compared += 1
    for t in range(0, 40):
        want = lib.libbpf_probe_bpf_map_type(t, None)
        if want == -errno.EOPNOTSUPP and L.libbpf_probe_bpf_map_type(t) >= 0:
            continue
        assert L.libbpf_probe_bpf_map_type(t) == want, t
        compared += 1
    for pt in (ProgType.BPF_PROG_TYPE_XDP, ProgType.BPF_PROG_TYPE_SOCKET_FILTER, ProgType.BPF_PROG_TYPE_TRACING):
        for helper in (1, 5, 6, 12, 25, 51, 130, 166, 10_000):
            assert L.libbpf_probe_bpf_helper(pt, helper) == lib.libbpf_probe_bpf_helper(pt, helper, None), (pt, helper)
            compared += 1
    assert compared > 60
    assert L.libbpf_probe_bpf_prog_type(ProgType.BPF_PROG_TYPE_XDP, {}) == -errno.EINVAL


@pytest.mark.kernel
def test_verifier_rejection_matches_libbpf() -> None:
    lib = oracle()
    path = str(fixture_path("verifier_reject.bpf.o"))
    cbuf = ctypes.create_string_buffer(1 << 16)
    copts = _OpenOpts(sz=ctypes.sizeof(_OpenOpts), kernel_log_buf=ctypes.addressof(cbuf), kernel_log_size=1 << 16)
    co = lib.bpf_object__open_file(path.encode(), ctypes.byref(copts))
    pbuf = bytearray(1 << 16)
    po = L.bpf_object__open_file(path, L.BpfObjectOpenOpts(kernel_log_buf=pbuf))
    seen: List[Any] = []
    old = L.libbpf_set_print(lambda level, msg: seen.append((level, msg)))
    try:
        ctypes.set_errno(0)
        want = lib.bpf_object__load(co)
        want_errno = ctypes.get_errno()
        got = L.bpf_object__load(po)
        assert got == want < 0 and L.get_errno() == want_errno
        theirs = cbuf.value.decode()
        ours = bytes(pbuf).split(b"\0")[0].decode()
        assert theirs and ours.splitlines()[:3] == theirs.splitlines()[:3]
        assert any(level == L.LIBBPF_WARN and "BPF program load failed" in msg for level, msg in seen)
    finally:
        L.libbpf_set_print(old)
        L.bpf_object__close(po)
        lib.bpf_object__close(co)


@pytest.mark.kernel
def test_pin_object_programs_maps(bpffs: Path) -> None:
    obj = L.bpf_object__open_file(bundled_object(), None)
    try:
        assert L.bpf_object__load(obj) == 0
        d = str(bpffs / "obj")
        assert L.bpf_object__pin(obj, d) == 0
        assert sorted(os.listdir(d)) == ["pkt_count", "xdp_count"]
        fd = L.bpf_obj_get(os.path.join(d, "pkt_count"))
        assert fd > 2
        assert L.bpf_map_update_elem(fd, ctypes.c_uint32(0), ctypes.c_uint64(41), L.BPF_ANY) == 0
        os.close(fd)
        v = ctypes.c_uint64()
        m = L.bpf_object__find_map_by_name(obj, "pkt_count")
        assert L.bpf_map__lookup_elem(m, ctypes.c_uint32(0), 4, v, 8, 0) == 0 and v.value == 41
        assert L.bpf_object__unpin(obj, d) == 0 and os.listdir(d) == []
        assert L.bpf_object__unpin_programs(obj, d) == -errno.ENOENT
        assert L.bpf_object__pin_maps(obj, "/proc/nope") < 0
        p = L.bpf_object__find_program_by_name(obj, "xdp_count")
        assert L.bpf_program__pin(p, str(bpffs / "one")) == 0 and L.bpf_program__unpin(p, str(bpffs / "one")) == 0
        assert L.bpf_map__set_pin_path(m, str(bpffs / "m")) == 0 and L.bpf_map__pin_path(m) == str(bpffs / "m")
        assert L.bpf_map__pin(m, None) == 0 and L.bpf_map__is_pinned(m)
        assert L.bpf_map__pin(m, str(bpffs / "other")) == -errno.EINVAL
        assert L.bpf_map__unpin(m, None) == 0 and not (bpffs / "m").exists()
    finally:
        L.bpf_object__close(obj)


RINGBUF_OUTPUT = 130  # BPF_FUNC_ringbuf_output


def _ringbuf_prog(map_fd: int, value: int) -> bytes:
    """XDP: *(u64 *)(r10 - 8) = value; bpf_ringbuf_output(map, r10 - 8, 8, 0); return XDP_PASS."""
    return b"".join(
        i.encode()
        for i in (
            Insn(0x7A, dst=10, off=-8, imm=value),  # *(u64 *)(r10 - 8) = value
            Insn(0x18, dst=1, src=1, imm=map_fd),  # r1 = map fd (ld_imm64 pseudo map fd)
            Insn(0xBF, dst=2, src=10),  # r2 = r10
            Insn(0x07, dst=2, imm=-8),  # r2 += -8
            Insn(0xB7, dst=3, imm=8),  # r3 = 8
            Insn(0xB7, dst=4, imm=0),  # r4 = 0
            Insn(0x85, imm=RINGBUF_OUTPUT),
            Insn(0xB7, dst=0, imm=2),  # r0 = XDP_PASS
            Insn(0x95),
        )
    )


@pytest.mark.kernel
def test_ring_buffer_api() -> None:
    rb_fd = L.bpf_map_create(MapType.BPF_MAP_TYPE_RINGBUF, "rb", 0, 0, 4096, None)
    rb_fd2 = L.bpf_map_create(MapType.BPF_MAP_TYPE_RINGBUF, "rb2", 0, 0, 4096, None)
    assert rb_fd > 2 and rb_fd2 > 2
    progs = [L.bpf_prog_load(ProgType.BPF_PROG_TYPE_XDP, "rb", "GPL", _ringbuf_prog(fd, v), None, None)
             for fd, v in ((rb_fd, 7), (rb_fd2, 9))]  # fmt: skip
    seen: List[Any] = []

    def cb(ctx: Any, data: memoryview, size: int) -> int:
        seen.append((ctx, size, struct.unpack("<Q", data)[0]))
        return 0

    rb = L.ring_buffer__new(rb_fd, cb, "first", None)
    try:
        assert all(p > 2 for p in progs) and rb is not None
        assert L.ring_buffer__add(rb, rb_fd2, cb, "second") == 0
        assert L.ring_buffer__epoll_fd(rb) > 2
        assert L.ring_buffer__poll(rb, 0) == 0
        for p in progs:
            for _ in range(3):
                assert L.bpf_prog_test_run_opts(p, L.BpfTestRunOpts(data_in=bytes(64))) == 0
        assert L.ring_buffer__poll(rb, 100) == 6
        assert sorted(seen) == [("first", 8, 7)] * 3 + [("second", 8, 9)] * 3
        assert L.ring_buffer__consume(rb) == 0
        L.bpf_prog_test_run_opts(progs[0], L.BpfTestRunOpts(data_in=bytes(64)))
        stop = L.ring_buffer__new(rb_fd, lambda ctx, data, size: -errno.ECANCELED, None, None)
        try:
            assert L.ring_buffer__consume(stop) == -errno.ECANCELED
        finally:
            L.ring_buffer__free(stop)
        assert L.ring_buffer__add(rb, progs[0], cb, None) < 0  # not a ring buffer map
        assert L.ring_buffer__new(progs[0], cb, None, None) is None and L.get_errno() > 0
    finally:
        L.ring_buffer__free(rb)
        for fd in (rb_fd, rb_fd2, *[p for p in progs if p > 0]):
            os.close(fd)


@pytest.mark.kernel
def test_prog_load_log_buf() -> None:
    log = bytearray(4096)
    opts = L.BpfProgLoadOpts(log_buf=log)
    bad = Insn(0x95).encode()  # exit without setting r0
    assert L.bpf_prog_load(ProgType.BPF_PROG_TYPE_XDP, "bad", "GPL", bad, 1, opts) == -errno.EACCES
    assert b"R0 !read_ok" in bytes(log) and opts.log_true_size > 0
    good = Insn(0xB7, imm=2).encode() + bad
    fd = L.bpf_prog_load(ProgType.BPF_PROG_TYPE_XDP, "good", "GPL", good, 2, L.BpfProgLoadOpts(log_level=1, log_buf=log))
    assert fd > 2 and b"processed 2 insns" in bytes(log)
    os.close(fd)


# ------------------------------------------------------------------ multi-instance programs (spec section 6)
def _retval_prep(prog: Any, n: int, insns: Any, insns_cnt: int, res: L.BpfProgramPrepResult) -> int:
    """Instance n returns n + 1 instead of XDP_PASS; instance 1 is skipped."""
    if n == 1:
        return 0
    for i in range(insns_cnt):
        if insns[i].code == 0xB7 and insns[i].dst_reg == 0:  # r0 = imm
            insns[i].imm = n + 1
    res.new_insn_ptr = insns
    res.new_insn_cnt = insns_cnt
    return 0


@pytest.mark.kernel
def test_set_prep_and_nth_fd(bpffs: Path) -> None:
    obj = L.bpf_object__open_file(bundled_object(), None)
    try:
        prog = L.bpf_object__find_program_by_name(obj, "xdp_count")
        assert L.bpf_program__set_prep(prog, 3, _retval_prep) == 0
        assert L.bpf_program__set_prep(prog, 3, _retval_prep) == -errno.EBUSY
        assert L.bpf_object__load(obj) == 0
        fds = [L.bpf_program__nth_fd(prog, n) for n in range(3)]
        assert fds[0] > 2 and fds[2] > 2 and fds[1] == -errno.ENOENT
        assert L.bpf_program__nth_fd(prog, 3) == -errno.EINVAL
        rets = []
        for fd in (fds[0], fds[2], L.bpf_program__fd(prog)):
            o = L.BpfTestRunOpts(data_in=bytes(64))
            assert L.bpf_prog_test_run_opts(fd, o) == 0
            rets.append(o.retval)
        assert rets == [1, 3, 2]
        v = ctypes.c_uint64()
        L.bpf_map__lookup_elem(L.bpf_object__find_map_by_name(obj, "pkt_count"), ctypes.c_uint32(0), 4, v, 8, 0)
        assert v.value == 3  # every instance counts into the object's one map
        d = str(bpffs / "inst")
        assert L.bpf_program__pin(prog, d) == 0 and sorted(os.listdir(d)) == ["0", "2"]
        assert L.bpf_program__unpin(prog, d) == 0 and not os.path.exists(d)
    finally:
        L.bpf_object__close(obj)


@pytest.mark.kernel
def test_set_prep_failure_fails_the_load() -> None:
    obj = L.bpf_object__open_file(bundled_object(), None)
    try:
        prog = L.bpf_object__find_program_by_name(obj, "xdp_count")
        assert L.bpf_program__set_prep(prog, 2, lambda *a: -errno.EPERM) == 0
        assert L.bpf_object__load(obj) < 0 and L.bpf_program__fd(prog) == -errno.ENOENT
    finally:
        L.bpf_object__close(obj)


@pytest.mark.kernel
def test_program_variants_idiomatic() -> None:
    from pybpfload import Object, StateError

    def prep(n: int, insns: bytes) -> Optional[bytes]:
        b = bytearray(insns)
        i = b.index(Insn(0xB7, imm=2).encode())  # r0 = XDP_PASS
        b[i : i + 8] = Insn(0xB7, imm=n).encode()
        return bytes(b)

    with Object.open(bundled_object()) as obj:
        with pytest.raises(StateError):
            obj.program_variants("xdp_count", prep, 2)
        obj.load()
        with pytest.raises(ValueError):
            obj.program_variants("xdp_count", prep, 0)
        with pytest.raises(Exception, match="no program"):
            obj.program_variants("nope", prep, 1)
        with pytest.raises(ZeroDivisionError):  # a failing prep leaks nothing (fd check)
            obj.program_variants("xdp_count", lambda n, i: i if n == 0 else 1 // 0, 2)
        with obj.program_variants("xdp_count", prep, 4) as v:
            assert [p.test_run(bytes(64)).retval for p in v if p is not None] == [0, 1, 2, 3]
            assert len(set(v.fds)) == 4 and v.nth_fd(3) == v[3].fd  # type: ignore[union-attr]
            assert all(p.info().type == ProgType.BPF_PROG_TYPE_XDP for p in v if p is not None)
        assert v.fds == [-1, -1, -1, -1]


def test_every_spec_function_is_there() -> None:
    spec_names = """libbpf_major_version libbpf_minor_version libbpf_version_string libbpf_strerror libbpf_set_print
    bpf_object__open bpf_object__open_file bpf_object__load bpf_object__close bpf_object__pin_maps bpf_object__unpin_maps
    bpf_object__pin_programs bpf_object__unpin_programs bpf_object__pin bpf_object__unpin bpf_object__name
    bpf_object__kversion bpf_object__set_kversion bpf_object__btf bpf_object__btf_fd bpf_object__find_program_by_name
    bpf_program__set_prep bpf_program__nth_fd bpf_program__insns bpf_program__pin btf__type_cnt libbpf_get_error
    ring_buffer__new ring_buffer__free ring_buffer__add ring_buffer__poll ring_buffer__consume ring_buffer__epoll_fd
    bpf_obj_pin bpf_map_lookup_elem bpf_program__fd bpf_map__fd""".split()
    missing = [n for n in spec_names if not callable(getattr(L, n, None))]
    assert missing == []
    assert set(spec_names) <= set(L.__all__)
    assert T.Kind.STRUCT == 4  # the kind numbers the tests above pass as ints
