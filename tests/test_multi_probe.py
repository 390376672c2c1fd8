"""Multi probes: uprobe.multi / uretprobe.multi / uprobe.session / uprobe.multi.s
and kprobe.multi / kretprobe.multi / kprobe.session.

Without a kernel: glob matching, target resolution (symbol offsets against
``nm``; kprobe patterns over a fake tracefs), the LINK_CREATE attributes, the
section-name parsing and libbpf's argument rules.

On the kernel: uprobe multi links run for real on fixtures/multi_target
(counts per attach cookie prove each function's probe ran), with return
probes, sessions, a pid filter, sleepable programs, auto-attach and link
info.  kprobe_multi links run for real where the probe says the kernel can
make them (a 6.12 guest: ``PYTHONPATH=tools python3 -m vmtest run 6.12 --
/work/venv/bin/python -m pytest -q tests/test_multi_probe.py``); elsewhere
(this host has no CONFIG_FPROBE) the clear NotSupportedError is asserted
and the attributes we would pass are checked instead.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from pybpfload import Object
from pybpfload.link.auto import attach_program, auto_attach_kind
from pybpfload.errors import BPFError, BPFOSError, NotSupportedError
from pybpfload.link import Link, MultiProbeLink, attach_kprobe_multi, attach_uprobe_multi
from pybpfload.link.elfsym import find_binary, symbol_offset
from pybpfload.link.multi import (
    BPF_F_KPROBE_MULTI_RETURN,
    BPF_F_UPROBE_MULTI_RETURN,
    glob_match,
    kprobe_multi_addrs,
    kprobe_multi_attr,
    kprobe_multi_support,
    parse_kprobe_multi_section,
    parse_uprobe_multi_section,
    uprobe_multi_attr,
    uprobe_multi_offsets,
    uprobe_multi_support,
)
from pybpfload.syscall import AttachType, LinkType

from .conftest import FIXTURES, fixture_path, require_tool
from .kernel_adapt import load_or_assert_refused

TARGET = str(FIXTURES / "multi_target")
FUNCS = ["mt_alpha", "mt_beta", "mt_gamma", "other_delta"]
CALLS = {"mt_alpha": 1, "mt_beta": 2, "mt_gamma": 3, "other_delta": 4}  # what multi_target calls
K_UP, K_URET, K_USESS, K_USESS_ENTRY_ONLY, K_UP_SLEEP, K_UP_AUTO, K_URET_AUTO, K_KP, K_KRET, K_KSESS, K_KP_AUTO = range(11)


# ================================================================ no kernel
@pytest.mark.parametrize(
    "name,pattern,want",
    [
        ("mt_alpha", "mt_*", True),
        ("mt_alpha", "*", True),
        ("mt_alpha", "mt_alpha", True),
        ("mt_alpha", "mt_alph", False),
        ("mt_alpha", "*alpha", True),
        ("mt_alpha", "m?_a*a", True),
        ("mt_alpha", "*x*", False),
        ("mt_beta", "mt_?eta", True),
        ("a[b]", "a[b]", True),  # no character classes (libbpf), unlike fnmatch
        ("ab", "a[b]", False),
        ("", "*", True),
        ("", "?", False),
        ("abc", "a**c", True),
    ],
)
def test_glob_match_is_libbpfs(name: str, pattern: str, want: bool) -> None:
    assert glob_match(name, pattern) is want


def _nm_offsets(path: str, dynamic: bool = False) -> Dict[str, int]:
    """Function name -> file offset, from nm (addresses) and readelf (section address/offset): the oracle."""
    nm = require_tool("nm")
    out = subprocess.run([nm, "-D" if dynamic else "--defined-only", "--defined-only", path], check=True, capture_output=True, text=True).stdout
    secs = subprocess.run([require_tool("readelf"), "-SW", path], check=True, capture_output=True, text=True).stdout
    text = next(line.split("]", 1)[1].split() for line in secs.splitlines() if " .text " in line)
    addr, off = int(text[2], 16), int(text[3], 16)
    res = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TtWw":
            res[parts[2].split("@", 1)[0]] = int(parts[0], 16) - addr + off
    return res


def test_uprobe_pattern_offsets_match_nm() -> None:
    nm = _nm_offsets(TARGET)
    assert uprobe_multi_offsets(TARGET, "mt_*") == [nm[f] for f in ("mt_alpha", "mt_beta", "mt_gamma")]
    assert uprobe_multi_offsets(TARGET, "*_delta") == [nm["other_delta"]]
    assert sorted(uprobe_multi_offsets(TARGET, "*t_?????")) == sorted([nm["mt_alpha"], nm["mt_gamma"]])
    for f in FUNCS:
        assert symbol_offset(TARGET, f) == nm[f]
    with pytest.raises(BPFOSError) as ei:
        uprobe_multi_offsets(TARGET, "no_such_*")
    assert ei.value.errno == errno.ENOENT  # libbpf: -ENOENT


def test_uprobe_pattern_uses_dynsym_without_symtab() -> None:
    libc = find_binary("libc.so.6")
    nm = _nm_offsets(libc, dynamic=True)
    got = uprobe_multi_offsets(libc, "getpp?d")
    assert got == [nm["getppid"]]


def test_uprobe_multi_attr_layout() -> None:
    ma = uprobe_multi_attr(7, "/bin/true", [0x10, 0x20], cookies=[1, 2], ref_ctr_offsets=[0, 8], retprobe=True, pid=1234)
    a = ma.attr
    assert (a.prog_fd, a.target_fd, a.attach_type, a.flags) == (7, 0, AttachType.BPF_TRACE_UPROBE_MULTI, 0)
    u = a.uprobe_multi
    assert ctypes.string_at(u.path) == b"/bin/true"
    assert list((ctypes.c_uint64 * 2).from_address(u.offsets)) == [0x10, 0x20]
    assert list((ctypes.c_uint64 * 2).from_address(u.cookies)) == [1, 2]
    assert list((ctypes.c_uint64 * 2).from_address(u.ref_ctr_offsets)) == [0, 8]
    assert (u.cnt, u.flags, u.pid) == (2, BPF_F_UPROBE_MULTI_RETURN, 1234)
    s = uprobe_multi_attr(7, "/bin/true", [1], session=True, pid=0).attr
    assert s.attach_type == AttachType.BPF_TRACE_UPROBE_SESSION and s.uprobe_multi.flags == 0
    assert s.uprobe_multi.pid == os.getpid()  # libbpf: pid 0 is the caller
    assert (s.uprobe_multi.cookies, s.uprobe_multi.ref_ctr_offsets) == (0, 0)
    assert uprobe_multi_attr(7, "/bin/true", [1], pid=-1).attr.uprobe_multi.pid == 0  # every process
    with pytest.raises(ValueError):
        uprobe_multi_attr(7, "/bin/true", [1], retprobe=True, session=True)
    with pytest.raises(ValueError):
        uprobe_multi_attr(7, "/bin/true", [1, 2], cookies=[1])


def _syms_of(ma_attr: object) -> List[str]:
    k = ma_attr.kprobe_multi  # type: ignore[attr-defined]
    ptrs = (ctypes.c_char_p * k.cnt).from_address(k.syms)
    return [p.decode() for p in ptrs]


def test_kprobe_multi_attr_layout() -> None:
    ma = kprobe_multi_attr(9, syms=["b_func", "a_func"], cookies=[20, 10], retprobe=True)
    a, k = ma.attr, ma.attr.kprobe_multi
    assert (a.prog_fd, a.target_fd, a.attach_type) == (9, 0, AttachType.BPF_TRACE_KPROBE_MULTI)
    # passed in the caller's order, cookies alongside: the kernel sorts them together (as libbpf leaves it)
    assert _syms_of(a) == ["b_func", "a_func"] and list((ctypes.c_uint64 * 2).from_address(k.cookies)) == [20, 10]
    assert (k.cnt, k.flags, k.addrs) == (2, BPF_F_KPROBE_MULTI_RETURN, 0)
    mb = kprobe_multi_attr(9, addrs=[0xFFFFFFFF81000000, 0xFFFFFFFF81000010], session=True)
    b = mb.attr  # mb keeps the arrays alive
    assert b.attach_type == AttachType.BPF_TRACE_KPROBE_SESSION and b.kprobe_multi.syms == 0 and b.kprobe_multi.flags == 0
    assert list((ctypes.c_uint64 * 2).from_address(b.kprobe_multi.addrs)) == [0xFFFFFFFF81000000, 0xFFFFFFFF81000010]
    for bad in ({}, {"syms": ["a"], "addrs": [1]}, {"syms": ["a"], "retprobe": True, "session": True}, {"syms": []}):
        with pytest.raises(ValueError):
            kprobe_multi_attr(9, **bad)  # type: ignore[arg-type]


def test_kprobe_pattern_resolution(tmp_path: Path) -> None:
    # available_filter_functions_addrs (6.5+): addresses straight from tracefs, in its order
    (tmp_path / "available_filter_functions_addrs").write_text(
        "ffffffff81001000 __x64_sys_getpid\nffffffff81002000 __x64_sys_getppid\nffffffff81003000 do_sys_open\n"
        "ffffffffc0001000 mod_func [some_mod]\n"
    )
    assert kprobe_multi_addrs("__x64_sys_getp*id", tracefs=str(tmp_path)) == [0xFFFFFFFF81001000, 0xFFFFFFFF81002000]
    assert kprobe_multi_addrs("mod_*", tracefs=str(tmp_path)) == [0xFFFFFFFFC0001000]
    with pytest.raises(BPFOSError) as ei:
        kprobe_multi_addrs("nothing*", tracefs=str(tmp_path))
    assert ei.value.errno == errno.ENOENT
    # older kernels: names from available_filter_functions, addresses from kallsyms (.llvm.<hash> tolerated)
    old = tmp_path / "old"
    old.mkdir()
    (old / "available_filter_functions").write_text("__x64_sys_getpid\nfoo_bar\nnot_traced_twin\n")
    kallsyms = old / "kallsyms"
    kallsyms.write_text(
        "ffffffff81001000 T __x64_sys_getpid\nffffffff81005000 t foo_bar.llvm.123456\nffffffff81006000 T foo_baz\n"
        "ffffffff81007000 t not_traced\n"
    )
    assert kprobe_multi_addrs("*", tracefs=str(old), kallsyms=str(kallsyms)) == [0xFFFFFFFF81001000, 0xFFFFFFFF81005000]
    assert kprobe_multi_addrs("foo_*", tracefs=str(old), kallsyms=str(kallsyms)) == [0xFFFFFFFF81005000]


@pytest.mark.parametrize(
    "section,kind",
    [
        ("uprobe.multi/multi_target:mt_*", "uprobe_multi"),
        ("uretprobe.multi//bin/x:f*", "uprobe_multi"),
        ("uprobe.session/libc.so.6:getp*", "uprobe_multi"),
        ("uprobe.multi.s/x:y", "uprobe_multi"),
        ("uretprobe.multi.s/x:y", "uprobe_multi"),
        ("uprobe.session.s/x:y", "uprobe_multi"),
        ("kprobe.multi/do_*", "kprobe_multi"),
        ("kretprobe.multi/do_*", "kprobe_multi"),
        ("kprobe.session/do_*", "kprobe_multi"),
        ("uprobe.multi", None),
        ("uretprobe.multi", None),
        ("uprobe.session", None),
        ("kprobe.multi", None),
        ("kretprobe.multi", None),
        ("kprobe.session", None),
    ],
)
def test_auto_attach_kind_multi(section: str, kind: object) -> None:
    assert auto_attach_kind(section) == kind


def test_section_parsing() -> None:
    assert parse_kprobe_multi_section("kprobe.multi", "__x64_sys_getp?id") == {"pattern": "__x64_sys_getp?id", "retprobe": False, "session": False}
    assert parse_kprobe_multi_section("kretprobe.multi", "vfs_*+junk")["pattern"] == "vfs_*"  # libbpf's %m[a-zA-Z0-9_.*?]
    assert parse_kprobe_multi_section("kprobe.session", "x")["session"] is True
    with pytest.raises(BPFError):
        parse_kprobe_multi_section("kprobe.multi", "+bad")
    assert parse_uprobe_multi_section("uretprobe.multi", "/bin/x:f*") == {"binary": "/bin/x", "pattern": "f*", "retprobe": True, "session": False}
    assert parse_uprobe_multi_section("uprobe.session.s", "libc.so.6:getp*")["session"] is True
    for bad in ("nocolon", ":f", "/bin/x:"):
        with pytest.raises(BPFError):
            parse_uprobe_multi_section("uprobe.multi", bad)


# ================================================================ kernel
K = pytest.mark.kernel


@pytest.fixture
def multi_obj(request: pytest.FixtureRequest) -> Iterator[Object]:
    """multi_probe.bpf.o with only the programs the test names (indirect parameter) loaded."""
    keep = set(request.param)
    with Object.open(fixture_path("multi_probe.bpf.o")) as obj:
        for name, p in obj.programs.items():
            p.autoload = name in keep
        # every program reads its cookie; uprobe.multi.s ones are sleepable
        load_or_assert_refused(obj, "sleepable_uprobe" if any(obj.programs[n].flags & (1 << 4) for n in keep) else "bpf_cookie")
        yield obj


def counts(obj: Object) -> Dict[Tuple[int, int, int], int]:
    # typed: struct key { __u32 tgid, kind; __u64 cookie; } -> __u64
    return {(k.tgid, k.kind, k.cookie): v for k, v in obj.maps["counts"].items()}


def by_cookie(obj: Object, kind: int, tgid: int) -> Dict[int, int]:
    return {c: n for (t, k, c), n in counts(obj).items() if t == tgid and k == kind}


def run_target() -> int:
    """Run multi_target once; its pid."""
    p = subprocess.Popen([TARGET], stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0 and out.strip() == str(sum(CALLS[f] * (i + 1) for i, f in enumerate(FUNCS)))
    return p.pid


def _need_uprobe_multi(session: bool = False) -> None:
    if not uprobe_multi_support(session=session):
        pytest.skip("the kernel cannot make uprobe_multi links: see test_uprobe_multi_refused_where_absent")


@K
@pytest.mark.parametrize("multi_obj", [("up_multi",)], indirect=True, ids=["obj"])
def test_uprobe_multi_symbols_with_cookies(multi_obj: Object) -> None:
    _need_uprobe_multi()
    cookies = [0x100 + i for i in range(len(FUNCS))]
    with attach_uprobe_multi(multi_obj.programs["up_multi"], TARGET, syms=FUNCS, cookies=cookies) as link:
        assert isinstance(link, MultiProbeLink) and link.path == os.path.abspath(TARGET)
        assert link.offsets == tuple(symbol_offset(TARGET, f) for f in FUNCS)
        pid = run_target()
        # every function's probe ran, as often as it was called: the cookie says which one
        assert by_cookie(multi_obj, K_UP, pid) == {0x100 + i: CALLS[f] for i, f in enumerate(FUNCS)}
        info = link.info()
        assert info.type == LinkType.BPF_LINK_TYPE_UPROBE_MULTI
        t = info.target
        assert (t["count"], t["flags"], t["pid"], t["path"]) == (4, 0, 0, os.path.abspath(TARGET))
        assert t["offsets"] == link.offsets and t["cookies"] == tuple(cookies)
    run_target()  # detached: nothing more counted
    assert sum(by_cookie(multi_obj, K_UP, pid).values()) == 10


@K
@pytest.mark.parametrize("multi_obj", [("up_multi", "uret_multi",)], indirect=True, ids=["obj"])
def test_uprobe_multi_pattern_and_return(multi_obj: Object) -> None:
    _need_uprobe_multi()
    progs = multi_obj.programs
    with progs["up_multi"].attach_uprobe_multi(TARGET, "mt_*") as entry, progs["uret_multi"].attach_uprobe_multi(TARGET, "*_delta", retprobe=True) as ret:
        assert len(entry.offsets) == 3 and len(ret.offsets) == 1
        assert ret.info().target["flags"] == BPF_F_UPROBE_MULTI_RETURN
        pid = run_target()
    assert by_cookie(multi_obj, K_UP, pid) == {0: 1 + 2 + 3}
    assert by_cookie(multi_obj, K_URET, pid) == {0: 4}


@K
@pytest.mark.parametrize("multi_obj", [("up_multi",)], indirect=True, ids=["obj"])
def test_uprobe_multi_offsets_and_pid_filter(multi_obj: Object) -> None:
    _need_uprobe_multi()
    waiting = [subprocess.Popen([TARGET, "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for p in waiting:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        a, b = waiting
        offs = [symbol_offset(TARGET, "mt_beta"), symbol_offset(TARGET, "other_delta")]
        with attach_uprobe_multi(multi_obj.programs["up_multi"], TARGET, offsets=offs, cookies=[2, 4], pid=a.pid) as link:
            assert link.info().target["pid"] == a.pid
            for p in waiting:
                p.communicate("go\n", timeout=30)
        assert by_cookie(multi_obj, K_UP, a.pid) == {2: 2, 4: 4}
        assert by_cookie(multi_obj, K_UP, b.pid) == {}  # filtered out by the kernel
    finally:
        for p in waiting:
            if p.poll() is None:
                p.kill()
                p.wait()


@K
@pytest.mark.parametrize("multi_obj", [("up_session", "up_session_entry_only",)], indirect=True, ids=["obj"])
def test_uprobe_session(multi_obj: Object) -> None:
    if not uprobe_multi_support(session=True):
        with pytest.raises(NotSupportedError, match="uprobe session"):
            multi_obj.programs["up_session"].attach_uprobe_multi(TARGET, "mt_*")
        return
    progs = multi_obj.programs
    # session taken from the program's attach type (SEC("uprobe.session"))
    with progs["up_session"].attach_uprobe_multi(TARGET, syms=["mt_beta", "mt_gamma"], cookies=[2, 3]) as both, progs[
        "up_session_entry_only"
    ].attach_uprobe_multi(TARGET, syms=["mt_beta", "mt_gamma"], cookies=[2, 3]) as entry:
        assert both.kind == entry.kind == "uprobe_session"
        pid = run_target()
    # returned 0 at entry: run again at return (twice per call); returned 1: entry only
    assert by_cookie(multi_obj, K_USESS, pid) == {2: 4, 3: 6}
    assert by_cookie(multi_obj, K_USESS_ENTRY_ONLY, pid) == {2: 2, 3: 3}


@K
@pytest.mark.parametrize("multi_obj", [("up_multi_sleepable",)], indirect=True, ids=["obj"])
def test_uprobe_multi_sleepable(multi_obj: Object) -> None:
    _need_uprobe_multi()
    with multi_obj.programs["up_multi_sleepable"].attach_uprobe_multi(TARGET, "mt_alpha", cookies=None):
        pid = run_target()
    assert by_cookie(multi_obj, K_UP_SLEEP, pid) == {0: 1}


@K
@pytest.mark.parametrize("multi_obj", [("up_auto", "uret_auto",)], indirect=True, ids=["obj"])
def test_uprobe_multi_auto_attach_from_section(multi_obj: Object, monkeypatch: pytest.MonkeyPatch) -> None:
    _need_uprobe_multi()
    # SEC("uprobe.multi/multi_target:mt_*"): a name without '/' is looked up on PATH, as libbpf does
    monkeypatch.setenv("PATH", f"{FIXTURES}:{os.environ.get('PATH', '')}")
    links: List[Link] = []
    try:
        for name in ("up_auto", "uret_auto"):
            link = multi_obj.programs[name].attach()
            assert isinstance(link, MultiProbeLink)
            links.append(link)
        assert links[1].info().target["flags"] == BPF_F_UPROBE_MULTI_RETURN and len(links[1].offsets) == 1  # mt_?eta
        pid = run_target()
    finally:
        for link in links:
            link.close()
    assert by_cookie(multi_obj, K_UP_AUTO, pid) == {0: 6}
    assert by_cookie(multi_obj, K_URET_AUTO, pid) == {0: 2}


@K
@pytest.mark.parametrize("multi_obj", [("up_multi",)], indirect=True, ids=["obj"])
def test_uprobe_multi_errors(multi_obj: Object) -> None:
    prog = multi_obj.programs["up_multi"]
    with pytest.raises(BPFError, match="no function 'nope'"):
        attach_uprobe_multi(prog, TARGET, syms=["mt_alpha", "nope"])
    with pytest.raises(BPFOSError) as ei:
        attach_uprobe_multi(prog, TARGET, "zz*")
    assert ei.value.errno == errno.ENOENT
    # libbpf's -EINVAL argument rules
    for kw in ({}, {"pattern": "mt_*", "cookies": [1]}, {"syms": ["mt_alpha"], "offsets": [1]}, {"pattern": "x", "retprobe": True, "session": True}):
        with pytest.raises(ValueError):
            attach_uprobe_multi(prog, TARGET, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cookies"):
        attach_uprobe_multi(prog, TARGET, syms=["mt_alpha"], cookies=[1, 2])


@K
@pytest.mark.parametrize("multi_obj", [("up_multi",)], indirect=True, ids=["obj"])
def test_uprobe_multi_refused_where_absent(multi_obj: Object) -> None:
    if uprobe_multi_support():
        pytest.skip("this kernel has uprobe_multi links (the other tests run them)")
    with pytest.raises(NotSupportedError, match="uprobe multi links"):
        attach_uprobe_multi(multi_obj.programs["up_multi"], TARGET, "mt_*")


# ---------------------------------------------------------------- kprobe.multi
def _sys(name: str) -> str:
    return {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_"}.get(platform.machine(), "sys_") + name


_libc = ctypes.CDLL(None, use_errno=True)


@K
@pytest.mark.parametrize("multi_obj", [("kp_multi", "kret_multi",)], indirect=True, ids=["obj"])
def test_kprobe_multi_runs_or_is_refused_clearly(multi_obj: Object) -> None:
    progs = multi_obj.programs
    syms = [_sys("getppid"), _sys("getpid")]
    if not kprobe_multi_support():
        # this host: no CONFIG_FPROBE.  The clear error, after the attributes were built as checked above
        with pytest.raises(NotSupportedError, match="kprobe multi links.*CONFIG_FPROBE|kprobe multi links.*Linux 5.18"):
            attach_kprobe_multi(progs["kp_multi"], syms=syms, cookies=[1, 2])
        with pytest.raises(NotSupportedError, match="kretprobe multi links"):
            attach_kprobe_multi(progs["kret_multi"], _sys("getpid"), retprobe=True)  # no wildcard: passed as a symbol
        return
    me = os.getpid()
    with attach_kprobe_multi(progs["kp_multi"], syms=syms, cookies=[1, 2]) as entry, attach_kprobe_multi(
        progs["kret_multi"], f"{_sys('getpgi')}?", retprobe=True
    ) as ret:
        info = entry.info()
        assert info.type == LinkType.BPF_LINK_TYPE_KPROBE_MULTI and info.target["count"] == 2
        assert ret.info().target["flags"] == BPF_F_KPROBE_MULTI_RETURN
        for _ in range(5):
            _libc.getpid()
        for _ in range(3):
            _libc.getppid()
        for _ in range(4):
            _libc.getpgid(0)
    got = by_cookie(multi_obj, K_KP, me)
    assert got[1] >= 3 and got[2] >= 5  # cookies follow their symbols (sorted by the kernel)
    # getpgid, resolved from a pattern (a wrapper with arguments: traceable where __x64_sys_getpid is not, as on 6.12)
    assert sum(by_cookie(multi_obj, K_KRET, me).values()) >= 4


@K
@pytest.mark.parametrize("multi_obj", [("kp_session", "kp_auto",)], indirect=True, ids=["obj"])
def test_kprobe_session_and_auto_attach(multi_obj: Object) -> None:
    progs = multi_obj.programs
    if not kprobe_multi_support(session=True):
        with pytest.raises(NotSupportedError, match="kprobe session links"):
            attach_kprobe_multi(progs["kp_session"], syms=[_sys("getpid")])
    else:
        with attach_kprobe_multi(progs["kp_session"], syms=[_sys("getpid")], cookies=[7]) as link:
            assert link.kind == "kprobe_session"
            for _ in range(4):
                _libc.getpid()
        assert by_cookie(multi_obj, K_KSESS, os.getpid())[7] >= 8  # entry and return
    if platform.machine() != "x86_64":
        return
    if not kprobe_multi_support():
        with pytest.raises((NotSupportedError, BPFOSError)):
            attach_program(progs["kp_auto"])  # SEC("kprobe.multi/__x64_sys_getpgi?")
        return
    with attach_program(progs["kp_auto"]) as link:
        assert isinstance(link, MultiProbeLink) and len(link.addrs) >= 1
        for _ in range(3):
            _libc.getpgid(0)
    assert sum(by_cookie(multi_obj, K_KP_AUTO, os.getpid()).values()) >= 3


@K
@pytest.mark.parametrize("multi_obj", [("kp_multi",)], indirect=True, ids=["obj"])
def test_kprobe_multi_argument_rules(multi_obj: Object) -> None:
    prog = multi_obj.programs["kp_multi"]
    for kw in ({}, {"pattern": "a*", "cookies": [1]}, {"syms": ["a"], "addrs": [1]}, {"pattern": "a", "retprobe": True, "session": True}):
        with pytest.raises(ValueError):
            attach_kprobe_multi(prog, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than once"):
        attach_kprobe_multi(prog, syms=["a", "b", "a"])  # the kernel would answer ESRCH
