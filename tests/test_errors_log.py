"""Error hierarchy, libbpf_strerror semantics (against libbpf itself) and logging."""

from __future__ import annotations

import errno
import logging
import pickle
import subprocess
import threading
from pathlib import Path

import pytest

from pybpfload import errors, log
from pybpfload.errors import (
    BPFError,
    ELFError,
    LibbpfErrno,
    NotSupportedError,
    PinError,
    RelocationError,
    SyscallError,
    VerifierError,
    error_code,
    strerror,
    strerror_r,
)

from .conftest import require_tool

HARNESS = r"""
#include <stdio.h>
#include <bpf/libbpf.h>
int main(int argc, char **argv) {
    char buf[256];
    int sizes[] = {256, 10, 20, 1};
    for (int e = 3995; e <= 4016; e++)
        for (int s = 0; s < 4; s++) {
            int r = libbpf_strerror(e, buf, sizes[s]);
            printf("%d|%d|%d|%s\n", e, sizes[s], r, buf);
        }
    int others[] = {-1, -2, 1, 13, 22, 95, 524};
    for (int i = 0; i < 7; i++)
        for (int s = 0; s < 4; s++) {
            int r = libbpf_strerror(others[i], buf, sizes[s]);
            printf("%d|%d|%d|%s\n", others[i], sizes[s], r, buf);
        }
    return 0;
}
"""


def test_strerror_matches_libbpf(tmp_path: Path) -> None:
    cc = require_tool("gcc")
    if not Path("/usr/include/bpf/libbpf.h").exists():
        require_tool("libbpf-dev-headers")  # skips, or fails under REQUIRE_KERNEL
    src = tmp_path / "h.c"
    src.write_text(HARNESS)
    exe = tmp_path / "h"
    subprocess.run([cc, str(src), "-o", str(exe), "-lbpf"], check=True)
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(lines) == (22 + 7) * 4
    for line in lines:
        e, size, ret, text = line.split("|", 3)
        e_i, size_i, ret_i = int(e), int(size), int(ret)
        ours_ret, ours_text = strerror_r(e_i, size_i)
        if abs(e_i) == LibbpfErrno.LOAD and text.startswith("(null)"[: size_i - 1]):
            # libbpf's table has no LOAD message and prints "(null)": we print its description
            assert ours_text == "Load program failure for unknown reason"[: size_i - 1]
            continue
        assert (ours_ret, ours_text) == (ret_i, text), line


def test_hierarchy_and_messages() -> None:
    e = SyscallError(errno.EPERM, "BPF_PROG_LOAD", "myprog")
    assert isinstance(e, OSError) and isinstance(e, BPFError) and e.errno == errno.EPERM
    assert str(e) == "BPF_PROG_LOAD for 'myprog': Operation not permitted (EPERM)"
    v = VerifierError(errno.EACCES, "BPF_PROG_LOAD", "p", "\n".join(f"line {i}" for i in range(100)) + "\n")
    assert "line 99" in str(v) and "line 50" not in str(v) and "last 20 of 100 lines" in str(v)
    assert len(v.log_lines) == 100
    p = PinError(errno.EINVAL, "not on bpffs", "/tmp/x")
    assert "/tmp/x" in str(p) and p.filename == "/tmp/x"
    # exceptions survive pickling (multiprocessing, pytest-xdist)
    for exc in (e, v, p):
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc) and again.errno == exc.errno


def test_error_codes() -> None:
    assert error_code(VerifierError(errno.EACCES, "BPF_PROG_LOAD", "p", "")) == LibbpfErrno.VERIFY
    assert error_code(ELFError("bad")) == LibbpfErrno.FORMAT
    assert error_code(RelocationError("bad")) == LibbpfErrno.RELOC
    assert error_code(SyscallError(errno.ENOENT, "x")) == errno.ENOENT
    assert error_code(NotSupportedError("kprobes")) == errno.EOPNOTSUPP
    assert strerror(-LibbpfErrno.FORMAT) == "BPF object format invalid"
    assert strerror(errno.ENOENT) == "No such file or directory"


def test_set_print_routes_every_level() -> None:
    got = []
    old = log.set_print(lambda level, msg: got.append((level, msg)))
    try:
        log.debug("map %s created, fd %d", "counts", 5)
        log.info("info")
        log.warn("careful")
    finally:
        assert log.set_print(old) is not None
    assert got == [
        (log.DEBUG, "pybpfload: map counts created, fd 5\n"),
        (log.INFO, "pybpfload: info\n"),
        (log.WARN, "pybpfload: careful\n"),
    ]


def test_set_print_none_silences(capsys: pytest.CaptureFixture) -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()  # the default printer stays quiet when logging is configured (pytest configures it)
    try:
        log.warn("visible")
        log.debug("dropped")
        assert capsys.readouterr().err == "pybpfload: visible\n"
        old = log.set_print(None)
        log.warn("silenced")
        assert capsys.readouterr().err == ""
        log.set_print(old)
    finally:
        root.handlers[:] = saved


def test_logger_receives_records(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pybpfload"):
        log.debug("loaded %d programs", 3)
    assert ("pybpfload", logging.DEBUG, "loaded 3 programs") in caplog.record_tuples


def test_set_print_is_thread_safe() -> None:
    fns = [lambda level, msg, i=i: i for i in range(8)]
    seen = []
    start = log.get_print()

    def swap(fn):  # type: ignore[no-untyped-def]
        for _ in range(2000):
            seen.append(log.set_print(fn))

    threads = [threading.Thread(target=swap, args=(f,)) for f in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = log.set_print(start)
    # every installed function was returned exactly as often as it was replaced: none lost
    returned = seen + [final]
    assert returned.count(start) == 1
    for f in fns:
        assert returned.count(f) == 2000


def test_errors_module_exports() -> None:
    for name in errors.__all__:
        assert hasattr(errors, name)


def test_version_functions() -> None:
    import pybpfload
    from pybpfload import libbpf

    assert pybpfload.version_string() == f"v{pybpfload.major_version()}.{pybpfload.minor_version()}"
    assert pybpfload.__version__.startswith(f"{pybpfload.major_version()}.{pybpfload.minor_version()}")
    assert (libbpf.libbpf_major_version(), libbpf.libbpf_minor_version()) == pybpfload.LIBBPF_API_VERSION
    assert libbpf.libbpf_version_string() == "v%d.%d" % pybpfload.LIBBPF_API_VERSION
