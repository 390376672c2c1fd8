"""struct_ops: open, load, register — against libbpf 1.1 where it can, else libbpf 1.x's documented semantics.

Fixtures (fixtures/src/struct_ops_*.bpf.c):

- struct_ops_tcp: a TCP congestion control (Reno through kfuncs) in SEC(".struct_ops"),
  with its own shorter, reordered struct tcp_congestion_ops;
- struct_ops_dummy: bpf_dummy_ops in two SEC(".struct_ops") maps sharing a program;
- struct_ops_link: SEC(".struct_ops.link"), SEC("?.struct_ops"), SEC("?.struct_ops.link"),
  struct_ops.s — libbpf 1.2+ forms that libbpf 1.1 does not know, so their
  expectations are written from libbpf 1.x's source (init_struct_ops_maps,
  bpf_object_adjust_struct_ops_autoload, bpf_map__attach_struct_ops,
  bpf_link__update_map);
- struct_ops_bad: maps libbpf refuses at load, each turned on alone.

libbpf 1.1 (libbpf.so.1) is an oracle through ctypes only.  Kernel tests adapt
to the kernel through its BTF (tests/kernel_adapt.py), so they run unchanged
on the host and on the guests of tools/vmtest.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import pybpfload as bpf
import pybpfload.libbpf as L
from pybpfload.btf import types as T
from pybpfload.btf.vmlinux import vmlinux_spec
from pybpfload.elf.model import MapKind
from pybpfload.errors import BPFError, StateError, StructOpsError
from pybpfload.link.struct_ops import StructOpsAttachment, StructOpsLink
from pybpfload.reloc.struct_ops_plan import MapInput, find_kern_types, plan_struct_ops
from pybpfload.syscall import commands
from pybpfload.abi import uapi as t
from pybpfload.abi.uapi import MapType, ProgType

from .conftest import REQUIRE_KERNEL, fixture_path
from .kernel_adapt import vmlinux_has_func

BPF_F_LINK = 1 << 13
TCP = "struct_ops_tcp.bpf.o"
DUMMY = "struct_ops_dummy.bpf.o"
LINK = "struct_ops_link.bpf.o"
BAD = "struct_ops_bad.bpf.o"


# ---------------------------------------------------------------- helpers
def _vmlinux_struct(name: str) -> int:
    vm = vmlinux_spec()
    return next((tid for tid in vm.find_ids(name) if vm.kind_of(tid) == T.Kind.STRUCT), 0)


def _kernel_has_struct_ops(type_name: str) -> bool:
    return bool(_vmlinux_struct("bpf_struct_ops_" + type_name))


def tcp_kfuncs() -> bool:
    """BPF TCP congestion controls can call tcp_reno_* as kfuncs (registered kfunc sets: 5.18+)."""
    return vmlinux_has_func("register_btf_kfunc_id_set") and _kernel_has_struct_ops("tcp_congestion_ops")


def dummy_ops() -> bool:
    """The kernel's struct_ops test type bpf_dummy_ops (5.16+)."""
    return _kernel_has_struct_ops("bpf_dummy_ops")


def _assert_refused_without_dummy_ops(obj: bpf.Object) -> None:
    with pytest.raises(StructOpsError, match="struct bpf_struct_ops_bpf_dummy_ops is not found in kernel BTF") as ei:
        obj.load()
    assert ei.value.code == errno.ENOENT
    assert not any(m.created for m in obj.maps.values()) and not any(p.loaded for p in obj.programs.values())


def _zero_members_the_kernel_lacks(obj: bpf.Object) -> List[str]:
    """Members of the object's struct_ops structs that the kernel's structs lack (all zero in these fixtures)."""
    vm = vmlinux_spec()
    out = []
    for ms in (obj.map_spec(n) for n in obj.maps):
        if ms is None or ms.struct_ops is None:
            continue
        kt = vm.type(_vmlinux_struct(ms.struct_ops.type_name))
        assert isinstance(kt, T.Struct)
        out += [m for m in ms.struct_ops.members if m not in {km.name for km in kt.members}]
    return out


def struct_ops_links() -> bool:
    """BPF_F_LINK struct_ops maps and BPF_LINK_TYPE_STRUCT_OPS links (6.4+): the kernel has struct bpf_struct_ops_link."""
    return bool(_vmlinux_struct("bpf_struct_ops_link"))


def available_ccs() -> List[str]:
    with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
        return f.read().split()


def _lookup_value(m: bpf.Map) -> bytes:
    return bytes(m.lookup(0))


_LIB: Optional[ctypes.CDLL] = None


def libbpf() -> ctypes.CDLL:
    """libbpf 1.1 through ctypes (the oracle)."""
    global _LIB
    if _LIB is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
        except OSError as e:
            if REQUIRE_KERNEL:
                pytest.fail(f"libbpf.so (the oracle) is not installed: {e}")
            pytest.skip(f"libbpf.so (the oracle) is not installed: {e}")
        vp, cp, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for name, res, args in (
            ("bpf_object__open_file", vp, [cp, vp]),
            ("bpf_object__load", i32, [vp]),
            ("bpf_object__close", None, [vp]),
            ("bpf_object__next_program", vp, [vp, vp]),
            ("bpf_object__next_map", vp, [vp, vp]),
            ("bpf_object__find_map_by_name", vp, [vp, cp]),
            ("bpf_program__name", cp, [vp]),
            ("bpf_program__fd", i32, [vp]),
            ("bpf_program__expected_attach_type", i32, [vp]),
            ("bpf_program__type", i32, [vp]),
            ("bpf_program__insn_cnt", ctypes.c_size_t, [vp]),
            ("bpf_program__insns", vp, [vp]),
            ("bpf_map__name", cp, [vp]),
            ("bpf_map__fd", i32, [vp]),
            ("bpf_map__attach_struct_ops", vp, [vp]),
            ("bpf_link__destroy", i32, [vp]),
            ("libbpf_get_error", ctypes.c_long, [vp]),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        _LIB = lib
    return _LIB


class LibbpfObject:
    """An object opened (and loaded) by libbpf 1.1."""

    def __init__(self, path: Path) -> None:
        self.lib = libbpf()
        self.obj = self.lib.bpf_object__open_file(str(path).encode(), None)
        assert self.obj and not self.lib.libbpf_get_error(self.obj), f"libbpf 1.1 cannot open {path}"

    def _iter(self, what: str) -> Iterator[Tuple[str, int]]:
        nxt = getattr(self.lib, f"bpf_object__next_{what}")
        name = getattr(self.lib, f"bpf_{what}__name")
        p = nxt(self.obj, None)
        while p:
            yield name(p).decode(), p
            p = nxt(self.obj, p)

    def programs(self) -> Dict[str, int]:
        return dict(self._iter("program"))

    def maps(self) -> Dict[str, int]:
        return dict(self._iter("map"))

    def load(self) -> None:
        assert self.lib.bpf_object__load(self.obj) == 0, f"libbpf 1.1 load failed: errno {ctypes.get_errno()}"

    def close(self) -> None:
        if self.obj:
            self.lib.bpf_object__close(self.obj)
            self.obj = None

    def __enter__(self) -> "LibbpfObject":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _raw_map_info(fd: int) -> t.MapInfo:
    return commands.obj_get_info_by_fd(fd, t.MapInfo())


def _value_with_prog_names(value: bytes, fd_to_name: Dict[int, str], slots: List[int]) -> Tuple[bytes, Dict[int, str]]:
    """``value`` with the prog ids the kernel reports at ``slots`` zeroed, and the names they stand for."""
    b = bytearray(value)
    names = {}
    for off in slots:
        pid = int.from_bytes(b[off : off + 8], sys.byteorder)
        if pid:
            names[off] = fd_to_name[pid]
        b[off : off + 8] = bytes(8)
    return bytes(b), names


# ---------------------------------------------------------------- open (no kernel)
def test_open_tcp_as_libbpf_1_1() -> None:
    """Maps, program types and instructions as libbpf 1.1 opens them; the struct_ops specifics as libbpf 1.4+."""
    path = fixture_path(TCP)
    with LibbpfObject(path) as theirs, bpf.Object.open(path) as obj:
        lib = theirs.lib
        assert list(obj.programs) == list(theirs.programs())
        for name, p in theirs.programs().items():
            ours = obj.programs[name]
            assert ours.type == lib.bpf_program__type(p) == ProgType.BPF_PROG_TYPE_STRUCT_OPS
            insns = ctypes.string_at(lib.bpf_program__insns(p), lib.bpf_program__insn_cnt(p) * 8)
            assert ours.insns == insns
            # libbpf 1.1 sets the object's member index at open; libbpf 1.3+ (and we) the kernel's, at load
            assert ours.expected_attach_type == 0 and ours.attach_btf_id == 0
        assert list(obj.maps) == list(theirs.maps()) == ["calls", "pyb_reno"]
    with bpf.Object.open(path) as obj:
        m = obj.maps["pyb_reno"]
        ms = obj.map_spec("pyb_reno")
        assert ms is not None and ms.kind is MapKind.STRUCT_OPS and ms.struct_ops is not None
        st = obj.btf.type(ms.btf_value_type_id)  # type: ignore[union-attr]
        assert isinstance(st, T.Struct) and st.name == "tcp_congestion_ops"
        assert (m.type, m.key_size, m.value_size, m.max_entries, m.flags) == (MapType.BPF_MAP_TYPE_STRUCT_OPS, 4, st.size, 1, 0)
        assert m.autocreate and m.initial_value is not None and m.initial_value.startswith(b"pyb_reno\0")
        assert ms.struct_ops.members == ("name", "ssthresh", "cong_avoid", "undo_cwnd", "init", "release", "flags")
        assert ms.struct_ops.programs == (
            None,
            "pyb_ssthresh",
            "pyb_cong_avoid",
            "pyb_undo_cwnd",
            "pyb_init",
            "pyb_release",
            None,
        )
        assert L.bpf_map__initial_value(m) == m.initial_value


def test_open_link_and_qmark_forms_as_libbpf_1_x() -> None:
    """'.struct_ops.link' maps carry BPF_F_LINK; '?' sections' maps are not autocreated (libbpf 1.2+ semantics)."""
    with bpf.Object.open(fixture_path(LINK)) as obj:
        so = {n: m for n, m in obj.maps.items() if m.type == MapType.BPF_MAP_TYPE_STRUCT_OPS}
        assert list(so) == ["pyb_link_a", "pyb_link_b", "pyb_link_off", "dummy_off"]
        assert [(m.flags, m.autocreate) for m in so.values()] == [
            (BPF_F_LINK, True),
            (BPF_F_LINK, True),
            (BPF_F_LINK, False),
            (0, False),
        ]
        assert all((m.key_size, m.max_entries) == (4, 1) for m in so.values())
        assert obj.map_spec("dummy_off").struct_ops.programs == ("off_test_1", None, "off_sleepable")  # type: ignore[union-attr]
        assert obj.programs["off_sleepable"].flags & 1 << 4  # BPF_F_SLEEPABLE from struct_ops.s
        assert L.bpf_map__autocreate(so["pyb_link_off"]) is False


def test_every_variable_of_a_qmark_section_is_off() -> None:
    """Kept on purpose: libbpf strips the '?' inside its loop, so only a '?' section's first variable is left
    with autocreate off; every variable of the section is here."""
    with bpf.Object.open(fixture_path(BAD)) as obj:
        so = [m for m in obj.maps.values() if m.type == MapType.BPF_MAP_TYPE_STRUCT_OPS]
        assert len(so) == 8 and not any(m.autocreate for m in so)


def test_plan_against_kernel_btf() -> None:
    """The pure half of load: members mapped by name into the kernel's value layout."""
    if not _kernel_has_struct_ops("tcp_congestion_ops"):
        pytest.skip("no kernel BTF for struct tcp_congestion_ops")
    with bpf.Object.open(fixture_path(TCP)) as obj:
        ms = obj.map_spec("pyb_reno")
        so = ms.struct_ops  # type: ignore[union-attr]
        assert so is not None
        vm = vmlinux_spec()

        def kbtfs() -> Iterator[Tuple[str, Any]]:
            yield "vmlinux", vm

        kt = find_kern_types(so.type_name + "___flavour", kbtfs)  # flavours are stripped
        ktype = vm.type(kt.type_id)
        assert isinstance(ktype, T.Struct) and ktype.name == "tcp_congestion_ops"
        inp = MapInput("pyb_reno", so.type_name, so.type_id, obj.maps["pyb_reno"].initial_value or b"", so.programs, True)
        plan = plan_struct_ops([inp], obj.btf, kbtfs, set(obj.programs))  # type: ignore[arg-type]
        ks = plan.maps["pyb_reno"]
        kidx = {m.name: i for i, m in enumerate(ktype.members)}
        koff = {m.name: kt.data_offset + m.bit_offset // 8 for m in ktype.members}
        assert len(ks.value) == vm.type(kt.vtype_id).size  # type: ignore[attr-defined]
        assert ks.value[koff["name"] : koff["name"] + 16] == b"pyb_reno".ljust(16, b"\0")
        assert dict(ks.prog_slots) == {f"pyb_{n}": koff[n] for n in ("ssthresh", "cong_avoid", "undo_cwnd", "init", "release")}
        assert {p: (a.attach_btf_id, a.member_idx) for p, a in plan.progs.items()} == {
            f"pyb_{n}": (kt.type_id, kidx[n]) for n in ("ssthresh", "cong_avoid", "undo_cwnd", "init", "release")
        }
        assert plan.autoload == {p: True for p in plan.progs}


# ---------------------------------------------------------------- load (kernel)
@pytest.mark.kernel
@pytest.mark.parametrize("fixture", [TCP, DUMMY])
def test_load_as_libbpf_1_1(fixture: str) -> None:
    """Program tags, attach ids, expected attach types and the struct_ops maps as libbpf 1.1 loads them."""
    path = fixture_path(fixture)
    if fixture == TCP and not tcp_kfuncs():
        with bpf.Object.open(path) as obj, pytest.raises(BPFError):
            obj.load()
        return
    if fixture == DUMMY and not dummy_ops():
        with bpf.Object.open(path) as obj:
            _assert_refused_without_dummy_ops(obj)
        return
    with LibbpfObject(path) as theirs, bpf.Object.open(path) as obj:
        if _zero_members_the_kernel_lacks(obj):
            # Kept on purpose: libbpf 1.1 refuses a member the kernel lacks even when zero ("Cannot find
            # member"); libbpf 1.3+ skips it, and so do we.
            assert theirs.lib.bpf_object__load(theirs.obj) == -errno.EOPNOTSUPP
            obj.load()
            assert all(p.loaded for p in obj.programs.values())
            return
        theirs.load()
        obj.load()
        lib = theirs.lib
        for name, p in theirs.programs().items():
            ours = obj.programs[name]
            with bpf.Program.from_fd(lib.bpf_program__fd(p)) as tp:
                ti, oi = tp.info(), ours.info()
            assert oi.tag == ti.tag, name
            assert (oi.type, oi.attach_btf_id, oi.attach_btf_obj_id) == (ti.type, ti.attach_btf_id, ti.attach_btf_obj_id), name
            assert ours.expected_attach_type == lib.bpf_program__expected_attach_type(p), name
        for name, mp in theirs.maps().items():
            om = obj.maps[name]
            ti, oi = _raw_map_info(lib.bpf_map__fd(mp)), _raw_map_info(om.fd)
            fields = (
                "type",
                "key_size",
                "value_size",
                "max_entries",
                "map_flags",
                "btf_vmlinux_value_type_id",
                "btf_key_type_id",
                "btf_value_type_id",
            )
            assert [getattr(oi, f) for f in fields] == [getattr(ti, f) for f in fields], name
            if om.type == MapType.BPF_MAP_TYPE_STRUCT_OPS:
                assert oi.btf_vmlinux_value_type_id == _vmlinux_struct(
                    f"bpf_struct_ops_{obj.map_spec(name).struct_ops.type_name}"
                )  # type: ignore[union-attr]
                assert om.btf_value_type_id == obj.map_spec(name).btf_value_type_id  # the object's struct, as libbpf reports  # type: ignore[union-attr]


@pytest.mark.kernel
def test_registered_value_as_libbpf_1_1() -> None:
    """The value the kernel holds once libbpf 1.1, then we, registered the same TCP congestion control."""
    path = fixture_path(TCP)
    if not tcp_kfuncs():  # no kfuncs for TCP congestion controls: libbpf and we both refuse the object
        with LibbpfObject(path) as theirs, bpf.Object.open(path) as obj:
            assert theirs.lib.bpf_object__load(theirs.obj) < 0
            with pytest.raises(BPFError):
                obj.load()
        return
    with LibbpfObject(path) as theirs:
        theirs.load()
        lib = theirs.lib
        link = lib.bpf_map__attach_struct_ops(theirs.maps()["pyb_reno"])
        assert link and not lib.libbpf_get_error(link)
        try:
            assert "pyb_reno" in available_ccs()
            with bpf.Map.from_fd(lib.bpf_map__fd(theirs.maps()["pyb_reno"])) as m:
                their_value = _lookup_value(m)
            their_ids = {}
            for name, p in theirs.programs().items():
                with bpf.Program.from_fd(lib.bpf_program__fd(p)) as tp:
                    their_ids[tp.info().id] = name
        finally:
            assert lib.bpf_link__destroy(link) == 0
    assert "pyb_reno" not in available_ccs()
    with bpf.Object.open(path) as obj:
        obj.load()
        ks = obj.maps["pyb_reno"]
        with ks.attach_struct_ops() as att:
            assert isinstance(att, StructOpsAttachment)
            our_value = _lookup_value(ks)
            our_ids = {p.info().id: n for n, p in obj.programs.items()}
        assert "pyb_reno" not in available_ccs()
    vt = vmlinux_spec().type(_vmlinux_struct("bpf_struct_ops_tcp_congestion_ops"))
    kt = vmlinux_spec().type(_vmlinux_struct("tcp_congestion_ops"))
    assert isinstance(vt, T.Struct) and isinstance(kt, T.Struct)
    data_off = next(m.bit_offset // 8 for m in vt.members if m.type == kt.id)
    slots = [
        data_off + m.bit_offset // 8 for m in kt.members if m.name in ("ssthresh", "cong_avoid", "undo_cwnd", "init", "release")
    ]
    assert _value_with_prog_names(our_value, our_ids, slots) == _value_with_prog_names(their_value, their_ids, slots)


def _tcp_roundtrip(cc: str, nbytes: int = 1 << 20) -> str:
    """Send nbytes over loopback with congestion control ``cc``; the name the socket reports."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        with socket.socket() as c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
            c.connect(srv.getsockname())
            a, _ = srv.accept()
            with a:
                c.sendall(b"x" * nbytes)
                got = 0
                while got < nbytes:
                    got += len(a.recv(1 << 16))
            return c.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()


@pytest.mark.kernel
def test_tcp_congestion_control_registers_and_runs() -> None:
    """attach_all registers the struct_ops map (after the programs, none of which attaches by itself);
    a loopback connection runs it; closing the attachment unregisters it."""
    with bpf.Object.open(fixture_path(TCP)) as obj:
        if not tcp_kfuncs():
            with pytest.raises(BPFError):
                obj.load()
            return
        obj.load()
        links = obj.attach_all()
        try:
            assert [type(x) for x in links] == [StructOpsAttachment]
            assert "pyb_reno" in available_ccs()
            assert _tcp_roundtrip("pyb_reno") == "pyb_reno"
            calls = [obj.maps["calls"][i] for i in range(4)]  # typed: __u64 counts
            assert calls[0] >= 1 and calls[1] >= 1 and calls[2] > 0, calls  # init, release (client closed), cong_avoid
            info = links[0].info()
            assert info.target == {"map_id": obj.maps["pyb_reno"].id}
            with pytest.raises(BPFError):
                links[0].pin("/sys/fs/bpf/nope")
        finally:
            for x in links:
                x.close()
        assert "pyb_reno" not in available_ccs()
        with socket.socket() as s, pytest.raises(OSError) as ei:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"pyb_reno")
        assert ei.value.errno == errno.ENOENT
        # the kernel registers a .struct_ops map once only (libbpf gets the same EBUSY)
        with pytest.raises(OSError) as ei:
            obj.maps["pyb_reno"].attach_struct_ops()
        assert ei.value.errno == errno.EBUSY
    with bpf.Object.open(fixture_path(TCP)) as obj:  # the libbpf-named API
        obj.load()
        link = L.bpf_map__attach_struct_ops(obj.maps["pyb_reno"])
        assert link is not None and "pyb_reno" in available_ccs()
        link.detach()
        assert "pyb_reno" not in available_ccs()


@pytest.mark.kernel
def test_struct_ops_link_create_update_and_close(bpffs: Path) -> None:
    """.struct_ops.link: BPF_LINK_CREATE registers, update_map swaps atomically, closing unregisters;
    programs used only by '?' maps are not loaded, those shared with created maps are."""
    with bpf.Object.open(fixture_path(LINK)) as obj:
        if not (tcp_kfuncs() and struct_ops_links()):
            with pytest.raises(BPFError):
                obj.load()
            return
        obj.load()
        loaded = {n for n, p in obj.programs.items() if p.loaded}
        assert loaded == {"link_ssthresh", "link_cong_avoid", "link_undo_cwnd", "link_init"}
        assert not obj.programs["off_test_1"].autoload and not obj.programs["off_sleepable"].autoload
        assert not obj.maps["pyb_link_off"].created and not obj.maps["dummy_off"].created
        a, b = obj.maps["pyb_link_a"], obj.maps["pyb_link_b"]
        assert a.info().flags & BPF_F_LINK
        link = a.attach_struct_ops()
        try:
            assert isinstance(link, StructOpsLink)
            info = link.info()
            assert info.type == t.LinkType.BPF_LINK_TYPE_STRUCT_OPS and info.target.get("map_id") == a.id
            bss = obj.maps[next(n for n in obj.maps if n.endswith(".bss"))]
            assert "pyb_link" in available_ccs()
            assert _tcp_roundtrip("pyb_link") == "pyb_link"
            inits = int.from_bytes(bss[0], sys.byteorder)
            assert inits >= 1  # pyb_link_a's init ran
            assert L.bpf_link__update_map(link, b) == 0
            assert link.info().target.get("map_id") == b.id
            assert "pyb_link" in available_ccs()
            assert _tcp_roundtrip("pyb_link") == "pyb_link"
            assert int.from_bytes(bss[0], sys.byteorder) == inits  # pyb_link_b has no init
            # a second attach of a map a link used: EBUSY from the update is fine (libbpf), the kernel refuses the link
            with pytest.raises(BPFError):
                b.attach_struct_ops().close()
            link.pin(str(bpffs / "cc_link"))
            with bpf.Link.from_pin(str(bpffs / "cc_link")) as again:
                assert again.info().type == t.LinkType.BPF_LINK_TYPE_STRUCT_OPS
            link.unpin()
        finally:
            link.close()
        assert "pyb_link" not in available_ccs()


@pytest.mark.kernel
def test_dummy_ops_test_run() -> None:
    """bpf_dummy_ops programs run with BPF_PROG_TEST_RUN (the kernel calls them through a trampoline)."""
    with bpf.Object.open(fixture_path(DUMMY)) as obj:
        if not dummy_ops():
            _assert_refused_without_dummy_ops(obj)
            return
        obj.load()
        p1 = obj.programs["pyb_test_1"]
        state = ctypes.c_int(0x1234)
        args = ctypes.addressof(state).to_bytes(8, sys.byteorder)
        if not vmlinux_has_func("bpf_struct_ops_test_run"):
            with pytest.raises(BPFError):
                p1.test_run(ctx=args)
            return
        r = p1.test_run(ctx=args)
        assert (r.retval, state.value) == (0x1234, 0x5A)
        assert p1.test_run(ctx=bytes(8)).retval == 0xF2F3F4F5
        # bpf_dummy_ops cannot be registered: the kernel says so and nothing stays behind
        with pytest.raises(BPFError):
            obj.maps["dummy_1"].attach_struct_ops()


# ---------------------------------------------------------------- bad input (kernel BTF)
def _load_with(only: List[str], progs_on: Tuple[str, ...] = ()) -> bpf.Object:
    obj = bpf.Object.open(fixture_path(BAD))
    for n in only:
        obj.maps[n].autocreate = True
    for n in progs_on:
        obj.programs[n].autoload = True
    return obj


# maps to turn on, programs to turn on, libbpf's message, errno (bpf_dummy_ops cases need 5.16+)
BAD_CASES = [
    (["unknown_type"], (), "struct bpf_struct_ops_pyb_no_such_ops is not found in kernel BTF", errno.ENOENT),
    (["extra_member"], (), "extra_member: Cannot find member pyb_extra in kernel BTF", errno.EOPNOTSUPP),
    (["extra_fn"], (), "extra_fn: Cannot find member pyb_extra_fn in kernel BTF", errno.EOPNOTSUPP),
    (["kind_mismatch"], (), "kind_mismatch: Unmatched member type flags 2 != 1(kernel)", errno.EOPNOTSUPP),
    (["bad_size"], (), "bad_size: Error in size of member flags: 8 != 4(kernel)", errno.EOPNOTSUPP),
    (["reuse_a", "reuse_b"], (), "invalid reuse of prog bad_shared: expected_attach_type 0 != kern_member_idx 1", errno.EINVAL),
    ([], ("bad_unreferenced",), "prog 'bad_unreferenced': SEC(\"struct_ops\") program isn't referenced anywhere", errno.EINVAL),
]


@pytest.mark.kernel
@pytest.mark.parametrize("maps,progs,message,code", BAD_CASES, ids=[c[2].split(":")[0][:24] for c in BAD_CASES])
def test_refused_maps_name_the_problem(maps: List[str], progs: Tuple[str, ...], message: str, code: int) -> None:
    """libbpf's message and errno; nothing created, nothing left open (the fd-leak check)."""
    if not dummy_ops() and any("dummy" in n for n in _type_names(maps)):
        message, code = "struct bpf_struct_ops_bpf_dummy_ops is not found in kernel BTF", errno.ENOENT
    with _load_with(maps, progs) as obj:
        with pytest.raises(StructOpsError) as ei:
            obj.load()
        assert message in str(ei.value)
        assert ei.value.code == code
        assert not any(m.created for m in obj.maps.values()) and not any(p.loaded for p in obj.programs.values())
        assert not obj.loaded
    with _load_with(maps, progs) as obj:
        assert L.bpf_object__load(obj) == -code


def _type_names(maps: List[str]) -> List[str]:
    with bpf.Object.open(fixture_path(BAD)) as obj:
        return [obj.map_spec(n).struct_ops.type_name for n in maps]  # type: ignore[union-attr]


@pytest.mark.kernel
def test_zero_member_missing_in_kernel_is_skipped() -> None:
    """A member the kernel lacks is fine when zero (libbpf 1.3+: 'skipping it as it's set to zero')."""
    with _load_with(["extra_zero"]) as obj:
        if not dummy_ops():
            _assert_refused_without_dummy_ops(obj)
            return
        obj.load()
        m = obj.maps["extra_zero"]
        assert m.created and m.value_size == vmlinux_spec().type(_vmlinux_struct("bpf_struct_ops_bpf_dummy_ops")).size  # type: ignore[attr-defined]
        assert {n for n, p in obj.programs.items() if p.loaded} == {"bad_test_1"}
        assert obj.programs["bad_test_1"].expected_attach_type == 0


@pytest.mark.kernel
def test_attach_errors() -> None:
    with bpf.Object.open(fixture_path(DUMMY)) as obj:
        with pytest.raises(StateError, match="was it created"):
            obj.maps["dummy_1"].attach_struct_ops()
        assert L.bpf_map__attach_struct_ops(obj.maps["dummy_1"]) is None and L.get_errno() == errno.EINVAL
        if not dummy_ops():
            _assert_refused_without_dummy_ops(obj)
            return
        obj.load()
        with pytest.raises(StateError, match="non-struct_ops"):
            obj.maps[next(n for n in obj.maps if n.endswith(".bss"))].attach_struct_ops()
        assert L.bpf_map__set_autocreate(obj.maps["dummy_1"], False) == -errno.EBUSY


@pytest.mark.kernel
def test_pin_maps_skips_maps_not_created(bpffs: Path) -> None:
    """bpf_object__pin_maps skips maps with autocreate off, as libbpf."""
    with bpf.Object.open(fixture_path(BAD)) as obj:
        obj.load()  # every struct_ops map is off: only the programs' BTF, no map at all
        assert not any(m.created for m in obj.maps.values())
        obj.pin_maps(str(bpffs / "maps"))
        assert not (bpffs / "maps").exists() or not any((bpffs / "maps").iterdir())
        obj.unpin_maps(str(bpffs / "maps"))


@pytest.mark.kernel
def test_qmark_map_turned_on_loads_its_programs() -> None:
    """A '?.struct_ops' map with autocreate turned on is created, and the programs only it uses are loaded
    (a sleepable one among them), as libbpf's bpf_object_adjust_struct_ops_autoload."""
    with bpf.Object.open(fixture_path(LINK)) as obj:
        if not (tcp_kfuncs() and dummy_ops()):
            with pytest.raises(BPFError):
                obj.load()
            return
        assert L.bpf_map__set_autocreate(obj.maps["dummy_off"], True) == 0
        vm = vmlinux_spec()
        kt = vm.type(_vmlinux_struct("bpf_dummy_ops"))
        assert isinstance(kt, T.Struct)
        if "test_sleepable" not in {m.name for m in kt.members}:
            with pytest.raises(StructOpsError, match="dummy_off: Cannot find member test_sleepable"):
                obj.load()
            return
        obj.load()
        assert obj.maps["dummy_off"].created and not obj.maps["pyb_link_off"].created
        sl = obj.programs["off_sleepable"]
        assert sl.loaded and obj.programs["off_test_1"].loaded
        kidx = [m.name for m in kt.members].index("test_sleepable")
        assert (sl.attach_btf_id, sl.expected_attach_type) == (kt.id, kidx)
        assert sl.info().attach_btf_id == kt.id


def test_module_value_type_goes_to_the_kernel_with_its_btf_fd(monkeypatch: pytest.MonkeyPatch) -> None:
    """A struct_ops type found in a module's BTF: the plan names the module, and BPF_MAP_CREATE carries
    value_type_btf_obj_fd with BPF_F_VTYPE_BTF_OBJ_FD (libbpf 1.4+).  No module of the host kernel defines a
    struct_ops type, so this checks what we would pass to the kernel."""
    vm = vmlinux_spec()
    if not _vmlinux_struct("bpf_struct_ops_tcp_congestion_ops"):
        pytest.skip("no kernel BTF for tcp_congestion_ops")

    class Empty:
        first_id = 1

        def find_ids(self, name: str) -> List[int]:
            return []

    class AsModule:  # vmlinux's types seen as a module's own
        first_id = 1

        def __getattr__(self, name: str) -> Any:
            return getattr(vm, name)

    kt = find_kern_types("tcp_congestion_ops", lambda: iter([("vmlinux", Empty()), ("some_mod", AsModule())]))  # type: ignore[arg-type]
    assert kt.btf_name == "some_mod" and kt.vtype_id == _vmlinux_struct("bpf_struct_ops_tcp_congestion_ops")
    seen: Dict[str, int] = {}

    def fake_bpf(cmd: int, attr: Any, name: Optional[str] = None) -> int:
        seen.update(
            flags=attr.map_flags, obj_fd=attr.value_type_btf_obj_fd, vtype=attr.btf_vmlinux_value_type_id, btf_fd=attr.btf_fd
        )
        raise OSError(errno.EPERM, "not for real")

    monkeypatch.setattr(commands, "bpf", fake_bpf)
    with pytest.raises(OSError):
        commands.map_create(
            MapType.BPF_MAP_TYPE_STRUCT_OPS,
            4,
            256,
            1,
            flags=BPF_F_LINK,
            btf_fd=7,
            btf_vmlinux_value_type_id=kt.vtype_id,
            value_type_btf_obj_fd=9,
        )
    assert seen == {"flags": BPF_F_LINK | commands.BPF_F_VTYPE_BTF_OBJ_FD, "obj_fd": 9, "vtype": kt.vtype_id, "btf_fd": 7}
