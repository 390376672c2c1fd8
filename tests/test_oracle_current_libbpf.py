"""Current libbpf (Debian trixie's libbpf1, 1.5) as a second ORACLE beside libbpf 1.1.

The library is fetched from the Debian archive by tools/realworld/libbpf_current.py
(never installed: extracted into ~/.cache/pybpfload-vmtest/libbpf/, loaded with
ctypes RTLD_LOCAL here only; .ci/run fetches it before the tests and names it in
$PYBPFLOAD_CURRENT_LIBBPF).  Without it (no network, nothing cached) these
tests skip.

Every fixture is opened, and on a kernel loaded, by pybpfload, libbpf 1.1 and
current libbpf (tools/realworld/threeway.py): programs (names, sections,
types, attach types, instructions, autoload), map definitions (type, key and
value size, max_entries, flags, map_extra, pin path, autocreate, initial
value, BTF ids), and after load each program's tag and each map as the kernel
reports it.  Where pybpfload differs from current libbpf, a rule of
tools/realworld/allowed.py must say why, or the test fails.  The differences
between 1.1 and current libbpf that the README lists ("Which libbpf we
follow") are asserted one by one below.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from .conftest import FIXTURES, fixture_path

TOOLS = Path(__file__).resolve().parent.parent / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

from realworld import allowed, libbpf_current, oracle, sweep, threeway  # noqa: E402

pytestmark = pytest.mark.oracle

ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.bpf.o"))
_CURRENT: Dict[str, object] = {}


def current() -> oracle.Libbpf:
    """The current libbpf (once per process): $PYBPFLOAD_CURRENT_LIBBPF, the cache, or a fetch; skip without it."""
    if "lib" not in _CURRENT:
        try:
            got = libbpf_current.locate()
            lib = oracle.Libbpf(got.path, "current")
            _CURRENT["version"] = lib.version()
            _CURRENT["lib"] = lib
        except libbpf_current.CurrentLibbpfError as e:
            if libbpf_current.ENV_PATH in os.environ:
                pytest.fail(f"${libbpf_current.ENV_PATH} is set but unusable: {e}")
            _CURRENT["lib"] = None
            _CURRENT["why"] = str(e)
    if _CURRENT["lib"] is None:
        pytest.skip(f"current libbpf cannot be had here: {_CURRENT['why']}")
    return _CURRENT["lib"]  # type: ignore[return-value]


def three_way(name: str, load: bool, load_1_1: bool = True) -> threeway.ObjectResult:
    return threeway.three_way(fixture_path(name), current(), sweep.our_open_view, sweep.our_load_view,
                              sweep.prepare_map, sweep.describe, allowed.allowed, load=load,
                              isolated=sweep._isolated, load_1_1=load_1_1)  # fmt: skip


def _fails(r: threeway.ObjectResult) -> List[str]:
    return [d.line() for d in r.differences if d.verdict == "fail"]


def _diff(r: threeway.ObjectResult, item: str) -> threeway.Difference:
    found = [d for d in r.differences if d.item == item]
    assert found, f"no difference on {item!r}: {[d.item for d in r.differences]}"
    return found[0]


# ---------------------------------------------------------------- the library itself


def test_current_libbpf_is_1_5_or_newer_beside_1_1() -> None:
    lib = current()
    major, minor = (int(x) for x in lib.version()[1:].split("."))
    assert (major, minor) >= (1, 5)
    assert oracle.LIBBPF_1_1.version() == "v1.1"  # both in this process, each its own
    raw = lib.lib()
    raw.libbpf_major_version.restype = raw.libbpf_minor_version.restype = ctypes.c_uint32
    assert (raw.libbpf_major_version(), raw.libbpf_minor_version()) == (major, minor)


def test_the_adapted_library_needs_nothing_newer_than_bookworm_glibc() -> None:
    """No GLIBC_2.38 symbol is left, its SONAME is not libbpf.so.1, and only the rebound symbols changed."""
    path = current().path
    assert path is not None
    data = path.read_bytes()
    assert b"__isoc23_" not in data.replace(b"__isoc23_strtoull", b"")  # strtoull: its name is the tail
    assert b"GLIBC_2.38\0" not in data or _weak_need(data, b"GLIBC_2.38")
    assert libbpf_current.NEW_SONAME + b"\0" in data


def _weak_need(data: bytes, version: bytes) -> bool:
    """Whether ``version`` appears only as a weak (unchecked) version need."""
    again, rebound = libbpf_current.adapt(data)
    return again == data and rebound == []  # adapting twice changes nothing: the need is already weak


def test_elf_hash_of_glibc_versions() -> None:
    assert libbpf_current.elf_hash(b"GLIBC_2.2.5") == 0x09691A75
    assert libbpf_current.elf_hash(b"GLIBC_2.7") == 0x0D696917


def test_adapt_refuses_what_it_cannot_rebind() -> None:
    with pytest.raises(libbpf_current.CurrentLibbpfError, match="64-bit"):
        libbpf_current.adapt(b"\x7fELF\x01\x01" + bytes(60))


# ---------------------------------------------------------------- every fixture, opened


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_open_agrees_with_current_libbpf(name: str) -> None:
    r = three_way(name, load=False)
    assert not _fails(r), "\n".join(_fails(r))


# ---------------------------------------------------------------- every fixture, loaded


@pytest.mark.kernel
@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_load_agrees_with_current_libbpf(name: str) -> None:
    """Program tags and kernel map definitions: pybpfload's are current libbpf's (or allowed.py says why not).

    libbpf 1.1 only opens here (tests/test_load.py loads against it; the sweep and the tests below do all three).
    """
    r = three_way(name, load=True, load_1_1=False)
    assert not _fails(r), "\n".join(_fails(r))


# ---------------------------------------------------------------- where 1.1 and current differ (README)


@pytest.mark.kernel
def test_weak_kfunc_poison_follows_current() -> None:
    """A missing weak kfunc: 1.1 leaves `call kfunc 0`, current libbpf and we a poisoned helper call (tags differ)."""
    r = three_way("weak_kfunc.bpf.o", load=True)
    assert r.mode == "loaded"
    d = _diff(r, "loaded program 'weak_kfunc_guarded' tag")
    assert d.values["ours"] == d.values["current"] != d.values["1.1"]
    assert d.verdict == "current"


def test_newer_sections_follow_current() -> None:
    """SEC() names libbpf 1.1 does not know (tcx, netfilter, uprobe.multi, ...): current libbpf's types."""
    r = three_way("attach_net.bpf.o", load=False)
    d = _diff(r, "program 'tcx_counter' type")
    assert d.values["1.1"] == 0 and d.values["ours"] == d.values["current"] == 3  # SCHED_CLS
    assert {x.verdict for x in r.differences} == {"current"}


def test_struct_ops_follow_current() -> None:
    """struct_ops: 1.1 gives programs the object's member index as attach type and maps no BTF value type;
    current libbpf (and we) 0 until load and the object's struct."""
    r = three_way("struct_ops_tcp.bpf.o", load=False)
    d = _diff(r, "program 'pyb_cong_avoid' expected_attach_type")
    assert (d.values["1.1"], d.values["current"], d.values["ours"]) == (2, 0, 0)
    d = _diff(r, "map 'pyb_reno' btf_value_type_id")
    assert d.values["1.1"] == 0 and d.values["ours"] == d.values["current"] > 0


def test_struct_ops_program_pointers_are_kept_zero() -> None:
    """Current libbpf writes its `struct bpf_program *` into function pointer members of a struct_ops map's
    initial value; we keep the object's zeros, every other byte the same (allowed.py: struct-ops-pointers)."""
    r = three_way("struct_ops_dummy.bpf.o", load=False)
    d = _diff(r, "map 'dummy_1' initial_value")
    ours, cur = d.values["ours"], d.values["current"]
    assert isinstance(ours, bytes) and isinstance(cur, bytes) and len(ours) == len(cur) == 24
    slots = [(struct.unpack_from("<Q", ours, i)[0], struct.unpack_from("<Q", cur, i)[0]) for i in range(0, 24, 8)]
    assert slots[0][0] == slots[1][0] == 0 and slots[0][1] and slots[1][1]  # test_1, test_2: programs
    assert slots[2] == (0, 0)  # test_sleepable: none
    assert (d.verdict, d.rule) == ("kept", "struct-ops-pointers")


def test_optional_struct_ops_sections_are_all_off() -> None:
    """'?.struct_ops': current libbpf turns autocreate off for the first variable only (a libbpf bug against
    its own comment); we for every one (allowed.py: optional-struct-ops)."""
    r = three_way("struct_ops_bad.bpf.o", load=False)
    names = [m["name"] for m in current().open_view(fixture_path("struct_ops_bad.bpf.o"))["maps"]]
    assert names[0] == "unknown_type"
    first = [d for d in r.differences if d.item == "map 'unknown_type' autocreate"]  # 1.1 knows no such map
    assert [(d.values["ours"], d.values["current"]) for d in first] == [(False, False)]
    for n in names[1:]:
        d = _diff(r, f"map {n!r} autocreate")
        assert (d.values["ours"], d.values["current"], d.verdict) == (False, True, "kept")


def test_legacy_maps_follow_the_spec() -> None:
    """Legacy SEC("maps"): both libbpf 1.x refuse the object; we open it as libbpf 0.8 (the spec's API) does."""
    r = three_way("legacy_maps.bpf.o", load=False)
    d = _diff(r, "open")
    assert d.values == {"ours": "ok", "1.1": "refused", "current": "refused"}
    assert (d.verdict, d.rule) == ("kept", "legacy-maps")


@pytest.mark.parametrize(
    "release,version,want",
    [
        ("6.1.0-50-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-01-01)", (6, 1, 176)),
        ("5.10.0-46-amd64", "#1 SMP Debian 5.10.262-1 (2026-01-01)", (5, 10, 255)),  # the patch saturates
        ("6.12.117+deb13-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1 (2026-01-01)", (6, 12, 117)),
        ("6.18.44-fc-v595", "#1 SMP PREEMPT_DYNAMIC @0", (6, 18, 44)),
        ("6.1.0-50-amd64", "#1 SMP Debian unknown", (6, 1, 0)),  # no version after "Debian ": the release
    ],
)
def test_kversion_on_debian_kernels_as_current_libbpf(release: str, version: str, want: tuple) -> None:
    """Debian's uname release is the ABI name (6.1.0-50-amd64); current libbpf (1.5) takes the version from
    uname's version string ("Debian 6.1.176-1"), 1.1 from the release: the 6.1 and 5.10 guests show it
    (bpf_object__kversion, and the kern_version of kprobe programs)."""
    from unittest import mock

    from pybpfload.syscall import features

    fake = os.uname_result(("Linux", "host", release, version, "x86_64"))
    with mock.patch("os.uname", return_value=fake), mock.patch("builtins.open", side_effect=OSError):
        got = features.running_kernel_version()
    assert (got >> 16, got >> 8 & 0xFF, got & 0xFF) == want


# ---------------------------------------------------------------- the comparison itself (pure)


def test_three_way_comparison_and_verdicts() -> None:
    flats = {
        "ours": {"open": "ok", "program 'p' type": 3, "program 'p' insns": b"a"},
        "1.1": {"open": "ok", "program 'p' type": 0, "program 'p' insns": b"a"},
        "current": {"open": "ok", "program 'p' type": 3, "program 'p' insns": b"b"},
    }
    diffs = threeway.compare("open", flats)
    assert [d.item for d in diffs] == ["program 'p' type", "program 'p' insns"]
    assert diffs[0].what == "program type"
    ctx = threeway.Context(Path("x.o"), oracle.LIBBPF_1_1, {w: {} for w in flats})
    threeway.judge(ctx, diffs, lambda c, d: None)
    assert [d.verdict for d in diffs] == ["current", "fail"]
    # a loader that refused has no other items: they are n/a, not differences
    refused = threeway.compare("open", {"ours": {"open": "ok", "x": 1}, "current": {"open": "refused"}})
    assert [(d.item, d.values["current"]) for d in refused] == [("open", "refused")]
