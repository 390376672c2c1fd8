"""Object.load() on the real kernel, differential against libbpf (bpftool prog loadall)."""

from __future__ import annotations

import errno
import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple
from unittest import mock

import pytest

import pybpfload as bpf
from pybpfload import Object
from pybpfload.reloc import extern_values as externs_mod
from pybpfload.syscall.btf_handle import BtfHandle
from pybpfload.errors import BPFError, NotSupportedError, StateError, VerifierError
from pybpfload.syscall.pinning import pin_name
from pybpfload.syscall import AttachType, MapType, ProgType

from .conftest import FIXTURES, open_fds, require_tool
from .kernel_adapt import as_libbpf_1_1_kversion, assert_not_supported, has_bpf_loop

pytestmark = pytest.mark.kernel

# Fixtures compared with libbpf 1.1 (Debian's bpftool): loaded alike, or refused by both on older kernels.
LIBBPF_LOADS = [
    "xdp_count",
    "global_data",
    "subprogs",
    "map_in_map",
    "sec_types",
    "ringbuf_emit",
    "perfbuf_emit",
    "linked",  # statically linked by libbpf's linker (bpftool gen object)
    "gcc_perfbuf_emit",  # built by GCC (bpf-gcc 12): empty .data/.bss sections libbpf skips
    "btf_kinds",
    "kconfig_only",
    "core_task",  # CO-RE against the running kernel's BTF
    "btf_core",
    "ringbuf_user",
    "attach_trace",  # tp_btf: attach BTF ids
    "attach_iter",
    "attach_syscount",
    "bloom_filter",  # 5.16+: refused by both before
]
BPF_F_MMAPABLE = 1 << 10


def _bpftool(*args: str) -> str:
    tool = require_tool("bpftool")
    out = subprocess.run([tool, *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _btf_type_name(btf_id: int, type_id: int) -> str:
    if not btf_id or not type_id:
        return ""
    with BtfHandle.from_id(btf_id) as h:
        spec = h.spec()
        return f"{spec.kind_of(type_id).name} {spec.name_of(type_id)}"


def _map_view(m: bpf.Map) -> Tuple[int, int, int, int, int, str, str]:
    info = m.info()
    return (
        info.type,
        info.key_size,
        info.value_size,
        info.max_entries,
        info.flags,
        _btf_type_name(info.btf_id, info.btf_key_type_id),
        _btf_type_name(info.btf_id, info.btf_value_type_id),
    )


class LibbpfRefused(Exception):
    """bpftool (libbpf) could not load the object on this kernel; the message is its stderr."""


def _libbpf_load(obj_path: Path, root: Path) -> Tuple[Dict[str, dict], Dict[str, tuple]]:
    """Load with bpftool (libbpf); programs by name and maps by pin name, as the kernel reports them."""
    progs_dir, maps_dir = root / "progs", root / "maps"
    tool = require_tool("bpftool")
    out = subprocess.run([tool, "prog", "loadall", str(obj_path), str(progs_dir), "pinmaps", str(maps_dir)], capture_output=True, text=True)
    if out.returncode != 0:
        raise LibbpfRefused(out.stderr)
    progs = {}
    for pin in sorted(progs_dir.iterdir()):
        info = json.loads(_bpftool("prog", "show", "pinned", str(pin), "-j"))
        progs[pin.name] = info
    maps = {}
    for pin in sorted(maps_dir.iterdir()) if maps_dir.exists() else ():
        with bpf.Map.from_pin(str(pin)) as m:
            maps[pin.name] = _map_view(m)
    shutil.rmtree(progs_dir)
    shutil.rmtree(maps_dir, ignore_errors=True)
    return progs, maps


@pytest.mark.parametrize("name", LIBBPF_LOADS)
def test_same_programs_and_maps_as_libbpf(name: str, bpffs: Path) -> None:
    path = FIXTURES / f"{name}.bpf.o"
    try:
        their_progs, their_maps = _libbpf_load(path, bpffs)
    except LibbpfRefused as refused:
        # this kernel lacks something the object needs (5.10 has no bloom filters, xdp.frags, bpf_loop...):
        # we must refuse it too, naming the program libbpf names
        with Object.open(path) as obj:
            with pytest.raises(BPFError) as ei:
                obj.load()
            assert not any(p.loaded for p in obj.programs.values())
        named = re.findall(r"prog '(\w+)': BPF program load failed", str(refused))
        if named:
            assert named[0][:15] in str(ei.value), f"libbpf: {refused}"
        return
    with Object.open(path) as obj:
        obj.load()
        ours = {p.name: p.info() for p in obj.programs.values() if p.loaded}
        assert set(ours) == set(their_progs)
        for pname, info in ours.items():
            theirs = their_progs[pname]
            assert info.tag == theirs["tag"], f"program {pname}: tag differs from libbpf's"
            assert info.type == ProgType[f"BPF_PROG_TYPE_{theirs['type'].upper()}"] or theirs["type"].isdigit()
        our_maps = {pin_name(n): _map_view(m) for n, m in obj.maps.items()}
    assert set(our_maps) == set(their_maps)
    for mname, view in our_maps.items():
        theirs = their_maps[mname]
        if mname.startswith("_") or "_rodata" in mname or "_data" in mname or "_bss" in mname or "kconfig" in mname:
            # Kept on purpose: bpftool 7.1 marks every global data map BPF_F_MMAPABLE;
            # libbpf 1.1.2 (and we) only when the section has a non-static variable.
            view = view[:4] + (view[4] & ~BPF_F_MMAPABLE,) + view[5:]
            theirs = theirs[:4] + (theirs[4] & ~BPF_F_MMAPABLE,) + theirs[5:]
        assert view == theirs, f"map {mname}"


def test_xdp_count_counts_packets() -> None:
    with Object.open(FIXTURES / "xdp_count.bpf.o") as obj:
        obj.load()
        prog = obj.find_program_by_name("xdp_count")
        counts = obj.maps["pkt_count"]
        for n in (1, 5, 17):
            before = counts[0]  # typed: the __u64 value is an int
            r = prog.test_run(b"\0" * 64, repeat=n)
            assert r.retval == 2  # XDP_PASS
            assert counts[0] - before == n


def test_global_data_reads_and_writes() -> None:
    with Object.open(FIXTURES / "global_data.bpf.o") as obj:
        obj.load()
        data, bss, rodata = obj.maps[".data"] if ".data" in obj.maps else None, None, None
        names = {ms.real_name: n for n, ms in ((n, obj.map_spec(n)) for n in obj.maps)}
        data, bss, rodata = obj.maps[names[".data"]], obj.maps[names[".bss"]], obj.maps[names[".rodata"]]
        custom = obj.maps[names[".data.custom"]]
        btf = obj.btf
        assert btf is not None

        def var(m: bpf.Map, sec: str, vname: str, fmt: str) -> int:
            ds = obj.model.datasec(sec)
            assert ds is not None
            v = next(v for v in ds.vars if v.name == vname)
            return struct.unpack_from(fmt, m[0], v.offset)[0]

        assert var(data, ".data", "counter", "<i") == 7
        assert var(rodata, ".rodata", "threshold", "<i") == 100
        obj.programs["use_globals"].test_run(b"\0" * 64)
        # counter += threshold + banner[0] + custom_ro + big_array[1] + only_static
        assert var(data, ".data", "counter", "<i") == 7 + 100 + ord("h") + 9 + 2 + 5
        assert var(bss, ".bss", "hits", "<Q") == 1
        assert var(custom, ".data.custom", "custom_val", "<i") == 43
        # .rodata is frozen: user space cannot write it
        with pytest.raises(BPFError) as ei:
            rodata[0] = bytes(rodata.value_size)
        assert ei.value.errno == errno.EPERM  # type: ignore[attr-defined]


def test_rodata_initial_value_set_before_load() -> None:
    with Object.open(FIXTURES / "global_data.bpf.o") as obj:
        rodata_name = next(n for n in obj.maps if obj.map_spec(n).real_name == ".rodata")
        rodata = obj.maps[rodata_name]
        ds = obj.model.datasec(".rodata")
        off = next(v.offset for v in ds.vars if v.name == "threshold")
        value = bytearray(rodata.initial_value)
        struct.pack_into("<i", value, off, 1000)
        rodata.initial_value = bytes(value)
        obj.load()
        data = obj.maps[next(n for n in obj.maps if obj.map_spec(n).real_name == ".data")]
        obj.programs["use_globals"].test_run(b"\0" * 64)
        counter_off = next(v.offset for v in obj.model.datasec(".data").vars if v.name == "counter")
        assert struct.unpack_from("<i", data[0], counter_off)[0] == 7 + 1000 + ord("h") + 9 + 2 + 5


def _xdp_one_refused_without_bpf_loop() -> None:
    """Without bpf_loop (before 5.17) subprogs.bpf.o's xdp_one must fail to load, naming itself."""
    with Object.open(FIXTURES / "subprogs.bpf.o") as obj:
        for p in obj.programs.values():
            p.autoload = p.name == "xdp_one"
        with pytest.raises(VerifierError, match="xdp_one"):
            obj.load()


def test_subprograms_compute() -> None:
    loop = has_bpf_loop()
    if not loop:
        _xdp_one_refused_without_bpf_loop()
    with Object.open(FIXTURES / "subprogs.bpf.o") as obj:
        obj.programs["xdp_one"].autoload = loop
        obj.load()
        results = obj.maps["results"]
        pkt = b"\0" * 64
        obj.programs["tc_first"].test_run(pkt)
        obj.programs["tc_second"].test_run(pkt)
        if loop:
            obj.programs["xdp_one"].test_run(pkt)
        obj.programs["xdp_two"].test_run(pkt)
        got = [results[i] for i in range(4)]
        assert got == [64 * 3 + 1, 64 + 5, 0 + 1 + 2 + 3 if loop else 0, (2 * 3 + 1) + (1 + 5)]


def test_tail_call_and_map_in_map_slots() -> None:
    with Object.open(FIXTURES / "map_in_map.bpf.o") as obj:
        obj.load()
        assert obj.programs["entry"].test_run(b"\0" * 64).retval == 1  # tail_a's return value
        jmp = obj.maps["jmp_table"]
        assert int.from_bytes(jmp[1], sys.byteorder) == obj.programs["tail_a"].info().id
        outer = obj.maps["outer_arr"]
        assert int.from_bytes(outer[0], sys.byteorder) == obj.maps["inner_a"].info().id
        assert int.from_bytes(outer[2], sys.byteorder) == obj.maps["inner_b"].info().id
        with pytest.raises(KeyError):
            outer[1]


def test_bloom_filter_map_from_an_object() -> None:
    """map_extra reaches the kernel; before 5.16 the map is refused by name (the loader's probe decides)."""
    from pybpfload.syscall.features import map_type_supported

    with Object.open(FIXTURES / "bloom_filter.bpf.o") as obj:
        if not map_type_supported(MapType.BPF_MAP_TYPE_BLOOM_FILTER):
            with pytest.raises((bpf.SyscallError, NotSupportedError), match="bloom") as ei:
                obj.load()
            assert_not_supported(ei.value, "map type bloom_filter")
            assert not obj.programs["bloom_add"].loaded
            return
        obj.load()
        bloom = obj.maps["bloom"]
        assert (bloom.info().type, bloom.info().map_extra) == (MapType.BPF_MAP_TYPE_BLOOM_FILTER, 3)
        assert obj.programs["bloom_add"].test_run(b"\0" * 77).retval == 1
        assert bloom.contains_value((77).to_bytes(4, sys.byteorder))


def test_kconfig_values_come_from_the_kernel_config() -> None:
    from pybpfload.reloc.extern_values import read_system_kconfig
    from pybpfload.object import running_kernel_version

    config = read_system_kconfig()
    with Object.open(FIXTURES / "kconfig_only.bpf.o") as obj:
        obj.load()
        obj.programs["read_kconfig"].test_run(b"\0" * 64)
        bss = obj.maps[next(n for n in obj.maps if obj.map_spec(n).real_name == ".bss")]
        seen = struct.unpack("<5Q", bss[0][:40])
    assert seen[0] == running_kernel_version()
    assert seen[1] == (1 if "CONFIG_BPF_SYSCALL=y" in config else 0)
    assert seen[2] == (1 if "CONFIG_BPF_JIT=y" in config else 2 if "CONFIG_BPF_JIT=m" in config else 0)
    assert seen[3] == 0  # weak and absent
    host = next((ln.split("=", 1)[1] for ln in config.splitlines() if ln.startswith("CONFIG_DEFAULT_HOSTNAME=")), '""')
    assert seen[4] == (ord(host[1]) if len(host) > 2 else 0)


def test_kconfig_override_option() -> None:
    text = "CONFIG_BPF_SYSCALL=n\nCONFIG_BPF_JIT=m\nCONFIG_DEFAULT_HOSTNAME=\"zz\"\nCONFIG_NO_SUCH_OPTION=0x10\n"
    with Object.open(FIXTURES / "kconfig_only.bpf.o", kconfig=text) as obj:
        obj.load()
        obj.programs["read_kconfig"].test_run(b"\0" * 64)
        bss = obj.maps[next(n for n in obj.maps if obj.map_spec(n).real_name == ".bss")]
        seen = struct.unpack("<5Q", bss[0][:40])
    assert seen[1:] == (0, 2, 16, ord("z"))


def test_virtual_linux_externs_of_any_integer_type_as_libbpf(bpffs: Path) -> None:
    """LINUX_* externs declared as u64 / int / bool get the values libbpf gives them (its .kconfig map compared)."""
    path = FIXTURES / "kconfig_virtual.bpf.o"
    tool = require_tool("bpftool")
    maps_dir = bpffs / "maps"
    out = subprocess.run([tool, "prog", "loadall", str(path), str(bpffs / "progs"), "pinmaps", str(maps_dir)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    kconfig_pin = next(p for p in maps_dir.iterdir() if p.name.endswith("kconfig"))
    with bpf.Map.from_pin(str(kconfig_pin)) as m:
        theirs = m[0]
    from pybpfload.syscall import features

    # bpftool 7.1's libbpf reads LINUX_KERNEL_VERSION from the release; on a Debian kernel
    # current libbpf and we read "Debian X.Y.Z" (tests/kernel_adapt.as_libbpf_1_1_kversion)
    v11 = as_libbpf_1_1_kversion(features.running_kernel_version())
    with Object.open(path) as obj, mock.patch.object(features, "running_kernel_version", lambda: v11):
        obj.load()
        ours = obj.maps[next(n for n in obj.maps if obj.map_spec(n).real_name == ".kconfig")][0]
        obj.programs["read_virtual"].test_run(b"\0" * 64)
        bss = obj.maps[next(n for n in obj.maps if obj.map_spec(n).real_name == ".bss")]
        seen = struct.unpack("<4Q", bss[0][:32])
    assert ours == theirs
    assert seen[0] > 0 and seen[1] in (0, 1) and seen[2] in (0, 1) and seen[3] == 0


def test_missing_strong_kconfig_value_names_it() -> None:
    before = open_fds()
    with Object.open(FIXTURES / "kconfig_only.bpf.o", kconfig="CONFIG_BPF_JIT=y\n") as obj:
        with pytest.raises(BPFError, match="CONFIG_BPF_SYSCALL"):
            obj.load()
        assert all(not p.loaded for p in obj.programs.values()) and all(not m.created for m in obj.maps.values())
    assert open_fds() == before


def test_missing_kfunc_names_it() -> None:
    with Object.open(FIXTURES / "missing_kfunc.bpf.o") as obj:
        with pytest.raises(BPFError, match="bpf_kfunc_that_does_not_exist"):
            obj.load()


def test_missing_ksym_names_it() -> None:
    # this kernel has no CONFIG_KALLSYMS_ALL: data symbols are not in /proc/kallsyms
    with mock.patch.object(externs_mod, "kallsyms", lambda names, path="/proc/kallsyms": {}):
        with Object.open(FIXTURES / "externs.bpf.o") as obj:
            with pytest.raises(BPFError, match="bpf_prog_active"):
                obj.load()


def test_externs_relocated_as_libbpf_would() -> None:
    """ksym address, kfunc BTF ids, weak externs: checked in the instructions the kernel kept."""
    from pybpfload.btf.vmlinux import vmlinux_spec
    from pybpfload.elf.insn import decode

    fake = 0xFFFFFFFF81234560
    vm = vmlinux_spec()
    if not any(vm.kind_of(t).name == "FUNC" for t in vm.find_ids("bpf_rcu_read_lock")):
        # the kfunc came in 6.2: a strong kfunc extern the kernel lacks is a clear error
        with Object.open(FIXTURES / "externs.bpf.o", kconfig="CONFIG_BPF_SYSCALL=y\n") as obj:
            with mock.patch.object(externs_mod, "kallsyms", lambda names, path="/proc/kallsyms": {n: fake for n in names}):
                with pytest.raises(externs_mod.ExternError, match="bpf_rcu_read_lock"):
                    obj.load()
            assert not obj.programs["use_externs"].loaded
        assert "FUNC 'bpf_rcu_read_lock'" not in _bpftool("btf", "dump", "file", "/sys/kernel/btf/vmlinux")  # oracle agrees
        return
    with mock.patch.object(externs_mod, "kallsyms", lambda names, path="/proc/kallsyms": {n: fake for n in names}):
        with Object.open(FIXTURES / "externs.bpf.o", kconfig="CONFIG_BPF_SYSCALL=y\n") as obj:
            obj.load()
            insns = decode(obj.programs["use_externs"].insns)  # as sent (the kernel rewrites kfunc calls)
            assert obj.programs["use_externs"].loaded
    lock_id = next(t for t in vm.find_ids("bpf_rcu_read_lock") if vm.kind_of(t).name == "FUNC")
    unlock_id = next(t for t in vm.find_ids("bpf_rcu_read_unlock") if vm.kind_of(t).name == "FUNC")
    kfunc_calls = [i.imm for i in insns if i.code == 0x85 and i.src == 2]
    assert kfunc_calls == [lock_id, unlock_id]
    lds = [i for i in insns if i.is_ldimm64 and i.src == 0]
    assert any(i.imm & 0xFFFFFFFFFFFFFFFF == fake for i in lds)


def test_verifier_rejection_rolls_back() -> None:
    before = open_fds()
    with Object.open(FIXTURES / "verifier_reject.bpf.o") as obj:
        with pytest.raises(VerifierError) as ei:
            obj.load()
        e = ei.value
        assert "unchecked_read" in str(e) and "invalid access to packet" in e.log
        assert e.errno == errno.EACCES
        assert not obj.programs["fine"].loaded and obj.btf_fd == -1
    assert open_fds() == before


def test_load_then_close_releases_everything() -> None:
    before = open_fds()
    obj = Object.open(FIXTURES / "map_in_map.bpf.o").load()
    assert obj.btf_fd > 0 and obj.loaded
    assert open_fds() != before
    obj.close()
    assert open_fds() == before
    with pytest.raises(StateError):
        obj.load()
    with pytest.raises(StateError):
        obj.programs["entry"].test_run(b"\0" * 64)


def test_load_twice_is_refused() -> None:
    with Object.open(FIXTURES / "xdp_count.bpf.o") as obj:
        obj.load()
        with pytest.raises(StateError, match="already loaded"):
            obj.load()
        with pytest.raises(StateError):
            obj.kversion = 1


def test_autoload_off_and_program_type_change() -> None:
    with Object.open(FIXTURES / "subprogs.bpf.o") as obj:
        obj.programs["xdp_one"].autoload = has_bpf_loop()
        obj.programs["tc_second"].autoload = False
        obj.programs["sock_plain"].type = ProgType.BPF_PROG_TYPE_SOCKET_FILTER
        obj.load()
        assert not obj.programs["tc_second"].loaded
        assert obj.programs["tc_first"].loaded
        assert obj.programs["tc_second"].fd == -1


BTF_ATTACHED = {
    "q_fentry": ("do_unlinkat", "FUNC"),
    "q_fexit": ("do_unlinkat", "FUNC"),
    "q_fmod_ret_s": ("do_unlinkat", "FUNC"),
    "q_tp_btf": ("btf_trace_sched_switch", "TYPEDEF"),
    "q_lsm": ("bpf_lsm_file_open", "FUNC"),
    "q_iter": ("bpf_iter_task", "FUNC"),
}


def test_attach_btf_ids_of_programs_this_kernel_refuses() -> None:
    """fentry / fexit / fmod_ret / lsm may be refused (EPERM without trampolines): check what we pass.

    The attach BTF id sent with PROG_LOAD must be the id bpftool reads for the
    target in /sys/kernel/btf/vmlinux; tp_btf and iter load for real. A target
    this kernel's BTF lacks (do_unlinkat is gone from 7.x) must fail with a
    clear error naming it; the program is then retargeted at bpf_fentry_test1,
    which every kernel with BPF test runs has.
    """
    dump = _bpftool("btf", "dump", "file", "/sys/kernel/btf/vmlinux")

    def btf_id(name: str, kind: str) -> Optional[int]:
        needle = f"] {kind} '{name}' "
        line = next((ln for ln in dump.splitlines() if needle in ln), None)
        return None if line is None else int(line[1 : line.index("]")])

    sent: Dict[str, dict] = {}
    from pybpfload.syscall import commands

    real = commands.prog_load
    load_for_real = (AttachType.BPF_TRACE_RAW_TP, AttachType.BPF_TRACE_ITER)

    def spy(prog_type: int, insns: bytes, license: str = "GPL", **kw):  # type: ignore[no-untyped-def]
        sent[kw.get("name", "")] = dict(kw, prog_type=prog_type)
        if prog_type == ProgType.BPF_PROG_TYPE_TRACING and kw.get("expected_attach_type") in load_for_real:
            return real(prog_type, insns, license, **kw)
        raise bpf.SyscallError(errno.EPERM, "BPF_PROG_LOAD", kw.get("name"))

    def load(pname: str, retarget: Optional[str] = None) -> None:
        with Object.open(FIXTURES / "sec_types_more.bpf.o") as obj:
            for p in obj.programs.values():
                p.autoload = p.name == pname
            if retarget is not None:
                obj.programs[pname].attach_target = retarget
            with mock.patch("pybpfload.kernel.program.commands.prog_load", spy):
                try:
                    obj.load()
                except bpf.SyscallError as e:
                    assert e.errno == errno.EPERM
                else:
                    assert obj.programs[pname].loaded

    checked = 0
    for pname, (target, kind) in BTF_ATTACHED.items():
        want = btf_id(target, kind)
        if want is None:
            assert kind == "FUNC" and target == "do_unlinkat", f"{target} missing from this kernel's BTF"
            sent.pop(pname[:15], None)
            with pytest.raises(BPFError, match=f"{pname}.*{target}"):
                load(pname)
            assert pname[:15] not in sent  # refused before PROG_LOAD
            target = "bpf_fentry_test1"
            want = btf_id(target, kind)
            assert want is not None
            load(pname, retarget=target)
        else:
            load(pname)
        got = sent[pname[:15]]
        assert got["attach_btf_id"] == want, pname
        assert got["attach_btf_obj_fd"] == 0
        checked += 1
    assert checked == len(BTF_ATTACHED)


def test_program_instructions_after_load_are_final() -> None:
    with Object.open(FIXTURES / "xdp_count.bpf.o") as obj:
        before = obj.programs["xdp_count"].insns
        obj.load()
        after = obj.programs["xdp_count"].insns
        assert before != after  # the map fd went in
        assert obj.programs["xdp_count"].xlated_insns()[:16] != b""
        spec = obj.program_spec("xdp_count")
        assert len(after) == len(spec.insns)


def test_map_type_override_before_load() -> None:
    with Object.open(FIXTURES / "xdp_count.bpf.o") as obj:
        obj.maps["pkt_count"].max_entries = 8
        obj.maps["pkt_count"].type = MapType.BPF_MAP_TYPE_PERCPU_ARRAY
        obj.load()
        info = obj.maps["pkt_count"].info()
        assert (info.max_entries, info.type) == (8, MapType.BPF_MAP_TYPE_PERCPU_ARRAY)
        obj.programs["xdp_count"].test_run(b"\0" * 64, repeat=3)
        assert sum(obj.maps["pkt_count"][0]) == 3  # typed per-CPU: one int per CPU
