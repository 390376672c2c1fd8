"""The object model against libbpf's own view of the same objects.

libbpf 1.1 (Debian's libbpf1, the library behind bpftool 7.1) is called
through ctypes as an ORACLE only: bpf_object__open_file needs no kernel, and
its program and map accessors report names, section names, types, attach
types, instructions, map definitions, pin paths and initial values.
pybpfload itself never loads libbpf.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from pybpfload.elf.sections import SECTION_DEFS, find_sec_def
from pybpfload.errors import ParseError
from pybpfload.object import Object

from .conftest import FIXTURES, REQUIRE_KERNEL, fixture_path
from .kernel_adapt import as_libbpf_1_1_kversion

pytestmark = pytest.mark.oracle

# Objects libbpf 1.x cannot open, with the reason.
LIBBPF_REFUSES = {
    "legacy_maps.bpf.o": 'libbpf 1.x dropped legacy SEC("maps") definitions',
    "map_unknown_field.bpf.o": "unknown map field without relaxed_maps",
}
# Objects libbpf 1.1 opens without seeing what they declare (tests/test_struct_ops.py covers them).
LIBBPF_1_1_BLIND = {
    "struct_ops_link.bpf.o": "'.struct_ops.link' and '?.struct_ops' sections came in libbpf 1.2",
    "struct_ops_bad.bpf.o": "'?.struct_ops' sections came in libbpf 1.2",
}
# Objects libbpf 1.1 refuses and newer libbpf opens (tests of their own compare them with current libbpf).
LIBBPF_1_1_REFUSES = {
    "arena.bpf.o": "__arena globals ('.addr_space.1') came in libbpf 1.4: 1.1 calls their relocations a bad map relo",
}
ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.bpf.o"))
OPENABLE = [n for n in ALL_FIXTURES if n not in LIBBPF_REFUSES and n not in LIBBPF_1_1_BLIND and n not in LIBBPF_1_1_REFUSES]
BPF_PROG_TYPE_STRUCT_OPS = 27
BPF_MAP_TYPE_STRUCT_OPS = 26


class _OpenOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("object_name", ctypes.c_char_p),
        ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", ctypes.c_char_p),
        ("_attach_prog_fd_stub", ctypes.c_uint32),
        ("kconfig", ctypes.c_char_p),
        ("btf_custom_path", ctypes.c_char_p),
        ("kernel_log_buf", ctypes.c_char_p),
        ("kernel_log_size", ctypes.c_size_t),
        ("kernel_log_level", ctypes.c_uint32),
    ]


_LIB: Optional[ctypes.CDLL] = None


def libbpf() -> ctypes.CDLL:
    global _LIB
    if _LIB is not None:
        return _LIB
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1")
    except OSError as e:
        msg = f"libbpf.so (the oracle) is not installed: {e}"
        if REQUIRE_KERNEL:
            pytest.fail(msg)
        pytest.skip(msg)
    vp, cp, u32, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_size_t
    sigs = {
        "bpf_object__open_file": (vp, [cp, ctypes.POINTER(_OpenOpts)]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__name": (cp, [vp]),
        "bpf_object__kversion": (u32, [vp]),
        "bpf_object__next_program": (vp, [vp, vp]),
        "bpf_object__next_map": (vp, [vp, vp]),
        "bpf_program__name": (cp, [vp]),
        "bpf_program__section_name": (cp, [vp]),
        "bpf_program__type": (ctypes.c_int, [vp]),
        "bpf_program__expected_attach_type": (ctypes.c_int, [vp]),
        "bpf_program__insn_cnt": (sz, [vp]),
        "bpf_program__insns": (vp, [vp]),
        "bpf_program__autoload": (ctypes.c_bool, [vp]),
        "bpf_map__name": (cp, [vp]),
        "bpf_map__type": (ctypes.c_int, [vp]),
        "bpf_map__key_size": (u32, [vp]),
        "bpf_map__value_size": (u32, [vp]),
        "bpf_map__max_entries": (u32, [vp]),
        "bpf_map__map_flags": (u32, [vp]),
        "bpf_map__numa_node": (u32, [vp]),
        "bpf_map__map_extra": (ctypes.c_uint64, [vp]),
        "bpf_map__pin_path": (cp, [vp]),
        "bpf_map__initial_value": (vp, [vp, ctypes.POINTER(sz)]),
        "bpf_map__btf_key_type_id": (u32, [vp]),
        "bpf_map__btf_value_type_id": (u32, [vp]),
        "bpf_map__inner_map": (vp, [vp]),
        "libbpf_prog_type_by_name": (ctypes.c_int, [cp, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]),
        "libbpf_set_print": (vp, [vp]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    lib.libbpf_set_print(None)  # silence libbpf's warnings
    _LIB = lib
    return lib


def _map_view(lib: ctypes.CDLL, m: int) -> Dict[str, Any]:
    size = ctypes.c_size_t(0)
    ptr = lib.bpf_map__initial_value(m, ctypes.byref(size))
    inner = lib.bpf_map__inner_map(m)
    return {
        "name": lib.bpf_map__name(m).decode(),
        "type": lib.bpf_map__type(m),
        "key_size": lib.bpf_map__key_size(m),
        "value_size": lib.bpf_map__value_size(m),
        "max_entries": lib.bpf_map__max_entries(m),
        "flags": lib.bpf_map__map_flags(m),
        "numa_node": lib.bpf_map__numa_node(m),
        "map_extra": lib.bpf_map__map_extra(m),
        "pin_path": (lib.bpf_map__pin_path(m) or b"").decode() or None,
        "initial_value": ctypes.string_at(ptr, size.value) if ptr else None,
        "btf_key_type_id": lib.bpf_map__btf_key_type_id(m),
        "btf_value_type_id": lib.bpf_map__btf_value_type_id(m),
        "inner": _map_view(lib, inner) if inner else None,
    }


def libbpf_view(path: Path, **opts: Any) -> Dict[str, Any]:
    """What libbpf 1.1 reports about an opened (not loaded) object."""
    lib = libbpf()
    o = _OpenOpts(sz=ctypes.sizeof(_OpenOpts))
    keep = []
    for k, v in opts.items():
        if isinstance(v, str):
            v = v.encode()
            keep.append(v)
        setattr(o, k, v)
    obj = lib.bpf_object__open_file(str(path).encode(), ctypes.byref(o))
    if not obj:
        return {"error": ctypes.get_errno() or True}
    try:
        progs: List[Dict[str, Any]] = []
        p = lib.bpf_object__next_program(obj, None)
        while p:
            n = lib.bpf_program__insn_cnt(p)
            progs.append(
                {
                    "name": lib.bpf_program__name(p).decode(),
                    "section": lib.bpf_program__section_name(p).decode(),
                    "type": lib.bpf_program__type(p),
                    "expected_attach_type": lib.bpf_program__expected_attach_type(p),
                    "insn_cnt": n,
                    "insns": ctypes.string_at(lib.bpf_program__insns(p), n * 8),
                    "autoload": lib.bpf_program__autoload(p),
                }
            )
            p = lib.bpf_object__next_program(obj, p)
        maps = []
        m = lib.bpf_object__next_map(obj, None)
        while m:
            maps.append(_map_view(lib, m))
            m = lib.bpf_object__next_map(obj, m)
        return {
            "name": lib.bpf_object__name(obj).decode(),
            "kversion": lib.bpf_object__kversion(obj),
            "programs": progs,
            "maps": maps,
        }
    finally:
        lib.bpf_object__close(obj)


def our_view(obj: Object) -> Dict[str, Any]:
    def mview(m: Any) -> Dict[str, Any]:
        return {
            "name": m.name,
            "type": m.type,
            "key_size": m.key_size,
            "value_size": m.value_size,
            "max_entries": m.max_entries,
            "flags": m.flags,
            "numa_node": m.numa_node or 0,
            "map_extra": m.map_extra,
            "pin_path": m.pin_path,
            "initial_value": m.initial_value,
            "btf_key_type_id": m.btf_key_type_id,
            "btf_value_type_id": m.btf_value_type_id,
            "inner": mview(m.inner_map) if m.inner_map is not None else None,
        }

    return {
        "name": obj.name,
        "kversion": obj.kversion,
        "programs": [
            {
                "name": p.name,
                "section": p.section_name,
                "type": p.type,
                "expected_attach_type": p.expected_attach_type,
                "insn_cnt": p.insn_cnt,
                "insns": p.insns,
                "autoload": p.autoload,
            }
            for p in obj.programs.values()
        ],
        "maps": [mview(m) for m in obj.maps.values()],
    }


def _known_to_libbpf_1_1(sec: str) -> bool:
    lib = libbpf()
    pt, at = ctypes.c_int(), ctypes.c_int()
    return lib.libbpf_prog_type_by_name(sec.encode(), ctypes.byref(pt), ctypes.byref(at)) == 0


@pytest.mark.parametrize("fixture", OPENABLE)
def test_model_agrees_with_libbpf(fixture: str) -> None:
    path = fixture_path(fixture)
    want = libbpf_view(path)
    assert "error" not in want, f"libbpf 1.1 could not open {fixture}"
    got = our_view(Object.open(path))
    assert got["name"] == want["name"]
    assert as_libbpf_1_1_kversion(got["kversion"]) == want["kversion"]
    assert [p["name"] for p in got["programs"]] == [p["name"] for p in want["programs"]]
    for g, w in zip(got["programs"], want["programs"]):
        if w["type"] == 0 and g["type"] != 0:
            # a section libbpf 1.1 does not know; the newer table knows it
            assert not _known_to_libbpf_1_1(w["section"])
            assert find_sec_def(g["section"]) is not None
            w = dict(w, type=g["type"], expected_attach_type=g["expected_attach_type"])
        if g["type"] == BPF_PROG_TYPE_STRUCT_OPS:
            # libbpf 1.1 sets the object's member index at open; libbpf 1.3+ (and we) the kernel's at load
            assert g["expected_attach_type"] == 0
            w = dict(w, expected_attach_type=0)
        assert g == w, f"program {g['name']!r}"
    assert [m["name"] for m in got["maps"]] == [m["name"] for m in want["maps"]]
    for g, w in zip(got["maps"], want["maps"]):
        if g["type"] == BPF_MAP_TYPE_STRUCT_OPS:
            # libbpf 1.4+ (and we) report the object's struct and its bytes; libbpf 1.1 reports 0 and NULL
            assert (w["btf_value_type_id"], w["initial_value"]) == (0, None)
            assert len(g["initial_value"]) == g["value_size"] and g["btf_value_type_id"] > 0
            w = dict(w, btf_value_type_id=g["btf_value_type_id"], initial_value=g["initial_value"])
        assert g == w, f"map {g['name']!r}"


@pytest.mark.parametrize(
    "opts",
    [
        {"object_name": "renamed_object_x"},
        {"object_name": "ab"},
        {"pin_root_path": "/tmp/pins/root"},
        {"relaxed_maps": True},
    ],
)
@pytest.mark.parametrize("fixture", ["global_data.bpf.o", "pinning.bpf.o", "externs.bpf.o"])
def test_open_options_agree_with_libbpf(fixture: str, opts: Dict[str, Any]) -> None:
    path = fixture_path(fixture)
    want = libbpf_view(path, **opts)
    got = our_view(Object.open(path, **opts))
    assert got == want


def test_relaxed_maps_against_libbpf() -> None:
    path = fixture_path("map_unknown_field.bpf.o")
    assert "error" in libbpf_view(path)
    with pytest.raises(ParseError, match="future_attr"):
        Object.open(path)
    want = libbpf_view(path, relaxed_maps=True)
    assert "error" not in want
    assert our_view(Object.open(path, relaxed_maps=True)) == want


def test_open_mem_name_is_address_and_size() -> None:
    data = fixture_path("xdp_count.bpf.o").read_bytes()
    obj = Object.open_mem(data)
    addr, size = obj.name.split("-")
    assert int(size, 16) == len(data) or len(obj.name) == 15
    int(addr, 16)
    named = Object.open_mem(data, object_name="from_memory")
    assert named.name == "from_memory"
    assert our_view(named)["maps"] == libbpf_view(fixture_path("xdp_count.bpf.o"), object_name="from_memory")["maps"]


def test_section_table_agrees_with_libbpf_1_1() -> None:
    """Every name libbpf 1.1 knows maps to the same type and attach type here."""
    lib = libbpf()
    known_to_old = 0
    samples = []
    for d in SECTION_DEFS:
        samples.append(d.name)
        if d.prefix.endswith("+"):
            samples.append(d.name + "/some_target")
    samples += ["tcx", "kprobex", "xdp.frag", "sk_skb/unknown", "tc/ingressx", "cgroup", ""]
    for sec in samples:
        pt, at = ctypes.c_int(), ctypes.c_int()
        rc = lib.libbpf_prog_type_by_name(sec.encode(), ctypes.byref(pt), ctypes.byref(at))
        ours = find_sec_def(sec)
        if rc == 0:
            known_to_old += 1
            assert ours is not None, sec
            assert (ours.prog_type, ours.expected_attach_type) == (pt.value, at.value), sec
        elif ours is not None:
            # added to libbpf after 1.1: 'tc' used to be exact-only, the rest is new
            assert ours.prefix not in _LIBBPF_1_1_PREFIXES or ours.prefix.endswith("+"), sec
    assert known_to_old >= 81 + 30  # 81 entries, 30 of them '+' with a target form


_LIBBPF_1_1_PREFIXES = frozenset(
    """socket sk_reuseport/migrate sk_reuseport kprobe+ uprobe+ uprobe.s+ kretprobe+ uretprobe+ uretprobe.s+
    kprobe.multi+ kretprobe.multi+ ksyscall+ kretsyscall+ usdt+ tc classifier action tracepoint+ tp+
    raw_tracepoint+ raw_tp+ raw_tracepoint.w+ raw_tp.w+ tp_btf+ fentry+ fmod_ret+ fexit+ fentry.s+ fmod_ret.s+
    fexit.s+ freplace+ lsm+ lsm.s+ lsm_cgroup+ iter+ iter.s+ syscall xdp.frags/devmap xdp/devmap
    xdp.frags/cpumap xdp/cpumap xdp.frags xdp perf_event lwt_in lwt_out lwt_xmit lwt_seg6local sockops
    sk_skb/stream_parser sk_skb/stream_verdict sk_skb sk_msg lirc_mode2 flow_dissector cgroup_skb/ingress
    cgroup_skb/egress cgroup/skb cgroup/sock_create cgroup/sock_release cgroup/sock cgroup/post_bind4
    cgroup/post_bind6 cgroup/bind4 cgroup/bind6 cgroup/connect4 cgroup/connect6 cgroup/sendmsg4
    cgroup/sendmsg6 cgroup/recvmsg4 cgroup/recvmsg6 cgroup/getpeername4 cgroup/getpeername6
    cgroup/getsockname4 cgroup/getsockname6 cgroup/sysctl cgroup/getsockopt cgroup/setsockopt cgroup/dev
    struct_ops+ sk_lookup""".split()
)


def test_libbpf_1_1_entries_are_all_in_the_table() -> None:
    ours = {d.prefix for d in SECTION_DEFS}
    assert len(_LIBBPF_1_1_PREFIXES) == 81
    assert _LIBBPF_1_1_PREFIXES <= ours
    assert len(SECTION_DEFS) == 116
