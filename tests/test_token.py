"""BPF tokens (Linux 6.9+): objects loaded through a token by a process without
CAP_BPF, in a user namespace a privileged parent delegated a bpffs to.

The set-up is the kernel selftest's (tools/testing/selftests/bpf/prog_tests/token.c):

1. the child forks, makes a user namespace and tells the parent, which writes
   its uid and gid maps (root in the namespace is root outside, without any
   capability there);
2. the child makes a mount namespace and ``fsopen("bpf")`` — a bpffs owned by its
   user namespace — and passes the fs-context fd to the parent (SCM_RIGHTS);
3. the parent, privileged in the initial namespace, sets the ``delegate_*``
   options (the child may not), creates the superblock and ``fsmount``s it,
   and passes the mount fd back;
4. the child mounts it where it likes (``move_mount``) and loads objects through
   a token made from it; its verdict comes back over the socket.

Kernels without tokens (5.10, 6.1) are told by the probe (BPF_TOKEN_CREATE
answered EINVAL) and give a NotSupportedError.
"""

from __future__ import annotations

import array
import ctypes
import errno
import os
import pickle
import socket
import struct
import tempfile
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from pybpfload import Object
from pybpfload.abi.uapi import Cmd, MapType, ProgType
from pybpfload.errors import BPFOSError, NotSupportedError, ParseError, SyscallError
from pybpfload.syscall import btf_features, commands, features
from pybpfload.syscall.token import Token, prepare

from .conftest import FIXTURES

_libc = ctypes.CDLL(None, use_errno=True)
# new syscalls have one number on every architecture with the generic table (x86-64, arm64, riscv64...)
NR_MOVE_MOUNT, NR_FSOPEN, NR_FSCONFIG, NR_FSMOUNT = 429, 430, 431, 432
FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 1, 6
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 1 << 18
TIMEOUT = 600  # seconds a step may take (TCG guests are slow)

ANY = {"delegate_cmds": "any", "delegate_maps": "any", "delegate_progs": "any", "delegate_attachs": "any"}
XDP_PASS = 2


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _mask(*values: int) -> str:
    return hex(sum(1 << int(v) for v in values))


# ---------------------------------------------------------------- the parent / child protocol
def _send_fd(sock: socket.socket, fd: int) -> None:
    sock.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def _recv_fd(sock: socket.socket) -> int:
    msg, anc, _, _ = sock.recvmsg(1, socket.CMSG_SPACE(4))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            return array.array("i", data[:4])[0]
    raise RuntimeError(f"expected an fd from the other side, got {msg!r}")


def _send_blob(sock: socket.socket, data: bytes) -> None:
    sock.sendall(struct.pack("<I", len(data)) + data)


def _recv_blob(sock: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("the child went away")
            buf += chunk
        return buf

    (n,) = struct.unpack("<I", exact(4))
    return exact(n)


def _child(sock: socket.socket, mounts: int, body: Callable[[List[int]], None]) -> None:
    """In the forked child: user and mount namespaces, bpffs contexts to the parent, ``body(mount fds)``."""
    _check(_libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    sock.sendall(b"U")
    if sock.recv(1) != b"M":
        raise RuntimeError("the parent did not write the id maps")
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    mnt_fds = []
    for i in range(mounts):
        fs_fd = _check(_libc.syscall(NR_FSOPEN, b"bpf", 0), "fsopen(bpf)")
        if i == 0:  # only the initial namespace's privilege may delegate
            r = _libc.syscall(NR_FSCONFIG, fs_fd, FSCONFIG_SET_STRING, b"delegate_cmds", b"any", 0)
            assert r < 0 and ctypes.get_errno() == errno.EPERM, "an unprivileged child set delegate_cmds"
        _send_fd(sock, fs_fd)
        os.close(fs_fd)
        mnt_fds.append(_recv_fd(sock))
    features.reset_cache()  # what the parent probed as root does not hold here
    btf_features.probe(refresh=True)
    body(mnt_fds)


def _parent(sock: socket.socket, pid: int, delegations: List[Dict[str, str]]) -> None:
    if sock.recv(1) != b"U":
        raise RuntimeError("the child made no user namespace")
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("deny")
    for kind in ("uid", "gid"):
        with open(f"/proc/{pid}/{kind}_map", "w") as f:
            f.write("0 0 1")
    sock.sendall(b"M")
    for opts in delegations:
        fs_fd = _recv_fd(sock)
        try:
            for key, value in opts.items():
                _check(_libc.syscall(NR_FSCONFIG, fs_fd, FSCONFIG_SET_STRING, key.encode(), value.encode(), 0), f"fsconfig {key}={value}")
            _check(_libc.syscall(NR_FSCONFIG, fs_fd, FSCONFIG_CMD_CREATE, None, None, 0), "fsconfig create")
            mnt_fd = _check(_libc.syscall(NR_FSMOUNT, fs_fd, 0, 0), "fsmount")
        finally:
            os.close(fs_fd)
        try:
            _send_fd(sock, mnt_fd)
        finally:
            os.close(mnt_fd)


def in_user_namespace(delegations: List[Dict[str, str]], body: Callable[[List[int]], None]) -> None:
    """Run ``body(mount fds)`` in a forked child, in a user namespace, with one bpffs per
    entry of ``delegations`` (its delegate_* options); the child's failure fails the test."""
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent_sock.settimeout(TIMEOUT)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the socket
        code = 0
        try:
            parent_sock.close()
            try:
                _child(child_sock, len(delegations), body)
                verdict = ("ok", "")
            except BaseException:
                verdict = ("fail", traceback.format_exc())
            _send_blob(child_sock, pickle.dumps(verdict))
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    child_sock.close()
    try:
        _parent(parent_sock, pid, delegations)
        verdict = pickle.loads(_recv_blob(parent_sock))
    finally:
        parent_sock.close()
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status:#x}"
    if verdict[0] != "ok":
        pytest.fail(f"in the user namespace:\n{verdict[1]}")


def _mount_at(mnt_fd: int, target: str) -> None:
    _check(_libc.syscall(NR_MOVE_MOUNT, mnt_fd, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH), f"move_mount to {target}")


def _userns_or_skip() -> None:
    """Tokens need a kernel that has them (the probe decides) and user namespaces."""
    if not os.path.exists("/proc/self/ns/user"):
        pytest.skip("no user namespaces in this kernel")
    with open("/proc/sys/user/max_user_namespaces") as f:
        if int(f.read()) == 0:
            pytest.skip("user namespaces are disabled (user.max_user_namespaces = 0)")


def _assert_no_tokens(bpffs: Path) -> None:
    """A kernel without BPF_TOKEN_CREATE: an explicit token path is a clear NotSupportedError,
    and the default attempt is silently skipped."""
    with Object.open(FIXTURES / "xdp_count.bpf.o", bpf_token_path=str(bpffs)) as obj:
        with pytest.raises(NotSupportedError) as ei:
            obj.load()
        assert "BPF_TOKEN_CREATE" in str(ei.value) and str(bpffs) in str(ei.value) and "xdp_count" in str(ei.value)
        assert ei.value.errno == errno.EINVAL
        assert not obj.loaded and obj.token is None
    with Object.open(FIXTURES / "xdp_count.bpf.o") as obj:
        obj.load()
        assert obj.token is None and obj.token_fd == -1


# ---------------------------------------------------------------- the child's work
def _loads_through_token(mnt_fds: List[int]) -> None:
    (mnt,) = mnt_fds
    where = tempfile.mkdtemp(prefix="pybpfload-token-")
    _mount_at(mnt, where)
    os.close(mnt)

    # without a token the same object is refused: this process has no CAP_BPF outside
    with Object.open(FIXTURES / "xdp_count.bpf.o", bpf_token_path="") as obj:
        with pytest.raises(BPFOSError) as ei:
            obj.load()
        assert ei.value.errno == errno.EPERM, ei.value
        assert obj.token is None

    # the probes run through the token, their answers cached on it apart from the token-less ones
    with Token.create(where) as tok:
        info = tok.info()
        assert {Cmd.BPF_MAP_CREATE, Cmd.BPF_PROG_LOAD, Cmd.BPF_BTF_LOAD} <= info.allowed_cmds
        assert ProgType.BPF_PROG_TYPE_XDP in info.allowed_progs and MapType.BPF_MAP_TYPE_HASH in info.allowed_maps
        assert btf_features.probe(token=tok).btf and not btf_features.probe().btf  # BPF_BTF_LOAD needs CAP_BPF
        assert features.prog_type_supported(ProgType.BPF_PROG_TYPE_XDP, token=tok)
        assert features.map_type_supported(MapType.BPF_MAP_TYPE_HASH, token=tok)
        assert features.has_prog_name(token=tok) and features.has_global_data(token=tok)
        assert ("has_prog_name",) in tok._features
        # commands take the token directly too
        commands.map_create(MapType.BPF_MAP_TYPE_HASH, 4, 4, 1, token_fd=tok.fd).close()

    # bpf_token_path: maps, BTF and the program through the token; it runs
    with Object.open(FIXTURES / "xdp_count.bpf.o", bpf_token_path=where) as obj:
        obj.load()
        assert obj.token is not None and obj.token_fd >= 0 and obj.btf_fd >= 0
        r = obj.programs["xdp_count"].test_run(b"\0" * 64, repeat=3)
        assert r.retval == XDP_PASS and obj.maps["pkt_count"][0] == 3
        tok = obj.token
    assert tok.closed  # the object owned it

    # LIBBPF_BPF_TOKEN_PATH when the option is unset; global data and BTF
    os.environ["LIBBPF_BPF_TOKEN_PATH"] = where
    try:
        with Object.open(FIXTURES / "global_data.bpf.o") as obj:
            obj.load()
            assert obj.token_fd >= 0 and obj.btf_fd >= 0
            assert obj.programs["use_globals"].test_run(b"\0" * 64).retval == XDP_PASS
            assert obj.bss.hits == 1 and obj.data.counter == 7 + 100 + ord("h") + 9 + 2 + 5
        # "" in the variable: no token
        os.environ["LIBBPF_BPF_TOKEN_PATH"] = ""
        with Object.open(FIXTURES / "xdp_count.bpf.o") as obj:
            with pytest.raises(BPFOSError) as ei:
                obj.load()
            assert ei.value.errno == errno.EPERM
    finally:
        del os.environ["LIBBPF_BPF_TOKEN_PATH"]

    # neither: libbpf's optional attempt at /sys/fs/bpf finds this bpffs there
    _check(_libc.mount(where.encode(), b"/sys/fs/bpf", None, MS_BIND, None), "mount --bind on /sys/fs/bpf")
    with Object.open(FIXTURES / "xdp_count.bpf.o") as obj:
        obj.load()
        assert obj.token_fd >= 0
        assert obj.programs["xdp_count"].test_run(b"\0" * 64).retval == XDP_PASS


def _refuses_what_is_not_delegated(mnt_fds: List[int]) -> None:
    (mnt,) = mnt_fds
    where = tempfile.mkdtemp(prefix="pybpfload-token-")
    _mount_at(mnt, where)
    os.close(mnt)
    with Token.create(where) as tok:
        assert tok.info().allowed_cmds == {Cmd.BPF_MAP_CREATE, Cmd.BPF_BTF_LOAD}
        commands.map_create(MapType.BPF_MAP_TYPE_ARRAY, 4, 8, 1, token_fd=tok.fd).close()  # delegated
        with pytest.raises(SyscallError) as ei:  # BPF_PROG_LOAD is not: checked as without a token
            commands.prog_load(ProgType.BPF_PROG_TYPE_XDP, features._RET0, token_fd=tok.fd)
        assert ei.value.errno == errno.EPERM
    with Object.open(FIXTURES / "xdp_count.bpf.o", bpf_token_path=where) as obj:
        with pytest.raises(SyscallError) as ei:
            obj.load()
        assert ei.value.errno == errno.EPERM and "xdp_count" in str(ei.value)
        assert not obj.loaded and not obj.maps["pkt_count"].created  # the map made before is gone again


# ---------------------------------------------------------------- the tests
@pytest.mark.kernel
def test_objects_load_through_a_token_in_a_user_namespace(bpffs: Path) -> None:
    if not features.has_bpf_token():
        _assert_no_tokens(bpffs)
        return
    _userns_or_skip()
    in_user_namespace([ANY], _loads_through_token)


@pytest.mark.kernel
def test_a_token_refuses_what_its_bpffs_does_not_delegate(bpffs: Path) -> None:
    if not features.has_bpf_token():
        _assert_no_tokens(bpffs)
        return
    _userns_or_skip()
    cmds = _mask(Cmd.BPF_MAP_CREATE, Cmd.BPF_BTF_LOAD)
    in_user_namespace([dict(ANY, delegate_cmds=cmds)], _refuses_what_is_not_delegated)


@pytest.mark.kernel
def test_token_support_is_decided_by_the_kernels_answer(bpffs: Path) -> None:
    """EBADF for fd -1 means the command exists; in the initial user namespace the kernel
    then refuses tokens (EOPNOTSUPP), which an explicit path reports and the default
    attempt skips; without the command, NotSupportedError."""
    with pytest.raises(SyscallError) as ei:
        commands.token_create(-1)
    assert ei.value.errno in (errno.EBADF, errno.EINVAL)
    assert features.has_bpf_token() == (ei.value.errno == errno.EBADF)
    if not features.has_bpf_token():
        _assert_no_tokens(bpffs)
        return
    with pytest.raises(SyscallError) as ei:
        Token.create(bpffs)
    assert ei.value.errno == errno.EOPNOTSUPP and "initial user namespace" in str(ei.value)
    with Object.open(FIXTURES / "xdp_count.bpf.o", bpf_token_path=str(bpffs)) as obj:
        with pytest.raises(SyscallError) as ei:
            obj.load()
        assert ei.value.errno == errno.EOPNOTSUPP and "xdp_count" in str(ei.value)
    with pytest.raises(SyscallError) as ei:
        Token.create(FIXTURES)  # not a bpffs
    assert ei.value.errno == errno.EINVAL and "not the root of a BPF FS" in str(ei.value)
    assert prepare(None, "x") is None  # as root: the default attempt gives no token, quietly


@pytest.mark.kernel
def test_a_missing_token_path_fails_the_load(tmp_path: Path) -> None:
    with Object.open(FIXTURES / "xdp_count.bpf.o", bpf_token_path=str(tmp_path / "nope")) as obj:
        with pytest.raises(BPFOSError) as ei:
            obj.load()
        assert ei.value.errno == errno.ENOENT and "nope" in str(ei.value)
        assert not obj.loaded


def test_token_path_option_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """As bpf_object__open: the option wins, LIBBPF_BPF_TOKEN_PATH stands in for it, read at open."""
    path = FIXTURES / "xdp_count.bpf.o"
    monkeypatch.delenv("LIBBPF_BPF_TOKEN_PATH", raising=False)
    assert Object.open(path).bpf_token_path is None
    monkeypatch.setenv("LIBBPF_BPF_TOKEN_PATH", "/run/bpf")
    assert Object.open(path).bpf_token_path == "/run/bpf"
    assert Object.open(path, bpf_token_path="/mine").bpf_token_path == "/mine"
    assert Object.open_mem(path.read_bytes(), bpf_token_path="").bpf_token_path == ""
    monkeypatch.setenv("LIBBPF_BPF_TOKEN_PATH", "")
    assert Object.open(path).bpf_token_path == ""
    with pytest.raises(ParseError, match="bpf_token_path"):
        Object.open(path, bpf_token_path="a\0b")
    with pytest.raises(ParseError, match="bpf_token_path"):
        Object.open(path, bpf_token_path=1)  # type: ignore[arg-type]
    monkeypatch.setenv("LIBBPF_BPF_TOKEN_PATH", "x" * 4096)
    with pytest.raises(ParseError, match="LIBBPF_BPF_TOKEN_PATH"):
        Object.open(path)


def test_prepare_follows_libbpf(monkeypatch: pytest.MonkeyPatch) -> None:
    """"" makes no token without a syscall; an explicit path's failure raises; the default's is skipped."""
    from pybpfload.syscall import token as token_mod

    calls: List[Optional[str]] = []

    def fake_create(path: str, *, context: str = "") -> Token:
        calls.append(path)
        raise SyscallError(errno.ENOENT, "BPF_TOKEN_CREATE", path)

    monkeypatch.setattr(token_mod.Token, "create", staticmethod(fake_create))
    assert prepare("", "x") is None and calls == []
    assert prepare(None, "x") is None and calls == ["/sys/fs/bpf"]
    with pytest.raises(SyscallError):
        prepare("/run/bpf", "x")
    assert calls[-1] == "/run/bpf"
