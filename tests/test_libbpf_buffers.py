"""pybpfload.libbpf's perf_buffer__*, user_ring_buffer__*, bpf_link_* and the
multi-probe attach functions, against Debian's libbpf.so.1 (1.1, through
ctypes) on the same maps and programs: the same scenario runs through both
and return values, errno and what the callbacks saw must agree.  Events
come from real programs (an XDP program run with BPF_PROG_TEST_RUN writes
perf samples; a syscall program drains the user ring buffer)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from typing import Any, Callable, Iterator, List, Tuple

import pytest

import pybpfload.libbpf as L
from pybpfload import Map, MapType, Object
from pybpfload.events.perfbuf import online_cpus
from pybpfload.syscall import AttachType, LinkType
from pybpfload.abi import uapi as t

from .conftest import FIXTURES, REQUIRE_KERNEL, fixture_path
from .eventprogs import PerfProducer, usable_cpus
from .kernel_adapt import load_or_assert_refused

pytestmark = [pytest.mark.kernel, pytest.mark.oracle]

vp, i32, u32, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t
SAMPLE_FN = ctypes.CFUNCTYPE(None, vp, i32, vp, u32)
LOST_FN = ctypes.CFUNCTYPE(None, vp, i32, ctypes.c_uint64)
_SIGS = {
    "perf_buffer__new": (vp, [i32, sz, SAMPLE_FN, LOST_FN, vp, vp]),
    "perf_buffer__poll": (i32, [vp, i32]),
    "perf_buffer__consume": (i32, [vp]),
    "perf_buffer__consume_buffer": (i32, [vp, sz]),
    "perf_buffer__buffer_cnt": (sz, [vp]),
    "perf_buffer__buffer_fd": (i32, [vp, sz]),
    "perf_buffer__epoll_fd": (i32, [vp]),
    "perf_buffer__free": (None, [vp]),
    "user_ring_buffer__new": (vp, [i32, vp]),
    "user_ring_buffer__reserve": (vp, [vp, u32]),
    "user_ring_buffer__reserve_blocking": (vp, [vp, u32, i32]),
    "user_ring_buffer__submit": (None, [vp, vp]),
    "user_ring_buffer__discard": (None, [vp, vp]),
    "user_ring_buffer__free": (None, [vp]),
    "bpf_link_create": (i32, [i32, i32, i32, vp]),
    "bpf_link_update": (i32, [i32, i32, vp]),
    "bpf_link_detach": (i32, [i32]),
}


@pytest.fixture(scope="module")
def lib() -> Any:
    path = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        so = ctypes.CDLL(path, use_errno=True)
    except OSError:
        if REQUIRE_KERNEL:
            pytest.fail("libbpf.so.1 (the oracle) is not installed")
        pytest.skip("libbpf.so.1 (the oracle) is not installed")
    for name, (res, args) in _SIGS.items():
        fn = getattr(so, name)
        fn.restype, fn.argtypes = res, args
    return so


def _errno_after(fn: Callable[..., Any], *args: Any) -> Tuple[Any, int]:
    """(fn(*args), errno after it)."""
    ctypes.set_errno(0)
    r = fn(*args)
    return r, ctypes.get_errno()


# ---------------------------------------------------------------- perf buffers
def _perf_walk(api: str, lib: Any, m: Map) -> List[Any]:
    """The same walk through either API; everything observable, in order."""
    seen: List[Tuple[int, bytes, int, int]] = []
    out: List[Any] = []
    prod = PerfProducer(m, 16)
    if api == "ours":
        pb = L.perf_buffer__new(m.fd, 4, lambda ctx, cpu, data, size: seen.append((cpu, bytes(data[:16]), size, ctx)), None, 7)
        f = L
    else:

        def cb(ctx: Any, cpu: int, data: int, size: int) -> None:
            seen.append((cpu, ctypes.string_at(data, 16), size, ctx))

        keep = SAMPLE_FN(cb)
        pb = lib.perf_buffer__new(m.fd, 4, keep, LOST_FN(), 7, None)
        f = lib
    assert pb
    try:
        cnt = f.perf_buffer__buffer_cnt(pb)
        out.append(("cnt", cnt))
        out.append(("fd out of range", _errno_after(f.perf_buffer__buffer_fd, pb, cnt)))
        out.append(("consume_buffer out of range", _errno_after(f.perf_buffer__consume_buffer, pb, cnt + 3)))
        fd0 = f.perf_buffer__buffer_fd(pb, 0)
        out.append(("fd0 is a perf event", os.readlink(f"/proc/self/fd/{fd0}")))
        out.append(("epoll fd", os.readlink(f"/proc/self/fd/{f.perf_buffer__epoll_fd(pb)}")))
        out.append(("poll nothing", f.perf_buffer__poll(pb, 0)))
        want: List[Tuple[int, bytes, int, int]] = []
        for cpu in usable_cpus()[:2]:
            want += [(cpu, r, 20, 7) for r in prod.run(3, cpu)]  # 16 bytes, padded to 20 by the kernel
        out.append(("poll", f.perf_buffer__poll(pb, 1000)))  # the number of rings that had data
        out.append(("consume", f.perf_buffer__consume(pb)))
        assert sorted(seen) == sorted(want)
        seen.clear()
        cpu = usable_cpus()[0]
        want = [(cpu, r, 20, 7) for r in prod.run(2, cpu)]
        idx = online_cpus().index(cpu)
        out.append(("consume_buffer", f.perf_buffer__consume_buffer(pb, idx)))
        assert seen == want
    finally:
        f.perf_buffer__free(pb)
        prod.close()
    return out


def test_perf_buffer_walk_matches_libbpf(lib: Any, perf_map: Map) -> None:
    ours = _perf_walk("ours", lib, perf_map)
    theirs = _perf_walk("libbpf", lib, perf_map)
    # the fd numbers differ; what they are does not
    norm = [(k, v if not isinstance(v, str) else v.split(":")[0] + v.split(":")[1][:1]) for k, v in ours]
    norm_t = [(k, v if not isinstance(v, str) else v.split(":")[0] + v.split(":")[1][:1]) for k, v in theirs]
    assert norm == norm_t
    assert dict(ours)["poll"] == len(usable_cpus()[:2])
    assert dict(ours)["fd out of range"] == (-errno.EINVAL, errno.EINVAL)


def test_perf_buffer_new_errors_match_libbpf(lib: Any, perf_map: Map) -> None:
    arr = Map.create(MapType.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    try:
        for fd, pages in ((perf_map.fd, 3), (perf_map.fd, 0), (arr.fd, 4), (9999, 4)):
            ours = _errno_after(L.perf_buffer__new, fd, pages, lambda *a: None, None)
            theirs = _errno_after(lib.perf_buffer__new, fd, pages, SAMPLE_FN(lambda *a: None), LOST_FN(), None, None)
            assert ours[0] is None and not theirs[0]
            assert ours[1] == theirs[1], (fd, pages)
    finally:
        arr.close()
    # the slots are removed again: a second buffer on the same map works after free
    pb = L.perf_buffer__new(perf_map.fd, 1, lambda *a: None, None)
    assert pb is not None
    L.perf_buffer__free(pb)
    L.perf_buffer__free(None)


# ---------------------------------------------------------------- user ring buffers
@pytest.fixture
def user_obj() -> Iterator[Object]:
    with Object.open(fixture_path("ringbuf_user.bpf.o")) as obj:
        load_or_assert_refused(obj, "user_ringbuf")
        yield obj


def _drained(obj: Object) -> Tuple[int, int]:
    obj.programs["drain"].test_run(b"")
    totals = obj.maps["drained"][0]  # typed: struct totals { __s64 count; __u64 sum; }
    return totals.count, totals.sum


def _user_walk(api: str, lib: Any, obj: Object) -> List[Any]:
    fd = obj.maps["user_rb"].fd
    out: List[Any] = []
    if api == "ours":
        rb = L.user_ring_buffer__new(fd, None)
        assert rb is not None

        def reserve(n: int) -> Any:
            return L.user_ring_buffer__reserve(rb, n)

        def put(s: Any, v: int) -> None:
            s[:8] = struct.pack("=Q", v)

        f = L
    else:
        rb = lib.user_ring_buffer__new(fd, None)
        assert rb

        def reserve(n: int) -> Any:
            return lib.user_ring_buffer__reserve(rb, n)

        def put(s: Any, v: int) -> None:
            ctypes.memmove(s, struct.pack("=Q", v), 8)

        f = lib
    try:
        for v in (5, 6, 7):
            s = reserve(8)
            put(s, v)
            f.user_ring_buffer__submit(rb, s)
        s = reserve(8)
        put(s, 1000)
        f.user_ring_buffer__discard(rb, s)  # skipped by the kernel
        out.append(("drained", _drained(obj)))
        r, e = _errno_after(reserve, 1 << 20)
        out.append(("too big", r is None or not r, e))
        r, e = _errno_after(reserve, 1 << 31)  # the BUSY bit
        out.append(("busy bit", r is None or not r, e))
        held = []
        while True:
            r, e = _errno_after(reserve, 1000)
            if r is None or not r:
                out.append(("full", e, len(held)))
                break
            held.append(r)
        for s in held:
            f.user_ring_buffer__discard(rb, s)
        r, e = _errno_after(f.user_ring_buffer__reserve_blocking, rb, 1 << 20, 10)
        out.append(("blocking too big", r is None or not r, e))
    finally:
        f.user_ring_buffer__free(rb)
    return out


def test_user_ring_buffer_walk_matches_libbpf(lib: Any, user_obj: Object) -> None:
    ours = _user_walk("ours", lib, user_obj)
    theirs = _user_walk("libbpf", lib, user_obj)
    assert ours[0] == ("drained", (3, 18))  # 5 + 6 + 7: the discarded sample was skipped
    assert ours == theirs
    arr = user_obj.maps["drained"].fd
    assert _errno_after(L.user_ring_buffer__new, arr, None) == (None, errno.EINVAL)
    assert _errno_after(lib.user_ring_buffer__new, arr, None)[1] == errno.EINVAL
    L.user_ring_buffer__free(None)


# ---------------------------------------------------------------- bpf_link_*
class _KprobeMultiOpts(ctypes.Structure):  # libbpf 1.1's struct bpf_link_create_opts, kprobe_multi arm
    _fields_ = [
        ("sz", sz),
        ("flags", u32),
        ("iter_info", vp),
        ("iter_info_len", u32),
        ("target_btf_id", u32),
        ("km_flags", u32),
        ("km_cnt", u32),
        ("km_syms", vp),
        ("km_addrs", vp),
        ("km_cookies", vp),
    ]


def test_link_create_update_detach_match_libbpf(lib: Any) -> None:
    """bpf_link_create / bpf_link_update / bpf_link_detach on a cgroup_skb link, both ways."""
    from .test_attach_net import _cgroup2_root

    cg = os.path.join(_cgroup2_root(), f"pybpfload-link-{os.getpid()}")
    os.mkdir(cg)
    cg_fd = os.open(cg, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Object.open(fixture_path("attach_net.bpf.o")) as obj:
            for p in obj.programs.values():
                p.autoload = p.section_name.startswith("cgroup_skb/")  # the others need newer kernels
            obj.load()
            progs = [p for p in obj.programs.values() if p.section_name.startswith("cgroup_skb/")]
            ingress = next(p for p in progs if p.section_name.endswith("ingress"))
            egress = next(p for p in progs if p.section_name.endswith("egress"))
            at = int(AttachType.BPF_CGROUP_INET_INGRESS)
            for api in ("ours", "libbpf"):
                f = L if api == "ours" else lib
                link = f.bpf_link_create(ingress.fd, cg_fd, at, None)
                assert link >= 0, (api, ctypes.get_errno())
                try:
                    info = t.LinkInfo()
                    n = ctypes.c_uint32(ctypes.sizeof(info))
                    assert L.bpf_link_get_info_by_fd(link, info, n) == 0
                    assert info.type == LinkType.BPF_LINK_TYPE_CGROUP and info.cgroup.attach_type == at
                    assert info.prog_id == ingress.info().id
                    # the same program type: update works; BPF_F_REPLACE with the wrong old program: EPERM
                    assert f.bpf_link_update(link, egress.fd, None) == 0
                    L.bpf_link_get_info_by_fd(link, info, n)
                    assert info.prog_id == egress.info().id
                    bad_ours = _errno_after(L.bpf_link_update, link, ingress.fd, {"flags": 4, "old_prog_fd": ingress.fd})
                    opts = (ctypes.c_size_t * 2)(16, 0)  # struct bpf_link_update_opts {size_t sz; u32 flags; u32 old_prog_fd}
                    ctypes.memmove(ctypes.addressof(opts) + 8, struct.pack("=II", 4, ingress.fd), 8)
                    bad_theirs = _errno_after(lib.bpf_link_update, link, ingress.fd, ctypes.addressof(opts))
                    assert bad_ours == bad_theirs == (-errno.EPERM, errno.EPERM)
                    assert f.bpf_link_detach(link) == 0
                    assert L.bpf_link_get_info_by_fd(link, info, n) == 0 and info.prog_id == egress.info().id
                    assert _errno_after(f.bpf_link_update, link, ingress.fd, None)[1] == errno.ENOLINK  # defunct
                finally:
                    os.close(link)
            # an attach type the program cannot take: both -EINVAL
            assert _errno_after(L.bpf_link_create, ingress.fd, cg_fd, int(AttachType.BPF_XDP), None) == _errno_after(
                lambda: lib.bpf_link_create(ingress.fd, cg_fd, int(AttachType.BPF_XDP), None)
            )
    finally:
        os.close(cg_fd)
        os.rmdir(cg)


def test_kprobe_multi_link_create_matches_libbpf(lib: Any) -> None:
    """LINK_CREATE kprobe_multi with symbols: libbpf 1.1's answer and ours agree (EOPNOTSUPP here, a link where fprobes exist)."""
    with Object.open(fixture_path("multi_probe.bpf.o")) as obj:
        for name, p in obj.programs.items():
            p.autoload = name == "kp_multi"
        load_or_assert_refused(obj, "bpf_cookie")
        prog = obj.programs["kp_multi"]
        syms = [b"__x64_sys_getpid", b"__x64_sys_getppid"]
        arr = (ctypes.c_char_p * 2)(*syms)
        cookies = (ctypes.c_uint64 * 2)(1, 2)
        o = _KprobeMultiOpts(sz=ctypes.sizeof(_KprobeMultiOpts), km_cnt=2, km_syms=ctypes.addressof(arr), km_cookies=ctypes.addressof(cookies))
        at = int(AttachType.BPF_TRACE_KPROBE_MULTI)
        theirs = _errno_after(lib.bpf_link_create, prog.fd, 0, at, ctypes.addressof(o))
        ours = _errno_after(L.bpf_link_create, prog.fd, 0, at, {"kprobe_multi": {"cnt": 2, "syms": [s.decode() for s in syms], "cookies": [1, 2]}})
        for r, _ in (theirs, ours):
            if r >= 0:
                os.close(r)
        assert (theirs[0] >= 0) == (ours[0] >= 0) and (theirs[0] >= 0 or theirs == ours)
        # and through the attach functions: None with the same errno
        r, e = _errno_after(L.bpf_program__attach_kprobe_multi_opts, prog, None, {"syms": ["__x64_sys_getpid"], "cnt": 1})
        if r is not None:
            r.close()
            assert theirs[0] >= 0
        else:
            assert e == theirs[1]
        for bad in ((None, None), ("x*", {"cnt": 1}), (None, {"syms": ["a"]}), (None, {"syms": ["a"], "addrs": [1], "cnt": 1})):
            assert _errno_after(L.bpf_program__attach_kprobe_multi_opts, prog, *bad) == (None, errno.EINVAL)


def test_uprobe_multi_through_libbpf_names() -> None:
    """bpf_program__attach_uprobe_multi (libbpf 1.2+, not in the 1.1 oracle) and bpf_link_create
    with uprobe_multi options: both attach and the program runs."""
    import subprocess

    from pybpfload.link.multi import uprobe_multi_support

    target = str(FIXTURES / "multi_target")
    with Object.open(fixture_path("multi_probe.bpf.o")) as obj:
        for name, p in obj.programs.items():
            p.autoload = name == "up_multi"
        load_or_assert_refused(obj, "bpf_cookie")
        prog = obj.programs["up_multi"]
        assert _errno_after(L.bpf_program__attach_uprobe_multi, prog, -1, None, "mt_*", None) == (None, errno.EINVAL)
        assert _errno_after(L.bpf_program__attach_uprobe_multi, prog, -1, target, "mt_*", {"cnt": 1}) == (None, errno.EINVAL)
        if not uprobe_multi_support():
            assert _errno_after(L.bpf_program__attach_uprobe_multi, prog, -1, target, "mt_*", None)[1] in (errno.EOPNOTSUPP, errno.EINVAL)
            return
        assert _errno_after(L.bpf_program__attach_uprobe_multi, prog, -1, target, "zz*", None) == (None, errno.ENOENT)
        link = L.bpf_program__attach_uprobe_multi(prog, -1, target, None, {"syms": ["mt_beta", "mt_gamma"], "cookies": [2, 3], "cnt": 2})
        assert link is not None
        from pybpfload.link.elfsym import symbol_offset

        fd = L.bpf_link_create(
            prog.fd, 0, int(AttachType.BPF_TRACE_UPROBE_MULTI),
            {"uprobe_multi": {"path": target, "offsets": [symbol_offset(target, "other_delta")], "cookies": [4], "cnt": 1}},
        )
        assert fd >= 0
        try:
            pid = subprocess.Popen([target], stdout=subprocess.DEVNULL)
            pid.wait(timeout=30)
        finally:
            os.close(fd)
            link.close()
        got = {k.cookie: v for k, v in obj.maps["counts"].items() if k.tgid == pid.pid}  # typed: struct key -> __u64
        assert got == {2: 2, 3: 3, 4: 4}
