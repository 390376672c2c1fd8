"""Programs loaded from instruction lists, on the real kernel."""

from __future__ import annotations

import errno
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import pybpfload as bpf
from pybpfload import Map, MapType as MT, Program, ProgType as PT
from pybpfload.errors import StateError, SyscallError, VerifierError
from pybpfload.syscall import commands

from .conftest import require_tool

pytestmark = pytest.mark.kernel


def ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def mov64_imm(dst: int, imm: int) -> bytes:
    return ins(0xB7, dst, imm=imm)


EXIT = ins(0x95)


def ret(v: int) -> bytes:
    return mov64_imm(0, v) + EXIT


def ld_map_fd(dst: int, fd: int) -> bytes:
    return ins(0x18, dst, 1, imm=fd) + ins(0, imm=0)


def _bpftool_prog(prog_id: int) -> dict:
    tool = require_tool("bpftool")
    out = subprocess.run([tool, "prog", "show", "id", str(prog_id), "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_load_and_run() -> None:
    with Program.load(ret(2), PT.BPF_PROG_TYPE_XDP, name="xdp_pass") as p:
        r = p.test_run(b"\xaa" * 64, repeat=10)
        assert r.retval == 2 and r.data == b"\xaa" * 64 and r.duration >= 0
        info = p.info()
        seen = _bpftool_prog(info.id)
        assert (seen["name"], seen["type"], seen["tag"]) == ("xdp_pass", "xdp", info.tag)
        assert seen["gpl_compatible"] is True and info.gpl_compatible
        assert p.xlated_insns() == ret(2)
        assert info.id in set(Program.ids())


def test_program_reads_a_map() -> None:
    """r0 = *(u32 *)lookup(map, &key 0) — checks ld_imm64 map fds and helper calls."""
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="cfg", value_format="I") as m:
        m[0] = 42
        code = (
            ins(0x62, 10, off=-4, imm=0)  # *(u32 *)(r10 - 4) = 0
            + ins(0xBF, 2, 10)  # r2 = r10
            + ins(0x07, 2, imm=-4)  # r2 += -4
            + ld_map_fd(1, m.fileno())
            + ins(0x85, imm=1)  # call bpf_map_lookup_elem
            + ins(0x15, 0, off=2, imm=0)  # if r0 == 0 goto +2
            + ins(0x61, 0, 0)  # r0 = *(u32 *)(r0 + 0)
            + EXIT
            + ret(0)
        )
        with Program.load(code, PT.BPF_PROG_TYPE_SOCKET_FILTER, name="rd") as p:
            assert p.test_run(b"\0" * 64).retval == 42
            m[0] = 7
            assert p.test_run(b"\0" * 64).retval == 7
            assert p.info().map_ids == (m.info().id,)


def test_verifier_rejection_carries_the_log() -> None:
    with pytest.raises(VerifierError) as ei:
        Program.load(EXIT, PT.BPF_PROG_TYPE_XDP, name="bad")  # r0 is never set
    e = ei.value
    assert e.errno == errno.EACCES and isinstance(e, OSError) and isinstance(e, bpf.BPFError)
    assert "R0 !read_ok" in e.log
    assert "R0 !read_ok" in str(e) and "bad" in str(e)
    assert e.log_lines[-1].startswith("processed")


def test_log_buffer_grows_until_the_whole_log_fits() -> None:
    # 2000 instructions at log level 2 write far more than the 1 KiB we start with
    body = b"".join(ins(0x07, 0, imm=1) for _ in range(2000))
    p = Program("long", PT.BPF_PROG_TYPE_XDP, mov64_imm(0, 0) + body + EXIT, log_level=2)
    with p._load(log_size=1024):
        assert p.log.count("r0 += 1") >= 2000
        assert "processed 2002 insns" in p.log
    # a rejected one, refused only after 2000 verified insns (on every kernel):
    # the log in the error is whole too (starts at insn 0, ends at the culprit)
    bad = mov64_imm(0, 0) + body + ins(0xBF, 0, 2) + EXIT  # r0 = r2: r2 was never written
    with pytest.raises(VerifierError) as ei:
        Program.load(bad, PT.BPF_PROG_TYPE_XDP, name="longbad", log_level=2)
    assert ei.value.log_lines[0].startswith("func#0") or ei.value.log_lines[0].startswith("0:")
    assert "R2 !read_ok" in ei.value.log
    assert ei.value.log.count("r0 += 1") >= 2000
    assert len(ei.value.log) > 1024


def test_verbose_log_on_success() -> None:
    with Program.load(ret(1), PT.BPF_PROG_TYPE_XDP, name="v", log_level=2) as p:
        assert "processed 2 insns" in p.log
    with Program.load(ret(1), PT.BPF_PROG_TYPE_XDP, name="q") as p:
        assert p.log == ""


def test_ctx_in_and_out() -> None:
    # __sk_buff ctx: the program returns skb->mark; ctx_in sets it
    code = ins(0x61, 0, 1, off=8) + EXIT  # r0 = *(u32 *)(r1 + offsetof(__sk_buff, mark) = 8)
    with Program.load(code, PT.BPF_PROG_TYPE_SCHED_CLS, name="mark") as p:
        ctx = bytearray(192)  # sizeof(struct __sk_buff)
        struct.pack_into("<I", ctx, 8, 1234)
        r = p.test_run(b"\0" * 64, ctx=bytes(ctx), ctx_size_out=len(ctx))
        assert r.retval == 1234
        assert struct.unpack_from("<I", r.ctx, 8)[0] == 1234


def test_test_run_errors() -> None:
    # an skb program (XDP on 5.10 sized its buffer to the page, so it took short data)
    with Program.load(ret(0), PT.BPF_PROG_TYPE_SCHED_CLS, name="short") as p:
        with pytest.raises(SyscallError) as ei:
            p.test_run(b"\0" * 4)  # shorter than an Ethernet header
        assert ei.value.errno == errno.EINVAL and "BPF_PROG_TEST_RUN" in str(ei.value)


def test_attributes_and_state() -> None:
    p = Program("st", PT.BPF_PROG_TYPE_XDP, ret(3))
    assert p.fd == -1 and p.insn_cnt == 2
    with pytest.raises(StateError, match="not loaded"):
        p.test_run(b"\0" * 64)
    p.insns = ret(4)
    p.type = PT.BPF_PROG_TYPE_XDP
    p._load()
    assert p.test_run(b"\0" * 64).retval == 4
    with pytest.raises(StateError):
        p.insns = ret(5)
    with pytest.raises(StateError):
        p.type = PT.BPF_PROG_TYPE_SOCKET_FILTER
    p.close()
    with pytest.raises(StateError, match="closed"):
        p.info()
    with pytest.raises(bpf.BPFError, match="multiple of 8"):
        Program("odd", PT.BPF_PROG_TYPE_XDP, b"\0" * 12)


def test_expected_attach_type_and_license() -> None:
    code = ret(1)
    with Program.load(
        code,
        PT.BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        name="connect4",
        expected_attach_type=bpf.AttachType.BPF_CGROUP_INET4_CONNECT,
    ) as p:
        assert p.info().type == PT.BPF_PROG_TYPE_CGROUP_SOCK_ADDR
    # the attach type is required for this program type: without it the kernel refuses
    with pytest.raises(SyscallError):
        Program.load(code, PT.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, name="noattach", expected_attach_type=0x7FFF)
    with Program.load(code, PT.BPF_PROG_TYPE_XDP, name="prop", license="Proprietary") as p:
        assert p.info().gpl_compatible is False


def test_pin_open_by_id_and_pin(bpffs: Path) -> None:
    with Program.load(ret(2), PT.BPF_PROG_TYPE_XDP, name="pinned") as p:
        path = str(bpffs / "p")
        p.pin(path)
        with Program.from_pin(path) as again:
            assert again.info().id == p.info().id and again.name == "pinned"
            assert again.test_run(b"\0" * 64).retval == 2
        with Program.from_id(p.info().id) as byid:
            assert byid.info().tag == p.info().tag
        tool = require_tool("bpftool")
        seen = json.loads(subprocess.run([tool, "prog", "show", "pinned", path, "--json"], capture_output=True, text=True, check=True).stdout)
        assert seen["id"] == p.info().id
        p.unpin()
        assert not Path(path).exists()


def test_enable_stats_counts_runs() -> None:
    with commands.enable_stats(0), Program.load(ret(2), PT.BPF_PROG_TYPE_XDP, name="stats") as p:
        p.test_run(b"\0" * 64, repeat=5)
        info = p.info()
        assert info.run_cnt == 5 and info.run_time_ns > 0


def test_prog_bind_map() -> None:
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1) as m, Program.load(ret(0), PT.BPF_PROG_TYPE_XDP, name="bind") as p:
        assert p.info().map_ids == ()
        commands.prog_bind_map(p.fileno(), m.fileno())
        assert p.info().map_ids == (m.info().id,)


def test_second_process_sees_pinned_program(bpffs: Path) -> None:
    with Program.load(ret(2), PT.BPF_PROG_TYPE_XDP, name="xproc") as p:
        p.pin(str(bpffs / "x"))
        code = "import sys; from pybpfload import Program; p = Program.from_pin(sys.argv[1]); print(p.test_run(bytes(64)).retval); p.close()"
        out = subprocess.run([sys.executable, "-c", code, str(bpffs / "x")], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "2"
        p.unpin()
