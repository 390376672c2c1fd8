"""The model of objects libbpf 1.1 cannot load, against what their sources make obvious.

legacy_maps.bpf.c: libbpf 1.x refuses SEC("maps"); the values are the
struct bpf_map_def initialisers of the source.  externs.bpf.c: the externs
cannot all resolve on this kernel, so their kinds, weakness and kconfig
layout are checked against the declarations.  sec_types_more.bpf.c:
sections this kernel cannot load or libbpf 1.1 does not know.  Relocations
and .maps slots are checked against the source as well.
"""

from __future__ import annotations

import pytest

from pybpfload.elf import ExternKind, KcfgType, MapKind, RelocKind, parse_object
from pybpfload.elf.mapdefs import internal_map_name
from pybpfload.elf.sections import BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS, parse_section
from pybpfload.errors import ParseError
from pybpfload.object import Object
from pybpfload.syscall import AttachType as AT, MapType as MT, ProgType as PT

from .conftest import fixture_path


def model(name: str):  # type: ignore[no-untyped-def]
    return parse_object(fixture_path(name).read_bytes(), name.split(".")[0])


def test_legacy_maps_as_declared() -> None:
    m = model("legacy_maps.bpf.o")
    got = {x.name: (x.kind, x.type, x.key_size, x.value_size, x.max_entries, x.flags) for x in m.maps}
    assert got == {
        "legacy_hash": (MapKind.LEGACY, MT.BPF_MAP_TYPE_HASH, 4, 8, 128, 1),
        "legacy_array": (MapKind.LEGACY, MT.BPF_MAP_TYPE_ARRAY, 4, 16, 4, 0),
        "legacy_percpu": (MapKind.LEGACY, MT.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 2, 0),
    }
    kv = m.map("legacy_hash")
    assert kv is not None and kv.btf_key_type_id and kv.btf_value_type_id  # BPF_ANNOTATE_KV_PAIR
    assert m.license == "Dual BSD/GPL"
    assert m.kversion == 0x050A00
    obj = Object.open(fixture_path("legacy_maps.bpf.o"))
    assert obj.kversion == 0x050A00
    sock = m.program("legacy_socket")
    assert sock is not None
    assert [(r.kind, r.map_name) for r in sock.relocs] == [(RelocKind.MAP, "legacy_hash")] * 2


def test_externs_as_declared() -> None:
    m = model("externs.bpf.o")
    ex = {e.name: e for e in m.externs}
    assert set(ex) == {
        "LINUX_KERNEL_VERSION", "CONFIG_BPF_SYSCALL", "CONFIG_HZ", "CONFIG_DEFAULT_HOSTNAME", "CONFIG_BPF_JIT",
        "CONFIG_NR_CPUS", "bpf_prog_active", "bpf_stats_enabled_key", "bpf_rcu_read_lock", "bpf_rcu_read_unlock",
        "bpf_no_such_kfunc",
    }  # fmt: skip
    kc = {n: (e.kcfg_type, e.kcfg_size, e.is_weak) for n, e in ex.items() if e.kind is ExternKind.KCONFIG}
    assert kc == {
        "LINUX_KERNEL_VERSION": (KcfgType.INT, 4, False),
        "CONFIG_BPF_SYSCALL": (KcfgType.BOOL, 1, False),
        "CONFIG_HZ": (KcfgType.INT, 4, True),
        "CONFIG_DEFAULT_HOSTNAME": (KcfgType.CHAR_ARR, 16, True),
        "CONFIG_BPF_JIT": (KcfgType.TRISTATE, 4, True),
        "CONFIG_NR_CPUS": (KcfgType.INT, 8, True),
    }
    # libbpf's layout: by descending alignment, then size, then name; each aligned
    kcfg = [e for e in m.externs if e.kind is ExternKind.KCONFIG]
    assert [e.name for e in kcfg][0] == "CONFIG_NR_CPUS"
    for a, b in zip(kcfg, kcfg[1:]):
        assert b.kcfg_offset >= a.kcfg_offset + a.kcfg_size
        assert b.kcfg_offset % b.kcfg_align == 0
    kmap = m.map(internal_map_name("externs", ".kconfig"))
    assert kmap is not None and kmap.kind is MapKind.KCONFIG
    assert kmap.value_size == kcfg[-1].kcfg_offset + kcfg[-1].kcfg_size
    funcs = {n for n, e in ex.items() if e.kind is ExternKind.KSYM and e.is_func}
    assert funcs == {"bpf_rcu_read_lock", "bpf_rcu_read_unlock", "bpf_no_such_kfunc"}
    assert ex["bpf_prog_active"].ksym_type_id == 0  # 'const void': untyped
    assert ex["bpf_stats_enabled_key"].ksym_type_id != 0
    p = m.program("use_externs")
    assert p is not None
    calls = [r.extern_name for r in p.relocs if r.kind is RelocKind.EXTERN_CALL]
    assert sorted(calls) == ["bpf_no_such_kfunc", "bpf_rcu_read_lock", "bpf_rcu_read_unlock"]


def test_sections_unknown_to_libbpf_1_1_or_unloadable() -> None:
    obj = Object.open(fixture_path("sec_types_more.bpf.o"))
    want = {
        "q_tcx_ingress": (PT.BPF_PROG_TYPE_SCHED_CLS, AT.BPF_TCX_INGRESS),
        "q_tc_egress": (PT.BPF_PROG_TYPE_SCHED_CLS, AT.BPF_TCX_EGRESS),
        "q_netkit_peer": (PT.BPF_PROG_TYPE_SCHED_CLS, AT.BPF_NETKIT_PEER),
        "q_netfilter": (PT.BPF_PROG_TYPE_NETFILTER, AT.BPF_NETFILTER),
        "q_uprobe_multi": (PT.BPF_PROG_TYPE_KPROBE, AT.BPF_TRACE_UPROBE_MULTI),
        "q_kprobe_sess": (PT.BPF_PROG_TYPE_KPROBE, AT.BPF_TRACE_KPROBE_SESSION),
        "q_tp_s": (PT.BPF_PROG_TYPE_TRACEPOINT, 0),
        "q_connect_unix": (PT.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, AT.BPF_CGROUP_UNIX_CONNECT),
        "q_skb_verdict": (PT.BPF_PROG_TYPE_SK_SKB, AT.BPF_SK_SKB_VERDICT),
        "q_unknown": (PT.BPF_PROG_TYPE_UNSPEC, 0),
        "q_fsession": (PT.BPF_PROG_TYPE_TRACING, 58),
        "q_lsm_s": (PT.BPF_PROG_TYPE_LSM, AT.BPF_LSM_MAC),
        "q_fentry": (PT.BPF_PROG_TYPE_TRACING, AT.BPF_TRACE_FENTRY),
        "k_fentry_bare": (PT.BPF_PROG_TYPE_TRACING, AT.BPF_TRACE_FENTRY),
    }
    for name, (pt, at) in want.items():
        p = obj.programs[name]
        assert (p.type, p.expected_attach_type) == (pt, at), name
    assert obj.programs["q_tcx_ingress"].autoload is False
    assert obj.programs["k_kprobe_off"].autoload is True
    assert obj.programs["q_tp_s"].flags == BPF_F_SLEEPABLE
    assert obj.programs["q_lsm_s"].attach_target == "bprm_committed_creds"
    assert obj.programs["k_kprobe_off"].attach_target == "do_sys_open+16"
    assert obj.programs["k_fentry_bare"].attach_target is None
    assert obj.programs["q_uprobe"].attach_target == "/bin/true:main"


def test_section_name_rules() -> None:
    assert parse_section("?xdp.frags").autoload is False
    assert parse_section("?xdp.frags").name == "xdp.frags"
    assert parse_section("xdp.frags").prog_flags == BPF_F_XDP_HAS_FRAGS
    assert parse_section("kprobe").prog_type == PT.BPF_PROG_TYPE_KPROBE  # '+' entries match the bare name
    assert parse_section("kprobex").sec_def is None  # ... but not a longer word
    assert parse_section("tc/ingress").expected_attach_type == AT.BPF_TCX_INGRESS  # first match wins
    assert parse_section("tc/whatever").sec_def is None
    with pytest.raises(ParseError, match="supported"):
        from pybpfload.elf.sections import prog_type_by_name

        prog_type_by_name("nope")


def test_subprograms_and_relocations() -> None:
    m = model("subprogs.bpf.o")
    subs = [p.name for p in m.programs if p.is_subprog]
    assert sorted(subs) == ["global_helper", "loop_cb", "record", "static_helper"]
    first = m.program("tc_first")
    assert first is not None and all(r.kind is RelocKind.CALL for r in first.relocs)
    xdp_one = m.program("xdp_one")
    assert xdp_one is not None
    assert RelocKind.SUBPROG_ADDR in {r.kind for r in xdp_one.relocs}  # bpf_loop callback
    obj = Object.open(fixture_path("subprogs.bpf.o"))
    assert list(obj.programs) == ["tc_first", "tc_second", "xdp_one", "xdp_two", "sock_plain"]
    assert obj.find_program_by_name("static_helper") is None
    assert obj.find_program_by_name("tc_second") is obj.programs["tc_second"]


def test_map_in_map_and_prog_array_slots() -> None:
    m = model("map_in_map.bpf.o")
    outer = m.map("outer_arr")
    assert outer is not None and outer.init_slots == ("inner_a", None, "inner_b")
    assert outer.inner is not None and outer.inner.name == "outer_arr.inner"
    assert (outer.inner.type, outer.inner.key_size, outer.inner.value_size) == (MT.BPF_MAP_TYPE_ARRAY, 4, 4)
    jt = m.map("jmp_table")
    assert jt is not None and jt.init_slots == (None, "tail_a")
    hm = m.map("outer_hash")
    assert hm is not None and hm.inner is not None and hm.inner.max_entries == 16 and not hm.init_slots


def test_global_data() -> None:
    m = model("global_data.bpf.o")
    data = m.map("global_d.data")
    assert data is not None and data.initial_value == (7).to_bytes(4, "little")  # int counter = 7
    ro = m.map("global_d.rodata")
    assert ro is not None and ro.flags & (1 << 7)  # BPF_F_RDONLY_PROG
    custom = m.map(".data.custom")
    assert custom is not None and custom.initial_value == (42).to_bytes(4, "little")
    assert custom.name_for_kernel == ".data.custom"
    long = m.map(".data.a_rather_long_name")
    assert long is not None and long.name_for_kernel == ".data.a_rather_"
    assert long.initial_value is not None and long.initial_value[:3] == b"\x01\x02\x03"
    static_only = m.map(".data.static_only")
    assert static_only is not None and not static_only.flags & (1 << 10)  # only static vars: not mmapable
    bss = m.map("global_d.bss")
    assert bss is not None and bss.kind is MapKind.BSS and bss.initial_value is None
    ds = m.datasec(".bss")
    assert ds is not None
    names = {v.name: v.linkage for v in ds.vars}
    assert names["hidden_bss"] == 0 and names["hits"] == 1  # hidden counts as static


def test_internal_map_names() -> None:
    assert internal_map_name("my_object_name", ".rodata") == "my_objec.rodata"
    assert internal_map_name("my_object_name", ".bss") == "my_objec.bss"
    assert internal_map_name("my_object_name", ".kconfig") == "my_obje.kconfig"
    assert internal_map_name("my_object_name", ".rodata.abracadabra") == ".rodata.abracad"
    assert internal_map_name("a-b", ".data") == "a_b.data"
