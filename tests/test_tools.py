"""examples/tools: each tool runs as a subprocess while the test makes activity it knows
(execs, opens, system calls, wakeups, CPU-bound loops), and the output must show that
activity, in libbpf-tools' format.

Where the kernel lacks what a tool needs (probed: syscall tracepoints, ring buffers),
the test asserts the tool's one-line refusal instead.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import pytest

from .conftest import ROOT, fixture_path

TOOLS = ROOT / "examples" / "tools"
TRACEFS = "/sys/kernel/tracing"
NOBODY = 65534


class Tool:
    """A tool running as a subprocess; the test reads up to its header (printed once attached), then makes activity."""

    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(TOOLS / f"{name}.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.head: List[str] = []

    def wait_for(self, text: str) -> str:
        """The first line containing ``text`` (the lines before it are kept for the output)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.head.append(line)
            if text in line:
                return line
        _, err = self.proc.communicate(timeout=60)
        pytest.fail(f"{self.name} ended before printing {text!r} (status {self.proc.returncode}): {err}")

    def finish(self, interrupt: bool = False) -> Tuple[str, str]:
        """(stdout, stderr) once the tool ended well; ``interrupt``: end it with Ctrl-C (SIGINT)."""
        if interrupt:
            self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        assert self.proc.returncode == 0, err
        return "".join(self.head) + out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def tools() -> Iterator[List[Tool]]:
    """Tools a test starts (``tools.append``); killed if the test failed before they ended."""
    started: List[Tool] = []
    yield started
    for t in started:
        t.kill()


def start(tools: List[Tool], name: str, *args: str) -> Tool:
    t = Tool(name, *args)
    tools.append(t)
    return t


def comm_of(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().rstrip("\n")


def token() -> str:
    return f"{os.getpid()}-{time.monotonic_ns()}"


# ---------------------------------------------------------------- what the kernel offers
def refusal(tool: str) -> Optional[str]:
    """What the tool must say on this kernel if it lacks what the tool needs (None: nothing lacking), by probe."""
    from pybpfload.abi.uapi import MapType
    from pybpfload.syscall import features

    if tool in ("execsnoop", "opensnoop"):
        if not os.path.isdir(f"{TRACEFS}/events"):
            subprocess.run(["mount", "-t", "tracefs", "tracefs", TRACEFS], check=False)
        if not os.path.isdir(f"{TRACEFS}/events/syscalls"):
            return "no system call tracepoints"
        if not features.map_type_supported(MapType.BPF_MAP_TYPE_RINGBUF):
            return "BPF map type BPF_MAP_TYPE_RINGBUF is not supported by this kernel"
    return None


def skip_after_refusal(tool: str, *args: str) -> None:
    """On a kernel lacking what ``tool`` needs: assert its one-line refusal, then skip the rest."""
    expected = refusal(tool)
    if expected is None:
        return
    proc = subprocess.run(
        [sys.executable, str(TOOLS / f"{tool}.py"), *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 1 and proc.stdout == "", proc
    assert proc.stderr.startswith(f"{tool}: ") and proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr
    pytest.skip(f"this kernel lacks what {tool} needs: its refusal is asserted ({expected})")


def tp_btf_loads() -> bool:
    """Whether runqlat's tp_btf programs load and attach here (libbpf-tools' probe_tp_btf, on the tool's own object)."""
    from pybpfload import BPFError, Object

    with Object.open(fixture_path("tool_runqlat.bpf.o")) as obj:
        for name, prog in obj.programs.items():
            prog.autoload = name == "sched_wakeup"
        try:
            obj.load()
            obj.attach_all()
        except BPFError:
            return False
    return True


# ---------------------------------------------------------------- no kernel needed
@pytest.mark.parametrize("tool", ["execsnoop", "opensnoop", "syscount", "runqlat", "profile"])
def test_help_needs_no_privilege(tool: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(TOOLS / f"{tool}.py"), "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0 and proc.stdout.startswith("usage: "), proc


def _unprivileged() -> None:
    """In the child before exec: a new user namespace, where this process has no capability in the
    machine's namespaces and geteuid() is the overflow uid, while files stay readable as before."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:  # CLONE_NEWUSER
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")


def test_not_root_is_one_clear_line() -> None:
    """Run without privilege, a tool says so in one line: no traceback, status 1."""
    argv = [sys.executable, str(TOOLS / "execsnoop.py"), "-d", "1"]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, cwd=ROOT, preexec_fn=_unprivileged if os.geteuid() == 0 else None
        )
    except subprocess.SubprocessError as e:
        pytest.skip(f"cannot start an unprivileged process here: {e}")
    assert proc.returncode == 1 and proc.stdout == "", proc
    assert proc.stderr == "execsnoop: needs root (bpf(2), perf events and tracefs): run it with sudo\n", proc.stderr


# ---------------------------------------------------------------- execsnoop
@pytest.mark.kernel
def test_execsnoop_shows_our_execs(tools: List[Tool], tmp_path: Path) -> None:
    skip_after_refusal("execsnoop", "-d", "1")
    script = tmp_path / f"x{token()}.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    missing = tmp_path / f"no-such-binary-{token()}"

    t = start(tools, "execsnoop", "-t", "-U", "-x", "--max-args", "3", "-d", "2")
    header = t.wait_for("PCOMM")
    assert header == "%-8s %-6s %-16s %-6s %-6s %3s %s\n" % ("TIME(s)", "UID", "PCOMM", "PID", "PPID", "RET", "ARGS")
    child = subprocess.Popen([str(script), "alpha", "beta", "gamma"])
    assert child.wait() == 0
    with pytest.raises(FileNotFoundError):
        subprocess.run([str(missing), "x"])
    out, _ = t.finish()

    rows = out.splitlines()[1:]
    # the script: its name as comm, our child's pid, us as parent, three arguments of four and " ..."
    mine = [r for r in rows if str(script) in r]
    assert len(mine) == 1, out
    assert mine[0].endswith(f"{script.name[:15]:<16} {child.pid:<6} {os.getpid():<6} {0:>3} {script} alpha beta  ..."), out
    ts, uid = mine[0].split()[:2]
    assert 0 <= float(ts) < 10 and uid == str(os.getuid())
    # the failed exec (-x): ENOENT, its arguments each followed by a space
    failed = [r for r in rows if str(missing) in r]
    assert len(failed) == 1 and failed[0].endswith(f" {os.getpid():<6} {-2:>3} {missing} x "), out


@pytest.mark.kernel
def test_execsnoop_uid_filter_and_quotes(tools: List[Tool]) -> None:
    skip_after_refusal("execsnoop", "-d", "1")
    tag, other = f'tag-{token()}"q', f"root-{token()}"
    t = start(tools, "execsnoop", "-u", str(NOBODY), "-q", "-T", "-d", "2")
    header = t.wait_for("PCOMM")
    assert header == "%-9s%-16s %-6s %-6s %3s %s\n" % ("TIME", "PCOMM", "PID", "PPID", "RET", "ARGS")
    as_nobody = subprocess.Popen(["/bin/echo", tag], user=NOBODY, group=NOBODY, stdout=subprocess.DEVNULL)
    assert as_nobody.wait() == 0
    subprocess.run(["/bin/echo", other], check=True, stdout=subprocess.DEVNULL)  # root's: filtered out
    out, _ = t.finish()

    assert other not in out
    escaped = tag.replace('"', '\\"')
    (row,) = [r for r in out.splitlines() if escaped in r]
    assert re.fullmatch(r"\d\d:\d\d:\d\d ", row[:9]), row
    assert row[9:] == f'{"echo":<16} {as_nobody.pid:<6} {os.getpid():<6} {0:>3} "/bin/echo" "{escaped}" ', row


# ---------------------------------------------------------------- opensnoop
OPEN_HEADER = (
    "%-8s " % "TIME" + "%-6s %-16s %3s %3s " % ("PID", "COMM", "FD", "ERR") + "%-8s %-5s " % ("FLAGS", "MODE") + "PATH\n"
)


@pytest.mark.kernel
def test_opensnoop_shows_our_opens(tools: List[Tool], tmp_path: Path) -> None:
    skip_after_refusal("opensnoop", "-d", "1")
    created, missing = tmp_path / f"created-{token()}", tmp_path / f"missing-{token()}"
    me = os.getpid()
    t = start(tools, "opensnoop", "-T", "-e", "-p", str(me), "-d", "2")
    assert t.wait_for("PATH") == OPEN_HEADER
    fd = os.open(created, os.O_WRONLY | os.O_CREAT, 0o640)
    os.close(fd)
    with pytest.raises(FileNotFoundError):
        os.open(missing, os.O_RDONLY)
    out, _ = t.finish()

    rows = out.splitlines()[1:]
    assert rows and all(r.split()[1] == str(me) for r in rows), out  # -p: ours only
    comm = re.escape(comm_of(me)[:15])
    (made,) = [r for r in rows if r.endswith(str(created))]
    m = re.fullmatch(rf"\d\d:\d\d:\d\d {me:<6} {comm} +{fd:>3} {0:>3} ([0-7]{{8}}) 0640 {re.escape(str(created))}", made)
    assert m and int(m[1], 8) & (os.O_WRONLY | os.O_CREAT) == os.O_WRONLY | os.O_CREAT, made
    (failed,) = [r for r in rows if r.endswith(str(missing))]
    assert re.fullmatch(rf"\d\d:\d\d:\d\d {me:<6} {comm} +{-1:>3} {2:>3} [0-7]{{8}} n/a  {re.escape(str(missing))}", failed), (
        failed
    )


@pytest.mark.kernel
def test_opensnoop_failed_only(tools: List[Tool], tmp_path: Path) -> None:
    skip_after_refusal("opensnoop", "-d", "1")
    present, missing = tmp_path / f"present-{token()}", tmp_path / f"missing-{token()}"
    present.write_text("x")
    t = start(tools, "opensnoop", "-x", "-p", str(os.getpid()), "-d", "2")
    assert t.wait_for("PATH") == "%-6s %-16s %3s %3s PATH\n" % ("PID", "COMM", "FD", "ERR")
    os.close(os.open(present, os.O_RDONLY))
    for _ in range(3):
        with pytest.raises(FileNotFoundError):
            os.open(missing, os.O_RDONLY)
    out, _ = t.finish()
    assert str(present) not in out
    rows = [r for r in out.splitlines() if r.endswith(str(missing))]
    assert len(rows) == 3 and all(r.split()[-3:-1] == ["-1", "2"] for r in rows), out


# ---------------------------------------------------------------- syscount
@pytest.mark.kernel
def test_syscount_counts_our_calls_until_ctrl_c(tools: List[Tool]) -> None:
    n, me = 3000, os.getpid()
    t = start(tools, "syscount", "-p", str(me), "-T", "5")
    t.wait_for("Tracing syscalls, printing top 5... Ctrl+C to quit.")
    for _ in range(n):
        os.getppid()
    out, _ = t.finish(interrupt=True)  # Ctrl-C: the summary, then a clean exit

    lines = out.splitlines()
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\]", lines[1]), out
    assert lines[2] == "%-22s %8s" % ("SYSCALL", "COUNT")
    rows = {r[:22].rstrip(): int(r[22:]) for r in lines[3:] if r}
    assert 1 <= len(rows) <= 5 and rows["getppid"] >= n, out
    assert list(rows.values()) == sorted(rows.values(), reverse=True)


@pytest.mark.kernel
def test_syscount_failed_calls_by_process_with_latency(tools: List[Tool], tmp_path: Path) -> None:
    n, me = 300, os.getpid()
    missing = tmp_path / "missing"
    t = start(tools, "syscount", "-L", "-P", "-e", "ENOENT", "-p", str(me), "-d", "2")
    t.wait_for("Tracing syscalls")
    for _ in range(n):
        with pytest.raises(FileNotFoundError):
            os.stat(missing)
    out, _ = t.finish()

    lines = out.splitlines()
    assert lines[2] == "%-22s %8s %16s" % ("PID    COMM", "COUNT", "TIME (us)"), out
    (row,) = lines[3:-1] if lines[-1] == "" else lines[3:]
    m = re.fullmatch(rf"{me:<6} {re.escape(comm_of(me)[:15]):<15} +(\d+) +(\d+\.\d{{3}})", row)
    assert m and int(m[1]) >= n and float(m[2]) > 0, row


# ---------------------------------------------------------------- runqlat
def histogram_total(text: str, unit: str) -> int:
    """The counts of the first histogram in ``text`` (libbpf-tools' header, then its rows)."""
    lines = text.splitlines()
    start_at = lines.index(f"     {unit:<19} : count    distribution") + 1
    total = 0
    for line in lines[start_at:]:
        m = re.fullmatch(r" *(\d+) -> (\d+) +: (\d+) +\|[* ]{40}\|", line)
        if not m:
            break
        total += int(m[3])
    return total


def wake_up_often(n: int) -> None:
    for _ in range(n):
        time.sleep(0.001)  # each a wakeup, then a switch back to this thread


@pytest.mark.kernel
def test_runqlat_per_process_histogram_whichever_programs_load(tools: List[Tool]) -> None:
    me = os.getpid()
    t = start(tools, "runqlat", "-v", "-P", "-p", str(me), "2", "1")
    t.wait_for("Tracing run queue latency... Hit Ctrl-C to end.")
    wake_up_often(100)
    out, err = t.finish()

    if tp_btf_loads():
        assert err == "runqlat: using tp_btf programs\n", err
    else:
        assert err.startswith("runqlat: using raw_tp programs, tp_btf refused: "), err
    assert f"\npid = {me} {comm_of(me)}\n" in out, out
    section = out[out.index(f"pid = {me} ") :]
    assert histogram_total(section, "usecs") >= 50, out


@pytest.mark.kernel
def test_runqlat_raw_tp_per_thread_until_ctrl_c(tools: List[Tool]) -> None:
    me, tid = os.getpid(), threading.get_native_id()
    t = start(tools, "runqlat", "-v", "--raw-tp", "-m", "-L", "-p", str(me))
    t.wait_for("Tracing run queue latency")
    wake_up_often(100)
    out, err = t.finish(interrupt=True)

    assert err == "runqlat: using raw_tp programs, as asked (--raw-tp)\n", err
    assert f"\ntid = {tid} " in out, out
    section = out[out.index(f"tid = {tid} ") :]
    assert histogram_total(section, "msecs") >= 50, out


@pytest.mark.kernel
def test_runqlat_falls_back_to_raw_tp_when_tp_btf_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The fallback itself, whatever this kernel does with tp_btf: a refused tp_btf load makes runqlat load raw_tp."""
    import importlib.util

    from pybpfload import NotSupportedError

    monkeypatch.syspath_prepend(str(TOOLS))
    spec = importlib.util.spec_from_file_location("runqlat_under_test", TOOLS / "runqlat.py")
    assert spec is not None and spec.loader is not None
    runqlat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runqlat)
    really_open = runqlat.open_loaded

    def refuse_tp_btf(args, tp_btf):  # type: ignore[no-untyped-def]
        if tp_btf:
            raise NotSupportedError("BPF program type BPF_PROG_TYPE_TRACING", "refused for the test")
        return really_open(args, tp_btf)

    monkeypatch.setattr(runqlat, "open_loaded", refuse_tp_btf)
    monkeypatch.setattr(sys, "argv", ["runqlat.py", "-v", "1", "1"])
    with runqlat.load(runqlat.parse_args()) as obj:
        loaded = sorted(name for name, prog in obj.programs.items() if prog.loaded)
    assert loaded == ["raw_sched_switch", "raw_sched_wakeup", "raw_sched_wakeup_new"]
    assert capsys.readouterr().err == (
        "runqlat: using raw_tp programs, tp_btf refused: BPF program type BPF_PROG_TYPE_TRACING is not supported by this kernel:"
        " refused for the test\n"
    )


# ---------------------------------------------------------------- profile
SPIN = "while True: pass"
READ_ZERO = "import os\nfd = os.open('/dev/zero', os.O_RDONLY)\nwhile True: os.read(fd, 1 << 20)"


@pytest.fixture
def busy() -> Iterator[Callable[[str], subprocess.Popen]]:
    """A CPU-bound child; the test picks its loop with busy(code)."""
    children: List[subprocess.Popen] = []

    def spawn(code: str) -> subprocess.Popen:
        child = subprocess.Popen([sys.executable, "-c", code])
        children.append(child)
        time.sleep(0.2)  # running its loop
        return child

    yield spawn
    for child in children:
        child.kill()
        child.wait()


def exports(pid: int, name: str) -> bool:
    """Whether an ELF file mapped executable into ``pid`` has the function ``name`` (the toolkit's ELF reader)."""
    from pybpfload.toolkit.symbols import elf_symbols

    paths = {
        line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if "x" in line.split()[1] and "/" in line
    }
    for p in paths:
        try:
            if elf_symbols(p).address_of(name) is not None:
                return True
        except Exception:  # noqa: BLE001 - not an ELF file we can read
            continue
    return False


@pytest.mark.kernel
def test_profile_user_stacks_of_a_busy_process(tools: List[Tool], busy: Callable[[str], subprocess.Popen]) -> None:
    child = busy(SPIN)
    t = start(tools, "profile", "-U", "-F", "199", "-p", str(child.pid), "2")
    assert t.wait_for("Sampling") == f"Sampling at 199 Hertz of PID [{child.pid}] by user for 2 secs.\n"
    out, _ = t.finish()
    assert child.poll() is None  # alive while its stacks were symbolised

    blocks = [b.splitlines() for b in out.split("\n\n")[:-1]]
    blocks[0] = blocks[0][1:]  # the header
    total = 0
    for b in blocks:
        assert b[-2] == f"    {'-':<16} {comm_of(child.pid)} ({child.pid})", b
        assert re.fullmatch(r" {8}\d+", b[-1]) and all(f.startswith("    ") for f in b[:-2]), b
        total += int(b[-1])
    assert total >= 20, out  # up to ~400 (199 Hz for 2 s of a process always running), fewer on a busy machine
    if exports(child.pid, "_PyEval_EvalFrameDefault"):  # the interpreter's loop: where a spinning python is
        heaviest = max(blocks, key=lambda b: int(b[-1]))
        assert heaviest[0] == "    _PyEval_EvalFrameDefault", out


@pytest.mark.kernel
def test_profile_folded_kernel_stacks(tools: List[Tool], busy: Callable[[str], subprocess.Popen]) -> None:
    child = busy(READ_ZERO)
    t = start(tools, "profile", "-f", "-K", "-F", "199", "-p", str(child.pid), "2")
    out, _ = t.finish()

    comm = comm_of(child.pid)
    lines = out.splitlines()
    assert lines and all(re.fullmatch(rf"{re.escape(comm)}(;[^;]+)* \d+", line) for line in lines), out
    reads = sum(int(line.rsplit(" ", 1)[1]) for line in lines if "vfs_read" in line.rsplit(" ", 1)[0].split(";"))
    assert reads >= 20, out  # reading /dev/zero: most samples in the kernel, under vfs_read
