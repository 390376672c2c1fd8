"""Link objects on the kernel: pin, reopen from the pin in another process,
detach, update_program, info against bpftool (oracle)."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from typing import Iterator

import pytest

from pybpfload import Object
from pybpfload.errors import NotSupportedError, PinError, StateError
from pybpfload.link import Link, attach_raw_tracepoint, attach_tracepoint

from .conftest import ROOT, fixture_path, require_tool
from .kernel_adapt import kernel_has_perf_links

pytestmark = pytest.mark.kernel

ME = os.getpid()
K_TP, K_RAW_TP, K_TP_BTF = 0, 1, 2
_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture(scope="module", autouse=True)
def _tracefs() -> None:
    if not os.path.isdir("/sys/kernel/tracing/events") and os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=False)


@pytest.fixture
def obj() -> Iterator[Object]:
    with Object.open(fixture_path("attach_trace.bpf.o")) as o:
        o.load()
        yield o


def count(o: Object, kind: int) -> int:
    return o.maps["counts"].get({"tgid": ME, "kind": kind}, 0)  # typed: struct key -> __u64


def getpids(n: int) -> None:
    for _ in range(n):
        _libc.getpid()


def _bpftool_link(link_id: int) -> dict:
    out = subprocess.run([require_tool("bpftool"), "-j", "link", "show", "id", str(link_id)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _in_child(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("kind", ["raw_tp", "tracepoint"])
def test_pin_reopen_in_other_process_and_detach(obj: Object, bpffs, kind: str) -> None:  # type: ignore[no-untyped-def]
    if kind == "raw_tp":
        link, slot = attach_raw_tracepoint(obj.programs["raw_getpid"], "sys_enter"), K_RAW_TP
    else:
        link, slot = attach_tracepoint(obj.programs["tp_getpid"], "syscalls/sys_enter_getpid"), K_TP
    path = str(bpffs / f"{kind}_link")
    if kind == "tracepoint" and not kernel_has_perf_links():
        # before 5.15 a tracepoint is attached by ioctl: no link to pin, and the error says so
        with link:
            assert not link.is_bpf_link
            with pytest.raises(NotSupportedError, match="perf links"):
                link.pin(path)
        assert not os.path.exists(path)
        return
    link.pin(path)
    assert link.pinned_at == path
    info = link.info()
    link.close()  # pinned: stays attached
    before = count(obj, slot)
    getpids(4)
    assert count(obj, slot) - before == 4
    assert info.id in set(Link.ids())
    # another process opens the pin, checks it and detaches it
    seen = _in_child(
        "from pybpfload.link import Link\n"
        f"l = Link.from_pin({path!r})\n"
        "i = l.info()\n"
        "print(i.id, i.prog_id, i.type_name)\n"
        "l.detach()\n"
    )
    assert seen == f"{info.id} {info.prog_id} {info.type_name}"
    assert not os.path.exists(path)
    before = count(obj, slot)
    getpids(4)
    assert count(obj, slot) == before
    assert info.id not in set(Link.ids())


def test_close_unpinned_detaches_and_reopen_by_id(obj: Object) -> None:
    link = attach_raw_tracepoint(obj.programs["raw_getpid"], "sys_enter")
    again = Link.from_id(link.info().id)
    link.close()
    before = count(obj, K_RAW_TP)
    getpids(3)
    assert count(obj, K_RAW_TP) - before == 3  # the other fd holds it
    again.close()
    before = count(obj, K_RAW_TP)
    getpids(3)
    assert count(obj, K_RAW_TP) == before


def test_info_matches_bpftool(obj: Object) -> None:
    with attach_raw_tracepoint(obj.programs["raw_getpid"], "sys_enter") as raw, attach_tracepoint(obj.programs["tp_getpid"], "syscalls/sys_enter_getpid") as tp:
        for link in (raw, tp) if tp.is_bpf_link else (raw,):  # tracepoints have BPF links from 5.15 on
            info = link.info()
            oracle = _bpftool_link(info.id)
            assert oracle["id"] == info.id and oracle["prog_id"] == info.prog_id
            assert oracle["type"] == info.type_name
        assert _bpftool_link(raw.info().id)["tp_name"] == raw.info().target["tp_name"]
        assert tp.is_bpf_link is kernel_has_perf_links()


def test_update_program(obj: Object) -> None:
    from pybpfload.link import attach_cgroup

    with open("/proc/mounts") as f:
        cgroot = [line.split()[1] for line in f if line.split()[2] == "cgroup2"]
    if not cgroot:
        pytest.skip("no cgroup v2")
    cg = os.path.join(cgroot[0], f"pybpfload-link-{ME}")
    os.mkdir(cg)
    try:
        with Object.open(fixture_path("attach_net.bpf.o")) as net:
            for name, p in net.programs.items():
                p.autoload = name in ("cg_egress", "cg_ingress")  # not nf_counter: netfilter is 6.4+
            net.load()
            egress, ingress = net.programs["cg_egress"], net.programs["cg_ingress"]
            with attach_cgroup(egress, cg) as link:
                old_id = link.info().prog_id
                link.update_program(ingress, old=egress)  # same attach type is not required of the program
                assert link.info().prog_id == ingress.info().id != old_id
                assert link.program is ingress
                with pytest.raises(OSError):
                    link.update_program(egress, old=egress)  # egress is no longer attached
        # raw tracepoint links cannot be updated: a clear error
        with attach_raw_tracepoint(obj.programs["raw_getpid"], "sys_enter") as raw:
            with pytest.raises((NotSupportedError, OSError)):
                raw.update_program(obj.programs["btf_getpid"])
    finally:
        os.rmdir(cg)


def test_pin_errors_and_states(obj: Object, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with attach_raw_tracepoint(obj.programs["raw_getpid"], "sys_enter") as link:
        with pytest.raises(PinError):
            link.pin(str(tmp_path / "not_bpffs"))
    with pytest.raises(StateError):
        link.pin("/sys/fs/bpf/x")
    with attach_tracepoint(obj.programs["tp_getpid"], "syscalls/sys_enter_getpid", force_ioctl=True) as legacy:
        with pytest.raises(NotSupportedError) as ei:
            legacy.pin("/sys/fs/bpf/x")
        assert "perf links" in str(ei.value)
