"""A type the loader's probe says is absent is refused with NotSupportedError,
whatever errno the kernel build answers (no kernel needed: the kernel's answers
are simulated)."""

from __future__ import annotations

import errno
from typing import Any, Dict

import pytest

from pybpfload import Map, MapType, ProgType
from pybpfload.syscall import features
from pybpfload.errors import NotSupportedError, SyscallError, VerifierError
from pybpfload.kernel.program import Program
from pybpfload.syscall import commands

_ENOTSUPP = 524
EXIT0 = bytes.fromhex("b700000000000000") + bytes.fromhex("9500000000000000")


def _fake_kernel(monkeypatch: pytest.MonkeyPatch, err: int, present: Dict[int, bool]) -> None:
    """Every create/load fails with ``err``; the probes answer ``present``."""

    def refuse(*a: Any, **kw: Any) -> Any:
        raise SyscallError(err, "BPF_MAP_CREATE", kw.get("name"))

    def refuse_prog(*a: Any, **kw: Any) -> Any:
        raise VerifierError(err, "BPF_PROG_LOAD", kw.get("name"), "")

    monkeypatch.setattr(commands, "map_create", refuse)
    monkeypatch.setattr(commands, "prog_load", refuse_prog)
    monkeypatch.setattr(features, "map_type_supported", lambda t, token=None: present.get(t, True))
    monkeypatch.setattr(features, "prog_type_supported", lambda t, token=None: present.get(t, True))


@pytest.mark.parametrize("err", [errno.EINVAL, errno.EPERM, _ENOTSUPP, errno.EOPNOTSUPP])
def test_absent_map_type_any_errno(monkeypatch: pytest.MonkeyPatch, err: int) -> None:
    _fake_kernel(monkeypatch, err, {MapType.BPF_MAP_TYPE_ARENA: False})
    with pytest.raises(NotSupportedError) as ei:
        Map.create(MapType.BPF_MAP_TYPE_ARENA, 0, 0, 1, 1 << 10, name="ar")
    e = ei.value
    assert e.errno == err and "map type arena" in str(e) and "'ar'" in str(e)


@pytest.mark.parametrize("err", [errno.EINVAL, errno.EPERM, errno.E2BIG])
def test_absent_prog_type_any_errno(monkeypatch: pytest.MonkeyPatch, err: int) -> None:
    _fake_kernel(monkeypatch, err, {ProgType.BPF_PROG_TYPE_NETFILTER: False})
    with pytest.raises(NotSupportedError) as ei:
        Program.load(EXIT0, ProgType.BPF_PROG_TYPE_NETFILTER, name="nf")
    assert ei.value.errno == err and "program type netfilter" in str(ei.value) and "'nf'" in str(ei.value)


def test_present_type_keeps_the_kernel_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_kernel(monkeypatch, errno.EINVAL, {})
    with pytest.raises(SyscallError) as ei:
        Map.create(MapType.BPF_MAP_TYPE_HASH, 4, 4, 1, name="h")
    assert not isinstance(ei.value, NotSupportedError) and ei.value.errno == errno.EINVAL


def test_eperm_everywhere_is_privilege_not_absence(monkeypatch: pytest.MonkeyPatch) -> None:
    """EPERM when even an array map is refused: no privilege, not a missing type."""
    _fake_kernel(monkeypatch, errno.EPERM, {MapType.BPF_MAP_TYPE_ARENA: False, MapType.BPF_MAP_TYPE_ARRAY: False})
    with pytest.raises(SyscallError) as ei:
        Map.create(MapType.BPF_MAP_TYPE_ARENA, 0, 0, 1, 1 << 10, name="ar")
    assert not isinstance(ei.value, NotSupportedError) and ei.value.errno == errno.EPERM


def test_eperm_for_the_basic_type_itself_is_privilege(monkeypatch: pytest.MonkeyPatch) -> None:
    """An array map (or socket filter) refused with EPERM: no privilege (an unprivileged
    process without a token), never an absent type."""
    _fake_kernel(monkeypatch, errno.EPERM, {MapType.BPF_MAP_TYPE_ARRAY: False, ProgType.BPF_PROG_TYPE_SOCKET_FILTER: False})
    with pytest.raises(SyscallError) as ei:
        Map.create(MapType.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="a")
    assert not isinstance(ei.value, NotSupportedError) and ei.value.errno == errno.EPERM
    with pytest.raises(SyscallError) as ei:
        Program.load(EXIT0, ProgType.BPF_PROG_TYPE_SOCKET_FILTER, name="s")
    assert not isinstance(ei.value, NotSupportedError) and ei.value.errno == errno.EPERM


def test_verifier_rejection_is_not_absence(monkeypatch: pytest.MonkeyPatch) -> None:
    def reject(*a: Any, **kw: Any) -> Any:
        raise VerifierError(errno.EACCES, "BPF_PROG_LOAD", kw.get("name"), "0: R0 !read_ok\n")

    monkeypatch.setattr(commands, "prog_load", reject)
    monkeypatch.setattr(features, "prog_type_supported", lambda t, token=None: False)
    with pytest.raises(VerifierError):
        Program.load(EXIT0, ProgType.BPF_PROG_TYPE_XDP, name="x")
