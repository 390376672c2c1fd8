"""Tracing attachments on the real kernel, each proving the program ran:
tracepoints, raw_tp, tp_btf, uprobes (binary and libc, with and without a pid
filter), iterators, perf_event programs; auto-attach from section names; the
kinds this kernel refuses (fentry / fexit / fmod_ret / lsm, kprobes)."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from pybpfload import Object
from pybpfload.errors import BPFError, NotSupportedError, StateError, VerifierError
from pybpfload.syscall.features import prog_type_supported
from pybpfload.link import IterLink, Link, PerfEventLink, attach_iter, attach_tracepoint, attach_uprobe, kprobe_support
from pybpfload.link.elfsym import resolve_function
from pybpfload.syscall import LinkType, perf

from .conftest import FIXTURES, fixture_path, require_tool
from .kernel_adapt import assert_not_supported, kernel_describes_perf_links, kernel_has_perf_links, vmlinux_has

pytestmark = pytest.mark.kernel

K_TP, K_RAW_TP, K_TP_BTF, K_UPROBE, K_URETPROBE, K_LIBC_GETPID, K_TP_MANUAL = range(7)
TARGET = str(FIXTURES / "uprobe_target")
TARGET_NOPLT = str(FIXTURES / "uprobe_target_noplt")


@pytest.fixture(scope="module", autouse=True)
def _tracefs() -> None:
    if not os.path.isdir("/sys/kernel/tracing/events") and os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=False)


@pytest.fixture
def trace_obj() -> Iterator[Object]:
    with Object.open(fixture_path("attach_trace.bpf.o")) as obj:
        obj.load()
        yield obj


def counts(obj: Object) -> Dict[Tuple[int, int], int]:
    # typed: struct key { __u32 tgid, kind; } -> __u64
    return {(k.tgid, k.kind): v for k, v in obj.maps["counts"].items()}


ME = os.getpid()  # read once: every getpid() call is counted


def count(obj: Object, kind: int, tgid: int = 0) -> int:
    return counts(obj).get((tgid or ME, kind), 0)


_libc = ctypes.CDLL(None, use_errno=True)


def raw_getpid(n: int) -> None:
    """n getpid system calls (through libc, so libc uprobes see them too)."""
    for _ in range(n):
        _libc.getpid()


# ---------------------------------------------------------------- tracepoints
@pytest.mark.parametrize("force_ioctl", [False, True], ids=["perf_link", "ioctl"])
def test_tracepoint_counts_getpid(trace_obj: Object, force_ioctl: bool) -> None:
    prog = trace_obj.programs["tp_manual"]
    with attach_tracepoint(prog, "syscalls", "sys_enter_getpid", force_ioctl=force_ioctl) as link:
        assert isinstance(link, PerfEventLink) and link.is_bpf_link is (not force_ioctl and kernel_has_perf_links())
        before = count(trace_obj, K_TP_MANUAL)
        raw_getpid(25)
        assert count(trace_obj, K_TP_MANUAL) - before == 25
        info = link.info()
        assert info.prog_id == prog.info().id
        if link.is_bpf_link:
            assert info.type == LinkType.BPF_LINK_TYPE_PERF_EVENT
        if link.is_bpf_link and kernel_describes_perf_links():
            assert info.target["perf_event_type"] == "tracepoint" and info.target["tp_name"] == "sys_enter_getpid"
    raw_getpid(5)
    assert count(trace_obj, K_TP_MANUAL) - before == 25  # closed: detached


def test_tracepoint_unknown_and_unloaded(trace_obj: Object) -> None:
    with pytest.raises(OSError) as ei:
        attach_tracepoint(trace_obj.programs["tp_manual"], "syscalls/sys_enter_no_such_call")
    assert ei.value.errno == errno.ENOENT and "sys_enter_no_such_call" in str(ei.value)
    with Object.open(fixture_path("attach_trace.bpf.o")) as unloaded:
        with pytest.raises(StateError, match="not loaded"):
            attach_tracepoint(unloaded.programs["tp_manual"], "syscalls/sys_enter_getpid")


def test_raw_tp_and_tp_btf(trace_obj: Object) -> None:
    with trace_obj.programs["raw_getpid"].attach_raw_tracepoint("sys_enter") as raw, trace_obj.programs["btf_getpid"].attach_trace() as btf:
        b_raw, b_btf = count(trace_obj, K_RAW_TP), count(trace_obj, K_TP_BTF)
        raw_getpid(17)
        assert count(trace_obj, K_RAW_TP) - b_raw == 17
        assert count(trace_obj, K_TP_BTF) - b_btf == 17
        for link in (raw, btf):
            info = link.info()
            assert info.type == LinkType.BPF_LINK_TYPE_RAW_TRACEPOINT and info.target["tp_name"] == "sys_enter"


# ---------------------------------------------------------------- auto-attach
def test_attach_all_follows_section_names(trace_obj: Object) -> None:
    links = trace_obj.attach_all()
    try:
        attached = sorted(link.name for link in links)
        # bare "uprobe", "uretprobe" and "tracepoint" carry no target: skipped, as libbpf's skeleton does
        assert attached == ["btf_getpid", "libc_getpid", "raw_getpid", "tp_getpid"]
        before = {k: count(trace_obj, k) for k in (K_TP, K_RAW_TP, K_TP_BTF, K_LIBC_GETPID)}
        raw_getpid(11)
        after = {k: count(trace_obj, k) for k in before}
        assert {k: after[k] - before[k] for k in before} == {K_TP: 11, K_RAW_TP: 11, K_TP_BTF: 11, K_LIBC_GETPID: 11}
    finally:
        for link in links:
            link.close()


def test_attach_all_on_unloaded_object() -> None:
    with Object.open(fixture_path("attach_trace.bpf.o")) as obj:
        with pytest.raises(StateError):
            obj.attach_all()
        assert obj.programs["tp_getpid"].fd == -1


# ---------------------------------------------------------------- uprobes
def _start_waiting(binary: str, n: int) -> subprocess.Popen:
    p = subprocess.Popen([binary, str(n), "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def _finish(p: subprocess.Popen) -> str:
    out, _ = p.communicate("go\n", timeout=30)
    assert p.returncode == 0
    return out.strip()


@pytest.mark.parametrize("binary", [TARGET, TARGET_NOPLT], ids=["pie", "nopie_noplt"])
def test_uprobe_on_binary_with_and_without_pid_filter(trace_obj: Object, binary: str) -> None:
    prog = trace_obj.programs["up_count"]
    a, b = _start_waiting(binary, 7), _start_waiting(binary, 5)
    with attach_uprobe(prog, binary, "target_add", pid=a.pid) as only_a, attach_uprobe(trace_obj.programs["uret_count"], binary, "target_add", retprobe=True) as ret_all:
        assert _finish(a) == str(sum(range(7))) and _finish(b) == str(sum(range(5)))
        assert count(trace_obj, K_UPROBE, a.pid) == 7
        assert count(trace_obj, K_UPROBE, b.pid) == 0  # filtered out
        assert count(trace_obj, K_URETPROBE, a.pid) == 7 and count(trace_obj, K_URETPROBE, b.pid) == 5
        info = only_a.info()
        assert info.prog_id == prog.info().id
        if kernel_describes_perf_links():
            assert info.target["perf_event_type"] == "uprobe" and info.target["file_name"] == os.path.abspath(binary)
            assert ret_all.info().target["perf_event_type"] == "uretprobe"
            assert info.target["offset"] == resolve_function(binary, "target_add").offset


def test_uprobe_libc_function_pid_filter(trace_obj: Object) -> None:
    prog = trace_obj.programs["libc_getpid"]
    child = subprocess.Popen([sys.executable, "-c", "import os,sys; sys.stdin.readline(); [os.getpid() for _ in range(9)]"], stdin=subprocess.PIPE, text=True)
    try:
        with prog.attach_uprobe("libc.so.6", "getpid", pid=ME) as mine, attach_uprobe(trace_obj.programs["up_count"], "libc.so.6", "getpid") as everyone:
            raw_getpid(13)
            child.communicate("go\n", timeout=30)
            assert count(trace_obj, K_LIBC_GETPID) == 13
            assert count(trace_obj, K_LIBC_GETPID, child.pid) == 0
            assert count(trace_obj, K_UPROBE) == 13 and count(trace_obj, K_UPROBE, child.pid) >= 9
            if kernel_describes_perf_links():
                assert mine.info().target["file_name"] == everyone.info().target["file_name"]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_uprobe_imported_function_resolves_to_library() -> None:
    # the -fno-plt binary has no stub for puts: the probe goes on libc's puts
    loc = resolve_function(TARGET_NOPLT, "puts")
    assert loc.path.endswith("libc.so.6") and loc.offset == resolve_function("libc.so.6", "puts").offset


def test_uprobe_legacy_tracefs(trace_obj: Object) -> None:
    if not os.path.exists("/sys/kernel/tracing/uprobe_events"):
        pytest.skip("no uprobe_events in tracefs")
    p = _start_waiting(TARGET, 4)
    with attach_uprobe(trace_obj.programs["up_count"], TARGET, "target_add", legacy=True, pid=p.pid) as link:
        event = link.target
        _finish(p)
        assert count(trace_obj, K_UPROBE, p.pid) == 4
        with open("/sys/kernel/tracing/uprobe_events") as f:
            assert "pybpfload/" in f.read()
    with open("/sys/kernel/tracing/uprobe_events") as f:
        assert f"_{os.getpid()}_" not in f.read(), f"legacy probe for {event} left behind"


# ---------------------------------------------------------------- iterators
@pytest.fixture
def iter_obj() -> Iterator[Object]:
    from pybpfload.btf import query
    from pybpfload.btf.vmlinux import vmlinux_spec

    vm = vmlinux_spec()
    task = vm.find_id("task_struct")
    offsets = {"tgid_off": query.field(vm, task, "tgid").offset, "pid_off": query.field(vm, task, "pid").offset}
    with Object.open(fixture_path("attach_iter.bpf.o")) as obj:
        rodata = [m for name, m in obj.maps.items() if name.endswith(".rodata")][0]
        value = bytearray(rodata.initial_value or b"")
        sec = obj.model.datasec(".rodata")
        assert sec is not None
        for var in sec.vars:  # offsets fixed up from the ELF symbols
            if var.name in offsets:
                struct.pack_into("=I", value, var.offset, offsets.pop(var.name))
        assert not offsets
        rodata.initial_value = bytes(value)
        obj.load()
        yield obj


def _ps_tasks() -> set:
    return {(int(p), int(t)) for p in os.listdir("/proc") if p.isdigit() for t in _tids(p)}


def _tids(pid: str) -> list:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def test_iter_tasks_lists_own_pid(iter_obj: Object) -> None:
    with attach_iter(iter_obj.programs["dump_task"]) as link:
        assert isinstance(link, IterLink)
        before = _ps_tasks()
        rows = {tuple(map(int, line.split())) for line in link.read_text().splitlines()}
        stable = {task for task in before & _ps_tasks() if task[0] != 1}  # alive during the walk (pid 1 is not listed here, nor by bpftool)
        assert (ME, ME) in rows
        assert (ME, __import__("threading").get_native_id()) in rows
        # /proc agrees on the tasks alive throughout
        assert len(stable & rows) >= 0.95 * len(stable) and (ME, ME) in stable & rows
        info = link.info()
        assert info.type == LinkType.BPF_LINK_TYPE_ITER and info.target["target_name"] == "task"
        # a second walk works too, streamed line by line
        assert f"{ME} {ME}" in list(link.lines())


def test_iter_task_filtered_by_pid(iter_obj: Object) -> None:
    if not vmlinux_has("bpf_iter_link_info", "task"):  # task iterator filters came in 5.19
        with pytest.raises((OSError, NotSupportedError)) as ei:
            attach_iter(iter_obj.programs["dump_task"], pid=ME).close()
        assert "iter" in str(ei.value)
        assert isinstance(ei.value, NotSupportedError) or ei.value.errno in (errno.E2BIG, errno.EINVAL)
        return
    with attach_iter(iter_obj.programs["dump_task"], pid=ME) as link:
        tgids = {int(line.split()[0]) for line in link.read_text().splitlines()}
        assert tgids == {ME}
        assert link.info().target["pid"] == ME


# ---------------------------------------------------------------- perf_event programs
def test_perf_event_program_on_cpu_clock() -> None:
    with Object.open(fixture_path("attach_net.bpf.o")) as obj:
        for name, p in obj.programs.items():
            p.autoload = name == "perf_counter"
        obj.load()
        attr = perf.PerfEventAttr(type=perf.PERF_TYPE_SOFTWARE, config=0, sample_period=100_000)  # cpu-clock, every 100 us
        with perf.perf_event_open(attr, -1, 0) as pfd:
            with obj.programs["perf_counter"].attach_perf_event(pfd) as link:
                os.sched_setaffinity(0, {0}) if hasattr(os, "sched_setaffinity") else None
                try:
                    end = time.monotonic() + 0.2
                    while time.monotonic() < end:
                        pass
                finally:
                    os.sched_setaffinity(0, range(os.cpu_count() or 1)) if hasattr(os, "sched_setaffinity") else None
                hits = obj.maps["hits"][9]
                assert hits > 100
                assert link.is_bpf_link is kernel_has_perf_links()
                if kernel_describes_perf_links():
                    assert link.info().target["perf_event_type"] == "event"


# ---------------------------------------------------------------- refused kinds
def _refused_obj(keep: str) -> Object:
    obj = Object.open(fixture_path("attach_refused.bpf.o"))
    for name, p in obj.programs.items():
        p.autoload = name == keep
    return obj


def _kernel_has_func(func: str) -> bool:
    """Whether vmlinux BTF (read with bpftool, the oracle) has a FUNC called ``func``."""
    out = subprocess.run(
        [require_tool("bpftool"), "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], check=True, capture_output=True, text=True
    ).stdout
    return f"] FUNC '{func}' " in out


@pytest.mark.parametrize("name", ["on_fentry", "on_fexit", "on_fmod_ret", "on_lsm"])
def test_trampoline_kinds_refused_or_run(name: str) -> None:
    with _refused_obj(name) as obj:
        prog = obj.programs[name]
        target = ("bpf_lsm_" if name == "on_lsm" else "") + (prog.attach_target or "")
        if not _kernel_has_func(target):
            # e.g. __sys_bpf is inlined away on 5.10: the loader names the missing target
            with pytest.raises(BPFError, match=f"{name}.*{target}"):
                obj.load()
            return
        if not prog_type_supported(prog.type):
            # no trampolines here (the loader's probe): refused by name, with the kernel's errno
            with pytest.raises(NotSupportedError) as ei:
                obj.load()
            assert_not_supported(ei.value, "trampolines", name)
            return
        try:
            obj.load()
        except VerifierError as e:
            # this kernel has no usable trampolines: refused at load, with the errno
            assert e.errno in (errno.EPERM, errno.ENOTSUPP if hasattr(errno, "ENOTSUPP") else 524, errno.EOPNOTSUPP, errno.EINVAL)
            assert name in str(e)
            return
        with prog.attach() as link:  # loadable here: attach and run it for real
            info = link.info()
            assert info.type == LinkType.BPF_LINK_TYPE_TRACING and info.attach_type == prog.expected_attach_type
            if name in ("on_fentry", "on_fexit"):
                bss = [m for n, m in obj.maps.items() if n.endswith(".bss")][0]
                sec = obj.model.datasec(".bss")
                assert sec is not None
                var = next(v for v in sec.vars if v.name == name[3:] + "_hits")
                from pybpfload.syscall import commands

                commands.map_create(2, 4, 4, 1).close()  # a bpf() call
                hits = struct.unpack_from("=Q", bss.mmap(writable=False), var.offset)[0]
                assert hits >= 1


def _in_kallsyms(func: str) -> bool:
    with open("/proc/kallsyms") as f:
        return any(line.rstrip("\n").split(" ")[2:3] == [func] for line in f)


@pytest.mark.parametrize("name,call", [("on_kprobe", "kprobe"), ("on_kretprobe", "kretprobe"), ("on_ksyscall", "ksyscall")])
def test_kprobes_clear_error_when_absent(name: str, call: str) -> None:
    with _refused_obj(name) as obj:
        obj.load()
        prog = obj.programs[name]
        if kprobe_support() is not None:
            target = prog.attach_target or ""
            if call != "ksyscall" and not _in_kallsyms(target):
                # e.g. __sys_bpf is inlined away on 5.10: the kernel's ENOENT; probe a function every kernel has
                with pytest.raises(OSError) as ei:
                    prog.attach()
                assert ei.value.errno == errno.ENOENT
                attached = prog.attach_kprobe("bpf_fentry_test1", retprobe=call == "kretprobe")
            else:
                attached = prog.attach()
            with attached as link:
                assert link.info().prog_id == prog.info().id
                if kernel_describes_perf_links():
                    assert link.info().target["perf_event_type"] in ("kprobe", "kretprobe")
            return
        with pytest.raises(NotSupportedError) as ei:
            prog.attach()
        assert ei.value.feature == "kprobes" and "CONFIG_KPROBES" in str(ei.value)
        with pytest.raises(NotSupportedError):
            prog.attach_kprobe("__sys_bpf", retprobe=call == "kretprobe")
        # auto-attach of a whole object fails the same way, or skips when asked
        assert obj.attach_all(skip_unsupported=True) == []


def test_link_repr_and_state(trace_obj: Object) -> None:
    link = trace_obj.programs["raw_getpid"].attach_raw_tracepoint("sys_enter")
    assert "raw_tracepoint" in repr(link) and link.fd >= 0 and isinstance(link, Link)
    link.close()
    link.close()
    assert "closed" in repr(link)
    with pytest.raises(StateError):
        link.info()


def _link_ids() -> set:
    from pybpfload.syscall import commands

    return set(commands.iter_ids("link"))


def test_object_close_detaches_what_attach_all_made(bpffs: Path) -> None:
    """A with block around an object leaves nothing attached (libbpf's skeleton destroy);
    a pinned link lives on, and an explicit link stays its caller's."""
    with Object.open(fixture_path("attach_trace.bpf.o")) as obj:
        obj.load()
        links = obj.attach_all()
        # perf-event attachments made without kernel links (before 5.15) have no id
        ids = {link.info().id for link in links} - {0}
        assert len(links) == 4 and ids and ids <= _link_ids()
        kept = next(link for link in links if link.name == "raw_getpid")
        kept_id = kept.info().id
        kept.pin(str(bpffs / "kept"))
        explicit = attach_tracepoint(obj.programs["tp_manual"], "syscalls/sys_enter_getppid")
        explicit_id = explicit.info().id
    try:
        deadline = time.monotonic() + 5  # the kernel frees a link after an RCU grace period
        while ids & _link_ids() != {kept_id} and time.monotonic() < deadline:
            time.sleep(0.01)
        now = _link_ids()
        assert ids & now == {kept_id}  # the others detached with the object
        for link in links:  # every one closed, links or not
            with pytest.raises(StateError):
                link.fileno()
        assert explicit_id in now if explicit_id else explicit.perf_fd >= 0  # before 5.15 a perf event, no link
    finally:
        explicit.close()
        os.unlink(bpffs / "kept")
    deadline = time.monotonic() + 5  # the kernel frees a link after an RCU grace period
    while ({kept_id, explicit_id} | ids) & _link_ids() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not ({kept_id, explicit_id} | ids) & _link_ids()


@pytest.mark.parametrize(
    "prog, words",
    [
        ("tp_missing", ["'btf_trace_no_such_tracepoint_pyb'", "raw_tp/no_such_tracepoint_pyb", "without BTF"]),
        ("fentry_missing", ["'no_such_function_pyb'", "FUNC"]),
    ],
)
def test_missing_btf_target_is_named(prog: str, words: list) -> None:
    with Object.open(fixture_path("missing_targets.bpf.o")) as obj:
        for name, p in obj.programs.items():
            p.autoload = name == prog
        with pytest.raises(BPFError) as ei:
            obj.load()
        text = str(ei.value)
        assert f"'{prog}'" in text and all(w in text for w in words), text
        assert getattr(ei.value, "errno", None) == errno.ESRCH  # libbpf's -ESRCH


def test_wrong_hook_says_which_program_types_it_takes(trace_obj: Object) -> None:
    from pybpfload.link import attach_xdp

    with pytest.raises(OSError) as ei:
        attach_xdp(trace_obj.programs["tp_getpid"], "lo")
    text = str(ei.value)
    assert ei.value.errno == errno.EINVAL  # the kernel's answer, kept
    assert "'tp_getpid' is a tracepoint program" in text and "the xdp hook takes xdp programs" in text
    with pytest.raises(OSError, match="raw_tracepoint hook takes raw_tracepoint or raw_tracepoint_writable or tracing programs"):
        trace_obj.programs["tp_getpid"].attach_raw_tracepoint("sys_enter")


class _Closing:
    """Stands in for a link: records its close, and may fail it."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.closed = fail, False

    def close(self) -> None:
        self.closed = True
        if self.fail:
            raise StateError("close failed")


def test_object_close_closes_every_link_and_the_rest_when_one_fails() -> None:
    """A link whose close fails does not keep the others attached, nor the object's
    programs and maps open: everything is closed, then the first failure is raised."""
    obj = Object.open(fixture_path("attach_trace.bpf.o"))
    stand_ins = [_Closing(), _Closing(fail=True), _Closing()]
    obj._auto_links = list(stand_ins)
    with pytest.raises(StateError, match="close failed"):
        obj.close()
    assert all(link.closed for link in stand_ins)
    assert all(p._closed for p in obj.programs.values()) and all(m._closed for m in obj.maps.values())
