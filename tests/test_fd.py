"""File descriptor ownership, and no leaks on error paths."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import warnings

import pytest

from pybpfload import Map, MapType as MT, Program, ProgType as PT
from pybpfload.errors import BPFError, StateError
from pybpfload.syscall import commands
from pybpfload.syscall.fd import Fd

from .conftest import open_fds


def test_fd_closes_exactly_once() -> None:
    r, w = os.pipe()
    fd = Fd(r)
    assert fd.fileno() == r and not fd.closed
    with fd:
        pass
    assert fd.closed and fd.raw == -1
    fd.close()  # a second close is a no-op, not an EBADF on someone else's fd
    with pytest.raises(StateError):
        fd.fileno()
    os.close(w)


def test_fd_detach_and_dup() -> None:
    r, w = os.pipe()
    a = Fd(r)
    b = a.dup()
    assert b.fileno() != a.fileno()
    raw = a.detach()
    assert a.closed
    os.close(raw)
    b.close()
    os.close(w)


def test_garbage_collected_fd_warns_and_closes() -> None:
    r, w = os.pipe()
    fd = Fd(r)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        del fd
        gc.collect()
    assert any(issubclass(x.category, ResourceWarning) for x in got)
    with pytest.raises(OSError):
        os.fstat(r)
    os.close(w)


@pytest.mark.kernel
def test_fds_0_to_2_are_never_handed_out() -> None:
    code = (
        "import os, sys\n"
        "os.close(0)\n"
        "from pybpfload import Map, MapType\n"
        "m = Map.create(MapType.BPF_MAP_TYPE_ARRAY, 4, 4, 1)\n"
        "print(m.fd, os.path.exists('/proc/self/fd/0'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fd, zero_open = out.stdout.split()
    assert int(fd) > 2 and zero_open == "False"


@pytest.mark.kernel
def test_error_paths_leak_nothing() -> None:
    gc.collect()
    before = open_fds()
    for _ in range(50):
        with pytest.raises(BPFError):
            Map.create(MT.BPF_MAP_TYPE_HASH, 0, 4, 1)  # EINVAL
        with pytest.raises(BPFError):
            Map.create(MT.BPF_MAP_TYPE_HASH, 4, 4, 1, key_format="Q")  # refused before the syscall
        with pytest.raises(BPFError):
            Program.load(b"\x95" + bytes(7), PT.BPF_PROG_TYPE_XDP)  # verifier
        with pytest.raises(BPFError):
            Map.from_id(0x7FFFFFF0)
        with pytest.raises(BPFError):
            commands.btf_load(b"garbage")
        with pytest.raises(BPFError):
            Map.from_pin("/sys/fs/bpf/does/not/exist")
        tmpl = Map("t", MT.BPF_MAP_TYPE_HASH, 0, 4, 1)  # a bad inner template
        with pytest.raises(BPFError):
            Map.create(MT.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 1, inner_map=tmpl)
    gc.collect()
    assert open_fds() == before
