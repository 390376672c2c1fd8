"""Attach attributes and helpers without a kernel: LINK_CREATE layouts per kind,
auto-attach decisions from section names, uprobe targets and ELF symbol
offsets (against readelf), netlink encoding."""

from __future__ import annotations

import ctypes
import re
import subprocess
from pathlib import Path

import pytest

from pybpfload.link.auto import auto_attach_kind
from pybpfload.errors import BPFError, ELFError, ParseError
from pybpfload.link import _attach_cmd as cmd
from pybpfload.link.elfsym import find_binary, resolve_function, symbol_offset
from pybpfload.link.netfilter import netfilter_link_attr
from pybpfload.link.netlink import attr, nested, parse_attrs
from pybpfload.link.perf_event import perf_link_attr
from pybpfload.link.tcx import tcx_link_attr
from pybpfload.link.tracefs import split_tracepoint
from pybpfload.link.tracing import tracing_link_attr
from pybpfload.link.uprobe import parse_uprobe_target, probe_perf_attr
from pybpfload.link.xdp import xdp_link_attr
from pybpfload.syscall import AttachType
from pybpfload.abi import uapi as t

from .conftest import FIXTURES, require_tool

KINDS = {
    "fentry": AttachType.BPF_TRACE_FENTRY,
    "fexit": AttachType.BPF_TRACE_FEXIT,
    "fmod_ret": AttachType.BPF_MODIFY_RETURN,
    "lsm": AttachType.BPF_LSM_MAC,
}


def _raw(attr_obj: ctypes.Structure) -> bytes:
    return ctypes.string_at(ctypes.addressof(attr_obj), ctypes.sizeof(attr_obj))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_tracing_link_attr_layout(kind: str) -> None:
    # struct { u32 prog_fd; u32 target_fd; u32 attach_type; u32 flags; union { struct { u32 target_btf_id; u64 cookie; } tracing; } }
    a = tracing_link_attr(7, KINDS[kind], target_btf_id=1234, cookie=0xABCDEF)
    raw = _raw(a)
    assert raw[:16] == (7).to_bytes(4, "little") + bytes(4) + int(KINDS[kind]).to_bytes(4, "little") + bytes(4)
    assert raw[16:20] == (1234).to_bytes(4, "little") and raw[24:32] == (0xABCDEF).to_bytes(8, "little")
    assert a.tracing.target_btf_id == 1234 and a.target_btf_id == 1234  # the union's first member aliases it


def test_freplace_attr_carries_target_program() -> None:
    a = tracing_link_attr(3, 0, target_fd=9, target_btf_id=42)
    assert (a.prog_fd, a.target_fd, a.attach_type, a.tracing.target_btf_id) == (3, 9, 0, 42)


def test_network_attrs() -> None:
    x = xdp_link_attr(5, 11, 2)
    assert (x.prog_fd, x.target_ifindex, x.attach_type, x.flags) == (5, 11, AttachType.BPF_XDP, 2)
    tc = tcx_link_attr(5, 11, AttachType.BPF_TCX_EGRESS, flags=cmd.BPF_F_BEFORE | cmd.BPF_F_LINK, relative=8, expected_revision=3)
    assert (tc.attach_type, tc.flags, tc.tcx.relative_fd, tc.tcx.expected_revision) == (AttachType.BPF_TCX_EGRESS, (1 << 3) | (1 << 13), 8, 3)
    nf = netfilter_link_attr(5, 2, 3, -128, 1)
    assert (nf.attach_type, nf.netfilter.pf, nf.netfilter.hooknum, nf.netfilter.priority, nf.netfilter.flags) == (
        AttachType.BPF_NETFILTER, 2, 3, -128, 1)
    pe = perf_link_attr(5, 6, cookie=99)
    assert (pe.target_fd, pe.attach_type, pe.perf_event.bpf_cookie) == (6, AttachType.BPF_PERF_EVENT, 99)


def test_probe_perf_attr() -> None:
    a = probe_perf_attr(8, True, 0x1000, 0x1189, ret_bit=0, ref_ctr_offset=0x40, ref_ctr_shift=32)
    assert (a.type, a.config, a.config1, a.config2) == (8, 1 | (0x40 << 32), 0x1000, 0x1189)
    assert probe_perf_attr(8, False, 1, 2).config == 0


# libbpf 1.x: sections with an attach function and a target in the name are
# auto-attached; the rest are skipped by the skeleton's attach.
@pytest.mark.parametrize(
    "section,kind",
    [
        ("tracepoint/syscalls/sys_enter_getpid", "tracepoint"),
        ("tp/sched/sched_switch", "tracepoint"),
        ("tracepoint", None),
        ("raw_tp/sys_enter", "raw_tracepoint"),
        ("raw_tracepoint.w/foo", "raw_tracepoint"),
        ("raw_tp", None),
        ("tp_btf/sys_enter", "trace"),
        ("fentry/do_unlinkat", "trace"),
        ("fmod_ret/x", "trace"),
        ("lsm.s/file_open", "trace"),
        ("freplace/handler", "trace"),
        ("iter/task", "iter"),
        ("kprobe/do_sys_open", "kprobe"),
        ("kretprobe/do_sys_open", "kprobe"),
        ("kprobe", None),
        ("ksyscall/getpid", "ksyscall"),
        ("uprobe/libc.so.6:malloc", "uprobe"),
        ("uretprobe//bin/bash:readline", "uprobe"),
        ("uprobe", None),
        ("usdt/libc.so.6:libc:setjmp", "usdt"),
        ("xdp", None),
        ("tc", None),
        ("tcx/ingress", None),
        ("cgroup_skb/egress", None),
        ("socket", None),
        ("sk_msg", None),
        ("perf_event", None),
        ("netfilter", None),
        ("no_such_section", None),
    ],
)
def test_auto_attach_kind(section: str, kind: object) -> None:
    assert auto_attach_kind(section) == kind


def test_parse_targets() -> None:
    assert parse_uprobe_target("libc.so.6:malloc") == ("libc.so.6", "malloc", 0)
    assert parse_uprobe_target("/bin/bash:readline+0x10") == ("/bin/bash", "readline", 16)
    assert parse_uprobe_target("/bin/x:0x400") == ("/bin/x", None, 0x400)
    assert parse_uprobe_target("libc.so.6:getpid@@GLIBC_2.2.5") == ("libc.so.6", "getpid@@GLIBC_2.2.5", 0)
    for bad in ("nocolon", "/bin/x:", ":"):
        with pytest.raises(BPFError):
            parse_uprobe_target(bad)
    assert split_tracepoint("syscalls/sys_enter_getpid") == ("syscalls", "sys_enter_getpid")
    assert split_tracepoint("sched:sched_switch") == ("sched", "sched_switch")
    for bad in ("nothing", "a/b/c", "../x"):
        with pytest.raises(ValueError):
            split_tracepoint(bad)


def _readelf_offset(path: str, symbol: str) -> int:
    """File offset of a defined function from readelf's symbol and section tables (oracle)."""
    tool = require_tool("readelf")
    syms = subprocess.run([tool, "-Ws", path], capture_output=True, text=True, check=True).stdout
    secs = subprocess.run([tool, "-WS", path], capture_output=True, text=True, check=True).stdout
    value = ndx = None
    for line in syms.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] == "FUNC" and f[6].isdigit() and f[7].split("@")[0] == symbol:
            value, ndx = int(f[1], 16), int(f[6])
            break
    assert value is not None, f"readelf: no {symbol} in {path}"
    for line in secs.splitlines():
        m = re.match(r"\s*\[\s*(\d+)\]\s+\S+\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if m and int(m.group(1)) == ndx:
            return value - int(m.group(2), 16) + int(m.group(3), 16)
    raise AssertionError(f"readelf: no section {ndx}")


@pytest.mark.parametrize(
    "binary,symbol",
    [("uprobe_target", "target_add"), ("uprobe_target_noplt", "target_add"), ("uprobe_target", "main"), ("libc.so.6", "getpid"), ("libc.so.6", "malloc")],
)
def test_symbol_offsets_match_readelf(binary: str, symbol: str) -> None:
    path = str(FIXTURES / binary) if binary.startswith("uprobe") else find_binary(binary)
    assert symbol_offset(path, symbol) == _readelf_offset(path, symbol)


def test_symbol_errors(tmp_path: Path) -> None:
    with pytest.raises(BPFError, match="no function"):
        resolve_function(str(FIXTURES / "uprobe_target"), "no_such_function")
    with pytest.raises(BPFError, match="does not exist"):
        resolve_function(str(tmp_path / "missing"), "f")
    with pytest.raises(BPFError):
        find_binary("libdefinitely-not-here.so.9")
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x7fELF" + b"\xff" * 60)
    with pytest.raises(ELFError):
        resolve_function(str(junk), "f")
    truncated = tmp_path / "truncated"
    truncated.write_bytes((FIXTURES / "uprobe_target").read_bytes()[:3000])
    with pytest.raises(ELFError):
        resolve_function(str(truncated), "target_add")


def test_netlink_attrs_round_trip() -> None:
    blob = attr(1, "bpf") + nested(2, attr(6, 5), attr(7, "name")) + attr(3, b"\x01\x02\x03")
    parsed = parse_attrs(blob)
    assert parsed[1] == b"bpf\0" and parsed[3] == b"\x01\x02\x03"
    inner = parse_attrs(parsed[2])
    assert inner == {6: (5).to_bytes(4, "little"), 7: b"name\0"}
    with pytest.raises(ParseError):
        parse_attrs(b"\xff\x00\x01\x00abcd")  # length 255 overruns


def test_kernel_version_compare() -> None:
    assert cmd.kernel_at_least((2, 6)) and not cmd.kernel_at_least((99, 0))
    assert ctypes.sizeof(t.LinkCreateAttr) >= 16
