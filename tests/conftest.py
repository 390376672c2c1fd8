"""Shared test set-up.

Tests that need the kernel carry ``@pytest.mark.kernel``.  They skip when the
process is not root or bpf(2) is unusable — unless PYBPFLOAD_REQUIRE_KERNEL=1
(set by .ci/run), which turns every such skip into a failure.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REQUIRE_KERNEL = os.environ.get("PYBPFLOAD_REQUIRE_KERNEL") == "1"


def _kernel_unavailable() -> Optional[str]:
    if os.geteuid() != 0:
        return "not root"
    try:
        from pybpfload.syscall import commands

        commands.map_create(2, 4, 4, 1).close()  # BPF_MAP_TYPE_ARRAY
    except Exception as e:  # noqa: BLE001 - any failure means no usable bpf(2)
        return f"bpf(2) unusable: {e}"
    return None


_REASON = _kernel_unavailable()


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if _REASON is None:
        return
    if REQUIRE_KERNEL:
        return  # _require_kernel fails them instead
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"needs the kernel: {_REASON}"))


@pytest.fixture(autouse=True)
def _require_kernel(request: pytest.FixtureRequest) -> None:
    if _REASON is not None and REQUIRE_KERNEL and "kernel" in request.keywords:
        pytest.fail(f"PYBPFLOAD_REQUIRE_KERNEL=1 but the kernel is unavailable: {_REASON}")


def open_fds() -> set:
    """The fds this process has open (for leak checks)."""
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def _no_fd_leak(request: pytest.FixtureRequest) -> Iterator[None]:
    """Kernel tests must close every fd they open (fixtures of wider scope excepted)."""
    if "kernel" not in request.keywords or _REASON is not None:
        yield
        return
    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    leaked = open_fds() - before
    # an fd listed but already closed again (the listdir's own) is not a leak
    leaked = {fd for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")}
    if leaked:
        targets = {fd: _readlink(f"/proc/self/fd/{fd}") for fd in sorted(leaked)}
        pytest.fail(f"test leaked file descriptors: {targets}")


def _readlink(p: str) -> str:
    try:
        return os.readlink(p)
    except OSError:
        return "?"


def require_tool(name: str) -> str:
    """Path of an oracle tool (bpftool, clang...); skip, or fail under REQUIRE_KERNEL, when absent."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        msg = f"oracle tool {name!r} is not installed"
        if REQUIRE_KERNEL:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def bpffs() -> Iterator[Path]:
    """A private bpffs mounted on a temporary directory, unmounted afterwards."""
    d = Path(tempfile.mkdtemp(prefix="pybpfload-bpffs-"))
    subprocess.run(["mount", "-t", "bpf", "bpf", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)
        d.rmdir()


def fixture_path(name: str) -> Path:
    p = FIXTURES / name
    assert p.exists(), f"missing fixture {p}: run make -C fixtures"
    return p


if TYPE_CHECKING:  # pragma: no cover
    from pybpfload import Map


@pytest.fixture
def perf_map() -> Iterator["Map"]:
    """A PERF_EVENT_ARRAY with a slot per possible CPU (perf buffer tests)."""
    from pybpfload import Map, MapType
    from pybpfload.kernel.maps import possible_cpus

    m = Map.create(MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, possible_cpus(), name="events")
    yield m
    m.close()
