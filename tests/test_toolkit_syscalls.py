"""System call names (toolkit.syscalls) and errno names (toolkit.errnos).

The tables are checked against the headers they were generated from (read
here with a plain regex, not the generator's preprocessor), against the
generator (the committed table is what it makes today), and against the
running kernel: /proc/PID/syscall names the call a child is blocked in.
"""

from __future__ import annotations

import errno
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pybpfload import BPFError, syscall_name, syscall_number
from pybpfload.errors import UnknownNameError
from pybpfload.toolkit import errnos
from pybpfload.toolkit.syscalls import syscall_table

ROOT = Path(__file__).resolve().parent.parent
X86_HEADER = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
GENERIC_HEADER = Path("/usr/include/asm-generic/unistd.h")


def _literal_defines(path: Path) -> dict:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^#define __NR_(\w+)\s+(\d+)\s*$", path.read_text(), re.M)}


@pytest.mark.skipif(not X86_HEADER.exists(), reason="linux-libc-dev (x86-64) headers not installed")
def test_x86_64_matches_header() -> None:
    defs = _literal_defines(X86_HEADER)
    assert len(defs) > 300
    table = syscall_table("x86_64")
    for name, nr in defs.items():
        assert table[nr] == name, (nr, name)
        assert syscall_number(name, "x86_64") == nr
    assert syscall_name(0, "x86_64") == "read" and syscall_name(59, "amd64") == "execve"


@pytest.mark.skipif(not GENERIC_HEADER.exists(), reason="asm-generic headers not installed")
def test_arm64_matches_generic_header() -> None:
    defs = _literal_defines(GENERIC_HEADER)
    defs.pop("syscalls", None)
    defs.pop("arch_specific_syscall", None)
    table = syscall_table("arm64")
    by_name = {v: k for k, v in table.items()}
    # every arm64 call the generic header numbers literally has that number
    hits = [n for n in defs if n in by_name]
    assert len(hits) > 250
    for name in hits:
        assert by_name[name] == defs[name], name
    # the 32-bit-only calls are not arm64's; the 64-bit forms of the __NR3264 calls are
    assert "fstat64" not in by_name and "fcntl64" not in by_name
    assert by_name["fcntl"] == 25 and by_name["mmap"] == 222 and by_name["lseek"] == 62 and by_name["fstat"] == 80
    # arm64's __ARCH_WANT switches: renameat, clone3, memfd_secret are in; x86-only calls are not
    assert by_name["renameat"] == 38 and by_name["clone3"] == 435 and by_name["memfd_secret"] == 447
    assert "open" not in by_name and "fork" not in by_name and "arch_prctl" not in by_name
    assert syscall_number("bpf", "aarch64") == 280 and syscall_name(221, "arm64") == "execve"


def test_generator_reproduces_committed_table() -> None:
    if not (shutil.which("cpp") and X86_HEADER.exists() and GENERIC_HEADER.exists()):
        pytest.skip("cpp or the kernel headers are missing")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_syscall_table.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_unknown_numbers_names_and_arches() -> None:
    assert syscall_name(99999) == "[unknown: 99999]"
    with pytest.raises(UnknownNameError, match=r"no system call 'opn' on .*did you mean 'open"):
        syscall_number("opn", "x86_64")
    with pytest.raises(KeyError):
        syscall_number("no_such_call")
    with pytest.raises(BPFError, match="no system call table for architecture 'mips'.*x86_64, arm64"):
        syscall_name(1, "mips")
    assert syscall_number("sys_bpf", "x86_64") == 321


def test_newer_calls_than_the_headers() -> None:
    for arch in ("x86_64", "arm64"):
        assert syscall_name(462, arch) == "mseal" and syscall_number("file_setattr", arch) == 469
    assert syscall_name(335, "x86_64") == "uretprobe"


@pytest.mark.skipif(not os.path.exists("/proc/self/syscall"), reason="no /proc/PID/syscall (CONFIG_HAVE_ARCH_TRACEHOOK)")
@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="tables for x86-64 and arm64 only")
@pytest.mark.parametrize(
    "code, expect",
    [
        ("import sys; sys.stdin.read()", {"read"}),
        ("import time; time.sleep(30)", {"clock_nanosleep", "nanosleep"}),
        ("import os, time\nc = os.fork()\nif c == 0:\n    time.sleep(30); os._exit(0)\nos.waitpid(c, 0)", {"wait4"}),
    ],
)
def test_names_what_the_kernel_reports(code: str, expect: set) -> None:
    """/proc/PID/syscall gives the number of the call a blocked task is in: the table names it."""
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                first = Path(f"/proc/{p.pid}/syscall").read_text().split()[0]
            except PermissionError:
                pytest.skip("/proc/PID/syscall needs ptrace rights")
            if first not in ("running",) and syscall_name(int(first)) in expect:
                break
            assert time.monotonic() < deadline, f"child stuck in {first} ({syscall_name(int(first)) if first.isdigit() else first})"
            time.sleep(0.02)
    finally:
        os.killpg(p.pid, 9)
        p.stdin.close()  # type: ignore[union-attr]
        p.wait()


@pytest.mark.skipif(not os.path.isdir("/sys/kernel/tracing/events/syscalls"), reason="no syscall trace events")
def test_kernel_trace_events_are_named() -> None:
    """The running kernel's syscalls:sys_enter_NAME events: nearly all NAMEs are in the host table."""
    names = {d[len("sys_enter_") :] for d in os.listdir("/sys/kernel/tracing/events/syscalls") if d.startswith("sys_enter_")}
    if not names:
        pytest.skip("no syscall trace events")
    table = set(syscall_table().values())
    missing = names - table
    # the events use the kernel's SYSCALL_DEFINE names: a few differ from the ABI names (newstat is stat...)
    assert len(missing) <= 0.05 * len(names), sorted(missing)


# ------------------------------------------------------------------ errno
def test_errno_names_follow_python_and_the_kernel() -> None:
    for n, name in errno.errorcode.items():
        assert errnos.errno_name(n) == name
        assert errnos.errno_name(-n) == name
        assert errnos.errno_number(name) == n
    assert errnos.errno_number("EWOULDBLOCK") == errno.EAGAIN and errnos.errno_number("enotsup") == errno.EOPNOTSUPP
    assert errnos.errno_name(524) == "ENOTSUPP" and errnos.errno_number("ENOTSUPP") == 524
    assert errnos.errno_name(-523) == "EBADCOOKIE" and errnos.errno_name(512) == "ERESTARTSYS"
    assert errnos.errno_description(524) == "operation is not supported"
    assert errnos.errno_description(errno.ENOENT) == os.strerror(errno.ENOENT)
    assert errnos.errno_name(4242) == "errno 4242"
    with pytest.raises(UnknownNameError, match="no errno named 'ENOTSUP0'.*ENOTSUP"):
        errnos.errno_number("ENOTSUP0")


def test_kernel_internal_errnos_are_not_python_ones() -> None:
    assert not set(errnos.KERNEL_ERRNOS) & set(errno.errorcode)
    assert all(512 <= n < 600 and name.startswith("E") for n, (name, _) in errnos.KERNEL_ERRNOS.items())
