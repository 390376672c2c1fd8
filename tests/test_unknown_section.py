"""A program in a section libbpf does not know (issue 15): refused before any
syscall, naming the program and its section, as libbpf refuses it; loadable
once its type is set."""

from __future__ import annotations

import ctypes
import errno
from typing import Any

import pytest

import pybpfload.libbpf as L
from pybpfload import Object, ProgType
from pybpfload.errors import StateError
from pybpfload.syscall import _raw

from .conftest import fixture_path
from .test_libbpf_api import oracle

OBJ = fixture_path("unknown_section.bpf.o")


def test_refused_before_any_syscall(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def no_bpf(*a: Any, **kw: Any) -> Any:
        calls.append(a)
        raise AssertionError("bpf(2) called")

    with Object.open(OBJ) as obj:
        assert int(obj.programs["mystery"].type) == ProgType.BPF_PROG_TYPE_UNSPEC
        monkeypatch.setattr(_raw, "bpf", no_bpf)
        with pytest.raises(StateError) as ei:
            obj.load()
        msg = str(ei.value)
        assert "'mystery'" in msg and "no_such_hook/abc" in msg and "missing BPF prog type" in msg
        assert calls == [] and not obj.maps["counts"].created


@pytest.mark.kernel
def test_loads_once_the_type_is_set() -> None:
    with Object.open(OBJ) as obj:
        obj.programs["mystery"].type = ProgType.BPF_PROG_TYPE_SOCKET_FILTER
        obj.load()
        assert obj.programs["mystery"].loaded and obj.programs["known"].loaded
    with Object.open(OBJ) as obj:
        obj.programs["mystery"].autoload = False
        obj.load()
        assert obj.programs["known"].loaded and not obj.programs["mystery"].loaded


@pytest.mark.kernel
def test_same_answer_as_libbpf() -> None:
    """libbpf 1.1 opens the object and fails its load with -EINVAL; so does pybpfload.libbpf."""
    lib = oracle()
    theirs = lib.bpf_object__open_file(str(OBJ).encode(), None)
    ours = L.bpf_object__open_file(str(OBJ), None)
    assert theirs and ours is not None
    try:
        assert L.bpf_object__load(ours) == lib.bpf_object__load(theirs) == -errno.EINVAL
    finally:
        lib.bpf_object__close(theirs)
        L.bpf_object__close(ours)
    ctypes.set_errno(0)
