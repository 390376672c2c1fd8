"""USDT: note and argument-spec parsing (pure), attach on the kernel, and libbpf 1.1 as the oracle.

Fixtures (fixtures/Makefile, <sys/sdt.h>): ``usdt_target`` (PIE, -O2: register
and constant arguments, ``args3`` at two call sites with different specs),
``usdt_target_O0`` (non-PIE, -O0: stack-slot arguments, ``args3`` twice with
the same spec), ``libusdt_lib.so`` (``pybpfload_lib:lib_probe``), and
``usdt.bpf.o`` (``usdt_any`` sends every hit — cookie, argument count, six
arguments — to a ring buffer; ``usdt_lib_auto`` auto-attaches to the library).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import struct
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import pybpfload as bpf
from pybpfload.syscall import features
from pybpfload.link import usdt_spec as usdt
from pybpfload.errors import BPFOSError, ELFError, NotSupportedError, ParseError

from .conftest import fixture_path, require_tool

TARGETS = ("usdt_target", "usdt_target_O0", "libusdt_lib.so")
EVENT = struct.Struct("<IiQ6q6iII")  # struct event of fixtures/src/usdt.bpf.c
PROBES = ("args3", "consts", "sized", "guarded", "noargs")

# x86-64 struct pt_regs offsets, by hand from arch/x86/include/uapi/asm/ptrace.h
R15, RBP, RBX, R11, R10, R9, R8, RAX, RCX, RDX, RSI, RDI, RIP, RSP = 0, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 128, 152


def _readelf_notes(path: Path) -> List[Dict[str, Any]]:
    out = subprocess.run([require_tool("readelf"), "-n", str(path)], capture_output=True, text=True, check=True).stdout
    notes: List[Dict[str, Any]] = []
    for m in re.finditer(
        r"Provider: (\S+)\n\s+Name: (\S+)\n\s+Location: (0x[0-9a-f]+), Base: (0x[0-9a-f]+), Semaphore: (0x[0-9a-f]+)\n\s+Arguments: ?(.*)",
        out,
    ):
        notes.append(
            {"provider": m.group(1), "name": m.group(2), "loc": int(m.group(3), 16), "base": int(m.group(4), 16),
             "sema": int(m.group(5), 16), "args": m.group(6).strip()}
        )
    return notes


# ------------------------------------------------------------------ pure: notes
@pytest.mark.parametrize("name", TARGETS)
def test_notes_match_readelf(name: str) -> None:
    path = fixture_path(name)
    want = _readelf_notes(path)
    assert want, "readelf found no stapsdt notes"
    got = usdt.read_elf(str(path)).notes
    assert [
        {"provider": n.provider, "name": n.name, "loc": n.loc_addr, "base": n.base_addr, "sema": n.sema_addr, "args": n.args}
        for n in got
    ] == want


def _section_offset(path: Path, addr: int) -> int:
    """File offset of a virtual address through the *section* that holds it (independent of the segment mapping)."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if sec["sh_addr"] and sec["sh_addr"] <= addr < sec["sh_addr"] + sec["sh_size"] and sec["sh_type"] != "SHT_NOBITS":
                return addr - sec["sh_addr"] + sec["sh_offset"]
    raise AssertionError(f"no section holds {addr:#x}")


@pytest.mark.parametrize("name", ["usdt_target", "usdt_target_O0"])
def test_targets_offsets_and_semaphore(name: str) -> None:
    path = fixture_path(name)
    elf = usdt.read_elf(str(path))
    assert elf.e_type == ("ET_DYN" if name == "usdt_target" else "ET_EXEC")
    for probe in PROBES:
        targets = usdt.collect_targets(elf, "pybpfload", probe, usdt_cookie=7)
        want = [n for n in elf.notes if n.name == probe]
        assert len(targets) == len(want) == (2 if probe == "args3" else 1)
        for t, n in zip(targets, want):
            assert t.abs_ip == n.loc_addr  # no prelink: .stapsdt.base is where the notes say
            assert t.rel_ip == _section_offset(path, n.loc_addr)
            assert t.sema_off == (_section_offset(path, n.sema_addr) if n.sema_addr else 0)
            assert t.spec == usdt.parse_spec(n.args, 7) and t.spec.usdt_cookie == 7
    guarded = usdt.collect_targets(elf, "pybpfload", "guarded")[0]
    assert 0 < guarded.sema_off != guarded.note.sema_addr  # .probes is at another offset than its address
    with pytest.raises(BPFOSError) as ei:
        usdt.collect_targets(elf, "pybpfload", "nosuchprobe")
    assert ei.value.errno == errno.ENOENT


def test_prelink_base_and_nop_combo() -> None:
    note = usdt.UsdtNote("p", "n", "-4@%edi", 0x1100, 0x2000, 0x4010)
    segs = [usdt.Segment(0x1000, 0x2000, 0x1000, True), usdt.Segment(0x2000, 0x5000, 0x1800, False)]
    # the file was prelinked 0x100 higher: .stapsdt.base moved, notes did not
    elf = usdt.UsdtElf("/x", "ET_DYN", "EM_X86_64", segs, 0x2100, [note])
    (t,) = usdt.collect_targets(elf, "p", "n")
    assert (t.abs_ip, t.rel_ip, t.sema_off) == (0x1200, 0x1200, 0x4010 - 0x2000 + 0x1800)
    # base 0 in the note: no adjustment (libbpf >= 1.2)
    elf0 = usdt.UsdtElf("/x", "ET_DYN", "EM_X86_64", segs, 0x2100, [usdt.UsdtNote("p", "n", "", 0x1100, 0, 0)])
    assert usdt.collect_targets(elf0, "p", "n")[0].rel_ip == 0x1100
    # nop; nop5 at the probe and the uprobe syscall: the probe goes on the nop5
    combo = bytes([0x90, 0x0F, 0x1F, 0x44, 0x00, 0x00])
    (c,) = usdt.collect_targets(elf, "p", "n", code_at=lambda off: combo)
    assert (c.abs_ip, c.rel_ip) == (0x1201, 0x1201)
    (d,) = usdt.collect_targets(elf, "p", "n", code_at=lambda off: b"\x90" * 6)
    assert d.rel_ip == 0x1200
    # a probe in a non-executable segment, a semaphore in an executable one
    bad = usdt.UsdtElf("/x", "ET_EXEC", "EM_X86_64", segs, 0, [usdt.UsdtNote("p", "n", "", 0x2100, 0, 0)])
    with pytest.raises(BPFOSError, match="not executable"):
        usdt.collect_targets(bad, "p", "n")
    bad = usdt.UsdtElf("/x", "ET_EXEC", "EM_X86_64", segs, 0, [usdt.UsdtNote("p", "n", "", 0x1100, 0, 0x1200)])
    with pytest.raises(BPFOSError, match="executable segment"):
        usdt.collect_targets(bad, "p", "n")
    with pytest.raises(NotSupportedError, match="semaphores"):
        usdt.collect_targets(elf, "p", "n", has_sema_refcnt=False)


def test_no_cookie_needs_pid_for_shared_objects() -> None:
    segs = [usdt.Segment(0x1000, 0x2000, 0x1000, True)]
    note = usdt.UsdtNote("p", "n", "", 0x1100, 0, 0)
    lib = usdt.UsdtElf("/usr/lib/libx.so", "ET_DYN", "EM_X86_64", segs, 0, [note])
    with pytest.raises(NotSupportedError, match="PID"):
        usdt.collect_targets(lib, "p", "n", has_bpf_cookie=False)
    maps = (
        "7f0000000000-7f0000001000 r--p 00000000 08:01 123  /usr/lib/libx.so\n"
        "7f0000001000-7f0000002000 r-xp 00001000 08:01 123  /usr/lib/libx.so\n"
        "7f0000002000-7f0000003000 rw-p 00000000 00:00 0\n"
        "7f0000005000-7f0000006000 r-xp 00001000 08:01 124  /usr/lib/libother.so\n"
    )
    (t,) = usdt.collect_targets(lib, "p", "n", has_bpf_cookie=False, pid=42, proc_maps=lambda pid: maps)
    assert (t.abs_ip, t.rel_ip) == (0x7F0000001100, 0x1100)
    with pytest.raises(BPFOSError, match="memory mappings"):
        usdt.collect_targets(lib, "p", "n", has_bpf_cookie=False, pid=42, proc_maps=lambda pid: "")
    exe = usdt.UsdtElf("/bin/x", "ET_EXEC", "EM_X86_64", segs, 0, [note])
    assert usdt.collect_targets(exe, "p", "n", has_bpf_cookie=False)[0].abs_ip == 0x1100


def _note(provider: bytes, name: bytes, args: bytes, addrs: Tuple[int, int, int] = (1, 2, 3), ntype: int = 3, owner: bytes = b"stapsdt\0") -> bytes:
    desc = struct.pack("<QQQ", *addrs) + provider + name + args
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(owner), len(desc), ntype) + pad(owner) + pad(desc)


def test_parse_notes_and_malformed() -> None:
    data = _note(b"prov\0", b"nm\0", b"-4@%eax 8@$1\0") + _note(b"prov\0", b"other\0", b":\0") + _note(b"\0", b"x\0", b"\0")
    notes = usdt.parse_notes(data)
    assert [(n.provider, n.name, n.args, n.loc_addr, n.base_addr, n.sema_addr) for n in notes] == [
        ("prov", "nm", "-4@%eax 8@$1", 1, 2, 3), ("prov", "other", "", 1, 2, 3), ("", "x", "", 1, 2, 3)
    ]
    for bad in (
        _note(b"prov\0", b"nm\0", b"", ntype=1),  # wrong type
        _note(b"prov\0", b"nm\0", b"\0", owner=b"GNU\0"),  # wrong owner
        _note(b"prov\0", b"\0", b"\0"),  # empty name
        _note(b"prov\0", b"nm", b""),  # unterminated name, no arguments
        _note(b"prov", b"", b""),  # unterminated provider
        _note(b"p\0", b"n\0", b"\0")[:-8],  # truncated
    ):
        with pytest.raises(ELFError):
            usdt.parse_notes(bad)


# ------------------------------------------------------------------ pure: argument specs
def test_arg_specs_hand_checked() -> None:
    A = usdt.UsdtArgSpec
    # libbpf's usdt.c example note, argument by argument
    spec = usdt.parse_spec("-4@-1204(%rbp) -4@%edi -8@-1216(%rbp) -8@%r8 -4@$5 -8@%r9 8@%rdx 8@%r10 -4@$-9 -2@%cx -2@%ax -1@%sil", 99)
    assert spec == usdt.UsdtSpec(
        (
            A(usdt.ARG_REG_DEREF, -1204, RBP, True, 32),
            A(usdt.ARG_REG, 0, RDI, True, 32),
            A(usdt.ARG_REG_DEREF, -1216, RBP, True, 0),
            A(usdt.ARG_REG, 0, R8, True, 0),
            A(usdt.ARG_CONST, 5, 0, True, 32),
            A(usdt.ARG_REG, 0, R9, True, 0),
            A(usdt.ARG_REG, 0, RDX, False, 0),
            A(usdt.ARG_REG, 0, R10, False, 0),
            A(usdt.ARG_CONST, -9, 0, True, 32),
            A(usdt.ARG_REG, 0, RCX, True, 48),
            A(usdt.ARG_REG, 0, RAX, True, 48),
            A(usdt.ARG_REG, 0, RSI, True, 56),
        ),
        99,
    )
    assert usdt.parse_arg("8@-8(%rbp)") == (A(usdt.ARG_REG_DEREF, -8, RBP, False, 0), 10)
    assert usdt.parse_arg("4@$5")[0] == A(usdt.ARG_CONST, 5, 0, False, 32)
    assert usdt.parse_arg("-8@%rax")[0] == A(usdt.ARG_REG, 0, RAX, True, 0)
    assert usdt.parse_arg("8@(%rsp)")[0] == A(usdt.ARG_REG_DEREF, 0, RSP, False, 0)
    assert usdt.parse_arg(" 1 @ -96 ( %rbp , %rax , 8 ) ")[0] == A(usdt.ARG_SIB, -96, RBP, False, 56, RAX, 3)
    assert usdt.parse_arg("2@(%rbx,%r11)")[0] == A(usdt.ARG_SIB, 0, RBX, False, 48, R11, 0)
    # every name of a register, 64 to 8 bits
    for names, off in (
        (("rax", "eax", "ax", "al"), RAX), (("rbp", "ebp", "bp", "bpl"), RBP), (("rsi", "esi", "si", "sil"), RSI),
        (("rdi", "edi", "di", "dil"), RDI), (("rsp", "esp", "sp", "spl"), RSP), (("rip", "eip"), RIP),
        (("r15", "r15d", "r15w", "r15b"), R15), (("r10", "r10d", "r10w", "r10b"), R10),
    ):
        for n in names:
            assert usdt.parse_arg(f"8@%{n}")[0].reg_off == off, n
    assert usdt.parse_spec("").args == ()
    for bad, err in (
        ("3@%eax", "size"), ("-16@%rax", "size"), ("4@%xmm0", "register"), ("4@%ah", "register"),
        ("1@-8(%rbp,%rax,3)", "scale"), ("4@eax", "unrecognized"), ("garbage", "unrecognized"),
    ):
        with pytest.raises(ParseError, match=err):
            usdt.parse_spec(bad)
    with pytest.raises(BPFOSError) as ei:
        usdt.parse_spec(" ".join(["4@$1"] * 13))
    assert ei.value.errno == errno.E2BIG
    with pytest.raises(NotSupportedError):
        usdt.parse_arg("4@x0", arch="aarch64")


def test_spec_bytes_both_layouts() -> None:
    A = usdt.UsdtArgSpec
    s = usdt.UsdtSpec((A(usdt.ARG_REG_DEREF, -8, RBP, True, 32), A(usdt.ARG_CONST, 5, 0, False, 56)), 0x1122334455667788)
    v1 = s.pack(1)
    assert len(v1) == 208 == usdt.SPEC_SIZE_V1
    # libbpf <= 1.6: u64 val_off; enum arg_type (4); short reg_off; bool arg_signed; char arg_bitshift
    assert v1[:16] == bytes.fromhex("f8ffffffffffffff" "02000000" "2000" "01" "20")
    assert v1[16:32] == bytes.fromhex("0500000000000000" "00000000" "0000" "00" "38")
    assert v1[32:192] == bytes(160)
    assert v1[192:] == bytes.fromhex("8877665544332211" "0200" "000000000000")
    v2 = s.pack(2)
    assert len(v2) == 304 == usdt.SPEC_SIZE_V2
    # libbpf 1.7+: arg_type:8 at byte 8, u16 {idx_reg_off:12, scale_bitshift:4} at 10, reserved at 12, reg_off at 14
    assert v2[:24] == bytes.fromhex("f8ffffffffffffff" "02" "00" "0000" "00" "00" "2000" "01" "20" "000000000000")
    sib = A(usdt.ARG_SIB, -96, RBP, False, 56, 0xABC, 5)  # bytes checked against gcc's layout of the 1.7 struct
    assert sib.pack(2)[8:16] == bytes.fromhex("0300bc5a00002000")
    assert usdt.UsdtSpec.unpack(v1) == s and usdt.UsdtSpec.unpack(v2) == s
    assert usdt.UsdtSpec.unpack(usdt.UsdtSpec((sib,)).pack(2)).args == (sib,)
    with pytest.raises(NotSupportedError, match="SIB"):
        usdt.UsdtSpec((sib,)).pack(1)
    with pytest.raises(NotSupportedError):
        usdt.spec_layout(200)


def test_layout_v1_matches_the_fixtures_btf() -> None:
    """The fixture was built with Debian's usdt.bpf.h (libbpf 1.1): our v1 offsets are its BTF's."""
    obj = bpf.Object.open(str(fixture_path("usdt.bpf.o")))
    spec = obj.btf
    assert spec is not None
    from pybpfload.btf.types import Struct

    arg = spec.find("__bpf_usdt_arg_spec", Struct)
    whole = spec.find("__bpf_usdt_spec", Struct)
    layout = {m.name: m.bit_offset // 8 for m in arg.members}
    assert layout == {"val_off": 0, "arg_type": 8, "reg_off": 12, "arg_signed": 14, "arg_bitshift": 15}
    assert arg.size == 16 and whole.size == usdt.SPEC_SIZE_V1
    assert {m.name: m.bit_offset // 8 for m in whole.members} == {"args": 0, "usdt_cookie": 192, "arg_cnt": 200}
    assert obj.maps["__bpf_usdt_specs"].value_size == usdt.SPEC_SIZE_V1
    obj.close()


def test_spec_id_allocation() -> None:
    a = usdt.SpecIdAllocator(4)
    assert a.allocate(["x", "y", "x"]) == ([0, 1, 0], [0, 1])  # de-duplicated within one attachment
    assert a.allocate(["x"]) == ([2], [2])  # never across attachments (the cookie differs)
    a.release([0, 1])
    assert a.allocate(["p", "q", "r"]) == ([1, 0, 3], [1, 0, 3])  # free list last-in first-out, then new ids
    with pytest.raises(BPFOSError) as ei:
        a.allocate(["s"])
    assert ei.value.errno == errno.E2BIG
    assert (a.free, a.next_id) == ([], 4)  # a failed allocation takes nothing


def test_section_names() -> None:
    from pybpfload.link.auto import auto_attach_kind
    from pybpfload.link.usdt import parse_usdt_target

    assert auto_attach_kind("usdt/libusdt_lib.so:pybpfload_lib:lib_probe") == "usdt"
    assert auto_attach_kind("usdt.s/x:y:z") == "usdt"
    assert auto_attach_kind("usdt") is None
    assert parse_usdt_target("/a/b:prov:name") == ("/a/b", "prov", "name")
    for bad in ("a:b", "a:b:c:d", "a::c"):
        with pytest.raises(BPFOSError):
            parse_usdt_target(bad)


# ------------------------------------------------------------------ kernel
class Target:
    """An interactive usdt_target: ``go(k)`` fires every probe k times and returns the semaphore."""

    def __init__(self, name: str = "usdt_target") -> None:
        self.proc = subprocess.Popen(
            [str(fixture_path(name))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def go(self, k: int = 1) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"go {k}\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def targets(*names: str) -> Iterator[List[Target]]:
    ts = [Target(n) for n in names]
    try:
        yield ts
    finally:
        for t in ts:
            t.close()


def _events(obj: bpf.Object) -> List[Tuple[Any, ...]]:
    from pybpfload.events.ringbuf import RingBuffer

    got: List[Tuple[Any, ...]] = []
    with RingBuffer(obj.maps["events"], lambda v: got.append(EVENT.unpack(bytes(v)))) as rb:
        rb.consume()
    return got


def _args(ev: Tuple[Any, ...]) -> Tuple[int, ...]:
    """The arguments an event says the program read (arg_cnt of them)."""
    return tuple(ev[3 : 3 + ev[1]])


def _expected(probe: str, i: int) -> List[Tuple[int, ...]]:
    """What round i of usdt_target passes to a probe (see fixtures/src/usdt_target.c)."""
    if probe == "args3":
        return [(i, -3 * i, (i + 200) & 0xFF), (i + 1000, -3 * (i + 1000), (i + 1200) & 0xFF)]
    if probe == "consts":
        return [(5, -9)]
    if probe == "sized":
        return [(-i, i, -i, i, -i, -i)]
    if probe == "guarded":
        return [(i,)]
    return [()]


def _cookies() -> bool:
    """Whether this kernel has BPF cookies (5.15+); without them PIE and libraries need a pid (the ip map)."""
    return features.has_bpf_cookie()


def _pid_unless_cookies(pid: int) -> int:
    """-1 (every process) where cookies exist, else ``pid``: as libbpf, PIE/library USDT then needs one."""
    return -1 if _cookies() else pid


@contextmanager
def loaded(no_cookie: bool = False) -> Iterator[bpf.Object]:
    """usdt.bpf.o loaded; ``no_cookie`` loads and attaches as on a kernel without BPF cookies (LINUX_HAS_BPF_COOKIE 0)."""
    saved = dict(features._cache)
    if no_cookie:
        features._cache[("has_bpf_cookie",)] = False
    try:
        with bpf.Object.open(str(fixture_path("usdt.bpf.o"))) as obj:
            obj.load()
            yield obj
    finally:
        features._cache.clear()
        features._cache.update(saved)


def _spec_entries(obj: bpf.Object, ids: Any) -> Dict[int, usdt.UsdtSpec]:
    m = obj.maps["__bpf_usdt_specs"]
    return {i: usdt.UsdtSpec.unpack(m.raw[i]) for i in ids}


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["usdt_target", "usdt_target_O0"])
def test_attach_reads_arguments_and_semaphore(name: str) -> None:
    with loaded() as obj:
        prog = obj.programs["usdt_any"]
        with targets(name) as (t,):
            assert t.go() == 0  # no probe yet: semaphore 0, nothing recorded
            pid = _pid_unless_cookies(t.pid)
            links = [prog.attach_usdt(str(fixture_path(name)), "pybpfload", p, pid, 100 + n) for n, p in enumerate(PROBES)]
            try:
                assert [len(link.uprobes) for link in links] == [2, 1, 1, 1, 1]
                args3 = links[0]
                # PIE -O2: two different argument strings, two specs; -O0: one spec for both call sites
                assert len(set(args3.spec_ids)) == (2 if name == "usdt_target" else 1)
                specs = _spec_entries(obj, set(i for link in links for i in link.spec_ids))
                for link, cookie in zip(links, range(100, 105)):
                    for sid, tg in zip(link.spec_ids, link.targets):
                        assert specs[sid] == usdt.parse_spec(tg.spec_str, cookie)
                        assert tg.spec.usdt_cookie == cookie
                for link in links:  # the BPF cookie of every uprobe is its spec id (0 without cookies: the ip map)
                    want = list(link.spec_ids) if _cookies() else [0] * len(link.spec_ids)
                    assert [u.info().target["cookie"] for u in link.uprobes] == want
                ips = set(obj.maps["__bpf_usdt_ip_to_spec_id"].keys())  # typed: long keys are ints
                assert ips == (set() if _cookies() else {tg.abs_ip for link in links for tg in link.targets})
                assert t.go(2) == 1  # the kernel counts the guarded probe's semaphore up while attached
            finally:
                for link in links:
                    link.close()
            assert t.go() == 0  # and down again on detach
        evs = _events(obj)
    assert evs and all(ev[0] == t.pid and ev[-2] == 0 for ev in evs)
    assert all(all(e == 0 for e in ev[9 : 9 + ev[1]]) for ev in evs)  # bpf_usdt_arg() succeeded for every argument
    by_probe: Dict[str, List[Tuple[int, ...]]] = {p: [] for p in PROBES}
    for ev in evs:
        by_probe[PROBES[ev[2] - 100]].append(_args(ev))
    for p in PROBES:
        want = [a for i in (2, 3) for a in _expected(p, i)]  # rounds 2 and 3 ran while attached
        assert sorted(by_probe[p]) == sorted(want), p


@pytest.mark.kernel
def test_pid_filter() -> None:
    with loaded() as obj, targets("usdt_target", "usdt_target") as (a, b):
        with obj.programs["usdt_any"].attach_usdt(str(fixture_path("usdt_target")), "pybpfload", "consts", pid=a.pid) as link:
            assert all(u.info().target["cookie"] == link.spec_ids[0] for u in link.uprobes)
            a.go()
            b.go(3)
        evs = _events(obj)
    assert [(ev[0], _args(ev)) for ev in evs] == [(a.pid, (5, -9))]


@pytest.mark.kernel
def test_detach_frees_spec_ids_as_libbpf() -> None:
    path = str(fixture_path("usdt_target"))
    with loaded() as obj, targets("usdt_target") as (t,):
        prog = obj.programs["usdt_any"]
        pid = _pid_unless_cookies(t.pid)
        first = prog.attach_usdt(path, "pybpfload", "args3", pid)
        second = prog.attach_usdt(path, "pybpfload", "consts", pid)
        assert (first.spec_ids, second.spec_ids) == ((0, 1), (2,))
        first.close()
        with prog.attach_usdt(path, "pybpfload", "sized", pid) as third, prog.attach_usdt(path, "pybpfload", "args3", pid) as fourth:
            assert third.spec_ids == (1,)  # the most recently freed id first
            assert fourth.spec_ids == (0, 3)
        second.close()
        with pytest.raises(bpf.errors.StateError):
            first.info()


@pytest.mark.kernel
def test_auto_attach_shared_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fixture_path("libusdt_lib.so").parent))
    with loaded() as obj, targets("usdt_target") as (t,):
        prog = obj.programs["usdt_lib_auto"]
        if _cookies():
            link = prog.attach()
        else:  # as libbpf: a library without a pid needs cookies; with the pid, the ip map
            with pytest.raises(NotSupportedError, match="PID"):
                prog.attach()
            link = prog.attach_usdt("libusdt_lib.so", "pybpfload_lib", "lib_probe", t.pid)
            (tg,) = link.targets
            assert tg.abs_ip == _load_base(t.pid, str(fixture_path("libusdt_lib.so"))) + tg.rel_ip
        assert link is not None and link.kind == "usdt"
        assert link.target == f"{fixture_path('libusdt_lib.so')}:pybpfload_lib:lib_probe"
        assert obj.programs["usdt_any"].attach() is None  # bare SEC("usdt"): skipped, as libbpf
        with link:
            t.go(2)
        t.go()
        evs = _events(obj)
    # usdt_lib_work(i, 2 * i) fires lib_probe(y = 2 * i, x = i): the program checks y == 2 * x
    assert [(ev[0], ev[-2], _args(ev)) for ev in evs] == [(t.pid, 1, (2 * i, i)) for i in (1, 2)]


@pytest.mark.kernel
def test_without_bpf_cookies_ip_map() -> None:
    """As on kernels before 5.15: no cookies, the ip-to-spec-id map (which the program reads) instead."""
    with loaded(no_cookie=True) as obj, targets("usdt_target", "usdt_target_O0") as (pie, exe):
        prog = obj.programs["usdt_any"]
        ip_map = obj.maps["__bpf_usdt_ip_to_spec_id"]
        with pytest.raises(NotSupportedError, match="PID"):
            prog.attach_usdt(str(fixture_path("usdt_target")), "pybpfload", "args3")
        with prog.attach_usdt(str(fixture_path("usdt_target")), "pybpfload", "args3", pid=pie.pid, usdt_cookie=5) as l1, \
                prog.attach_usdt(str(fixture_path("usdt_target_O0")), "pybpfload", "sized", usdt_cookie=6) as l2:
            assert not l1.use_cookie
            assert all(u.info().target["cookie"] == 0 for u in l1.uprobes + l2.uprobes)
            base = _load_base(pie.pid, str(fixture_path("usdt_target")))
            want = {base + tg.rel_ip: sid for tg, sid in zip(l1.targets, l1.spec_ids)}
            want.update({tg.note.loc_addr: sid for tg, sid in zip(l2.targets, l2.spec_ids)})
            assert dict(ip_map.items()) == want  # typed: long ip -> __u32 spec id
            # the same call sites again: an IP collision (EEXIST, as libbpf), and nothing of the failed attach stays
            fds = _perf_fds()
            with pytest.raises(BPFOSError) as ei:
                prog.attach_usdt(str(fixture_path("usdt_target_O0")), "pybpfload", "sized", usdt_cookie=7)
            assert ei.value.errno == errno.EEXIST
            assert _perf_fds() == fds and len(ip_map) == len(want)
            with prog.attach_usdt(str(fixture_path("usdt_target_O0")), "pybpfload", "consts") as l3:
                assert l3.spec_ids == (max(want.values()) + 1,)  # the failed attach's id was given back
            pie.go()
            exe.go()
        assert len(ip_map) == 0  # detach removed its entries
        evs = _events(obj)
    got = sorted((ev[0], ev[2], _args(ev)) for ev in evs)
    assert got == sorted([(pie.pid, 5, a) for a in _expected("args3", 1)] + [(exe.pid, 6, a) for a in _expected("sized", 1)])


def _load_base(pid: int, path: str) -> int:
    """Where ``path`` is mapped in ``pid`` (address of file offset 0)."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == path:
                return int(parts[0].split("-")[0], 16) - int(parts[2], 16)
    raise AssertionError(f"{path} not mapped in {pid}")


@pytest.mark.kernel
def test_errors() -> None:
    with loaded() as obj:
        prog = obj.programs["usdt_any"]
        with pytest.raises(BPFOSError) as ei:
            prog.attach_usdt(str(fixture_path("usdt_target")), "pybpfload", "nosuchprobe")
        assert ei.value.errno == errno.ENOENT
        with pytest.raises(BPFOSError) as ei:
            prog.attach_usdt(str(fixture_path("uprobe_target")), "pybpfload", "args3")  # no .note.stapsdt
        assert ei.value.errno == errno.ENOENT
    # a program without usdt.bpf.h's maps
    with bpf.Object.open(str(fixture_path("attach_trace.bpf.o"))) as other:
        other.load()
        up = next(p for p in other.programs.values() if p.section_name == "uprobe")
        with pytest.raises(BPFOSError) as ei:
            up.attach_usdt(str(fixture_path("usdt_target")), "pybpfload", "args3")
        assert ei.value.errno == errno.ESRCH


# ------------------------------------------------------------------ libbpf 1.1 as the oracle
_SIGS: Dict[str, Tuple[Any, List[Any]]] = {
    "bpf_object__open_file": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_void_p]),
    "bpf_object__load": (ctypes.c_int, [ctypes.c_void_p]),
    "bpf_object__close": (None, [ctypes.c_void_p]),
    "bpf_object__find_program_by_name": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
    "bpf_object__find_map_by_name": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
    "bpf_program__fd": (ctypes.c_int, [ctypes.c_void_p]),
    "bpf_map__fd": (ctypes.c_int, [ctypes.c_void_p]),
    "bpf_program__attach_usdt": (
        ctypes.c_void_p,
        [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p],
    ),
    "bpf_link__destroy": (ctypes.c_int, [ctypes.c_void_p]),
    "libbpf_set_print": (ctypes.c_void_p, [ctypes.c_void_p]),
}


class _UsdtOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("usdt_cookie", ctypes.c_uint64)]


def _oracle() -> ctypes.CDLL:
    """libbpf.so.1 (test_libbpf_api's handle), with the signatures this module needs besides its own."""
    from . import test_libbpf_api

    lib = test_libbpf_api.oracle()
    for n, (res, args) in _SIGS.items():
        if n not in test_libbpf_api._SIGS:
            getattr(lib, n).restype, getattr(lib, n).argtypes = res, args
    return lib


# the attach sequence both sides run: (probe, binary, cookie), None detaches the first live link
_SEQUENCE: List[Optional[Tuple[str, str, int]]] = [
    ("args3", "usdt_target", 11), ("consts", "usdt_target", 12), ("guarded", "usdt_target", 13),
    ("args3", "usdt_target_O0", 14), None, ("sized", "usdt_target", 15), ("noargs", "usdt_target_O0", 16),
    ("guarded", "usdt_target_O0", 17), ("lib_probe", "libusdt_lib.so", 18),
]


def _kernel_uprobes(prog_id: int) -> Optional[List[Tuple[str, int, int]]]:
    """(file, offset, cookie) of every perf link of program ``prog_id``, from the kernel; None before 6.6 (no description)."""
    out = []
    from pybpfload.link.base import Link

    for link_id in Link.ids():
        try:
            link = Link.from_id(link_id)
        except OSError:
            continue
        with link:
            info = link.info()
            if info.prog_id == prog_id:
                if "file_name" not in info.target:
                    return None
                out.append((info.target["file_name"], info.target["offset"], info.target["cookie"]))
    return sorted(out)


def _perf_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[perf_event]"
        except OSError:
            pass
    return n


def _ip_map_by_fd(fd: int) -> Dict[int, int]:
    m = bpf.Map.from_fd(fd)  # typed from the kernel's BTF: long ip -> __u32 spec id
    with m:
        assert m.typed
        return dict(m.items())


def _specs_by_fd(fd: int) -> Dict[int, bytes]:
    m = bpf.Map.from_fd(fd, typed=False)  # the specs compared byte for byte
    with m:
        return {int.from_bytes(k, "little"): v for k, v in m.items() if any(v)}


@pytest.mark.kernel
def test_same_specs_and_uprobes_as_libbpf() -> None:
    lib = _oracle()
    path = str(fixture_path("usdt.bpf.o")).encode()
    cobj = lib.bpf_object__open_file(path, None)
    assert cobj, "libbpf could not open usdt.bpf.o"
    clinks: List[int] = []
    try:
        assert lib.bpf_object__load(cobj) == 0
        cprog = lib.bpf_object__find_program_by_name(cobj, b"usdt_any")
        cprog_id = bpf.Program.from_fd(lib.bpf_program__fd(cprog))
        with cprog_id:
            c_id = cprog_id.info().id
        with loaded() as obj, targets("usdt_target") as (t,):
            prog = obj.programs["usdt_any"]
            links: List[Any] = []
            c_semaphore = []
            pid = _pid_unless_cookies(t.pid)  # without cookies both refuse PIE/libraries for every process
            for step in _SEQUENCE:
                if step is None:
                    links.pop(0).close()
                    lib.bpf_link__destroy(clinks.pop(0))
                    continue
                probe, binary, cookie = step
                provider = "pybpfload_lib" if probe == "lib_probe" else "pybpfload"
                bin_path = str(fixture_path(binary))
                opts = _UsdtOpts(ctypes.sizeof(_UsdtOpts), cookie)
                cl = lib.bpf_program__attach_usdt(cprog, pid, bin_path.encode(), provider.encode(), probe.encode(), ctypes.byref(opts))
                assert cl, f"libbpf could not attach {probe}: errno {ctypes.get_errno()}"
                clinks.append(cl)
                if probe == "guarded" and binary == "usdt_target":
                    c_semaphore.append(t.go())  # libbpf's uprobe alone counts the semaphore up
                links.append(prog.attach_usdt(bin_path, provider, probe, pid, cookie))
            try:
                ours_specs = _specs_by_fd(obj.maps["__bpf_usdt_specs"].fd)
                theirs_specs = _specs_by_fd(lib.bpf_map__fd(lib.bpf_object__find_map_by_name(cobj, b"__bpf_usdt_specs")))
                live = sorted(i for link in links for i in link.spec_ids)
                assert sorted(ours_specs) == sorted(set(live))  # we clear the specs of freed ids
                # libbpf leaves freed ids' specs behind: every live one must be identical, byte for byte
                assert {i: theirs_specs.get(i) for i in ours_specs} == ours_specs
                assert len(ours_specs) == len(set(live)) == 7 and max(theirs_specs) == max(ours_specs)
                ip_maps = [
                    _ip_map_by_fd(fd)
                    for fd in (obj.maps["__bpf_usdt_ip_to_spec_id"].fd,
                               lib.bpf_map__fd(lib.bpf_object__find_map_by_name(cobj, b"__bpf_usdt_ip_to_spec_id")))
                ]
                assert ip_maps[0] == ip_maps[1] and (len(ip_maps[0]) == (0 if _cookies() else 8))
                n_ours = sum(len(link.uprobes) for link in links)
                assert n_ours == 8 and _perf_fds() == 2 * n_ours  # as many uprobes on each side
                ours_up = _kernel_uprobes(prog.info().id)
                if links[0].uprobes[0].is_bpf_link and ours_up is not None:  # perf links described (6.6+): offsets, cookies
                    assert ours_up == _kernel_uprobes(c_id) and len(ours_up) == 8
                # the kernel counts the semaphore once per probe location, whoever attaches
                assert c_semaphore == [1] and t.go() == 1
            finally:
                for link in links:
                    link.close()
            assert t.go() == 1  # libbpf's uprobe still holds it
            while clinks:
                lib.bpf_link__destroy(clinks.pop())
            assert t.go() == 0
    finally:
        for cl in clinks:
            lib.bpf_link__destroy(cl)
        lib.bpf_object__close(cobj)


@pytest.mark.kernel
def test_libbpf_api_matches_libbpf() -> None:
    """pybpfload.libbpf.bpf_program__attach_usdt: NULL + errno as libbpf 1.1 for the same calls."""
    import pybpfload.libbpf as L

    lib = _oracle()
    path = str(fixture_path("usdt_target"))
    cobj = lib.bpf_object__open_file(str(fixture_path("usdt.bpf.o")).encode(), None)
    obj = L.bpf_object__open_file(str(fixture_path("usdt.bpf.o")), None)
    try:
        cprog = lib.bpf_object__find_program_by_name(cobj, b"usdt_any")
        prog = L.bpf_object__find_program_by_name(obj, "usdt_any")
        ctypes.set_errno(0)
        assert not lib.bpf_program__attach_usdt(cprog, -1, path.encode(), b"pybpfload", b"consts", None)
        c_err = ctypes.get_errno()
        assert L.bpf_program__attach_usdt(prog, -1, path, "pybpfload", "consts", None) is None
        assert L.get_errno() == c_err == errno.EINVAL  # not loaded
        assert lib.bpf_object__load(cobj) == 0 and L.bpf_object__load(obj) == 0
        for args in ((path, "pybpfload", "nosuchprobe"), (str(fixture_path("uprobe_target")), "pybpfload", "consts")):
            ctypes.set_errno(0)
            assert not lib.bpf_program__attach_usdt(cprog, -1, args[0].encode(), args[1].encode(), args[2].encode(), None)
            c_err = ctypes.get_errno()
            assert L.bpf_program__attach_usdt(prog, -1, *args, None) is None
            assert L.get_errno() == c_err == errno.ENOENT, args
        exe = str(fixture_path("usdt_target_O0"))  # ET_EXEC: any pid, with or without cookies
        link = L.bpf_program__attach_usdt(prog, 0, exe, "pybpfload", "consts", L.BpfUsdtOpts(usdt_cookie=9))
        assert link is not None and link.spec_ids == (0,)
        assert usdt.UsdtSpec.unpack(obj.maps["__bpf_usdt_specs"].raw[0]).usdt_cookie == 9
        assert link.info().target["uprobes"] == 1
        link.close()
    finally:
        L.bpf_object__close(obj)
        lib.bpf_object__close(cobj)
