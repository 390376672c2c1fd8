"""Run the kernel-marked tests on every kernel of the matrix, a few guests at a time."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .initramfs import SHARE_MOUNT, build_initramfs
from .kernels import KernelSpec, VMTestError, fetch_kernel
from .qemu import guest_env, run_in_vm
from .results import KernelResult, parse_junit, summary_line

JUNIT = "junit.xml"
DEFAULT_TIMEOUT = 15 * 60.0


def pytest_command(python: str, junit_path: str, extra: Sequence[str] = ()) -> List[str]:
    """The kernel-marked tests, quiet, reasons for failures/errors/skips shown, results as JUnit XML."""
    return [
        python, "-m", "pytest", "-m", "kernel", "-q", "-rfEs",
        "-p", "no:cacheprovider", f"--junitxml={junit_path}", *extra,
    ]  # fmt: skip


def _result(
    name: str,
    release: str,
    version: str,
    status: Optional[int],
    seconds: float,
    output: str,
    junit: Optional[Path],
    fallback: str,
) -> KernelResult:
    tests = []
    if junit is not None and junit.exists():
        try:
            tests = parse_junit(junit.read_text(errors="replace"))
        except Exception as e:  # noqa: BLE001 - a garbled file is reported, not raised
            fallback = f"unreadable {junit.name}: {e}"
    summary = summary_line(output) or fallback
    return KernelResult(name, release, status, round(seconds, 1), summary, tests, version)


def run_guest(
    spec: KernelSpec,
    repo: Path,
    python: str,
    out: Path,
    extra: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    offline: bool = False,
    log: Callable[[str], None] = print,
) -> KernelResult:
    """Fetch ``spec``'s kernel, boot it and run the kernel-marked tests in ``repo`` inside it."""
    start = time.monotonic()
    try:
        kernel = fetch_kernel(spec, offline=offline)
        initrd = build_initramfs(kernel)
    except VMTestError as e:
        return KernelResult(spec.name, "?", None, round(time.monotonic() - start, 1), f"set-up failed: {e}")
    log(f"[{spec.name}] booting {kernel.release} ({kernel.version}) after {time.monotonic() - start:.1f}s of set-up")
    env = guest_env(os.environ, {"PYBPFLOAD_REQUIRE_KERNEL": "1"})
    cmd = pytest_command(python, f"{SHARE_MOUNT}/{JUNIT}", extra)
    keep = out / spec.name
    r = run_in_vm(kernel.vmlinuz, initrd, cmd, cwd=str(repo), env=env, timeout=timeout, keep=keep)
    if r.timed_out:
        why = f"timed out after {timeout:.0f}s (see {keep}/console.log)"
    elif r.status is None:
        why = f"guest reported no exit status (see {keep}/console.log)"
    else:
        why = f"pytest exited {r.status} without a summary line"
    return _result(spec.name, kernel.release, kernel.version, r.status, time.monotonic() - start, r.output, keep / JUNIT, why)


def run_host(repo: Path, python: str, out: Path, extra: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT) -> KernelResult:
    """The same tests on this machine's own kernel (the ``host`` column)."""
    keep = out / "host"
    keep.mkdir(parents=True, exist_ok=True)
    junit = keep / JUNIT
    env = dict(os.environ, PYBPFLOAD_REQUIRE_KERNEL="1")
    env.pop("PYTHONPATH", None)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            pytest_command(python, str(junit), extra),
            cwd=repo,
            env=env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        status, output = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as e:
        status, output = None, e.stdout.decode(errors="replace") if e.stdout else ""
    (keep / "output").write_text(output)
    return _result(
        "host",
        platform.release(),
        "",
        status,
        time.monotonic() - start,
        output,
        junit,
        f"pytest exited {status} without a summary line",
    )


def git_commit(repo: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def run_matrix(
    specs: Sequence[KernelSpec],
    repo: Path,
    python: str,
    out: Path,
    jobs: int = 2,
    extra: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    offline: bool = False,
    host: bool = False,
) -> "tuple[List[KernelResult], Dict[str, str]]":
    """Run every guest (``jobs`` at a time), then the host if asked; results in ``specs`` order."""
    lock = threading.Lock()

    def log(msg: str) -> None:
        with lock:
            print(msg, flush=True)

    def one(spec: KernelSpec) -> KernelResult:
        r = run_guest(spec, repo, python, out, extra, timeout, offline, log)
        log(f"[{spec.name}] {'ok' if r.ok else 'FAILED'}: {r.summary} ({r.seconds:.0f}s)")
        return r

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, specs))
    if host:
        r = run_host(repo, python, out, extra, timeout)
        log(f"[host] {'ok' if r.ok else 'FAILED'}: {r.summary} ({r.seconds:.0f}s)")
        results.append(r)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(repo),
        "host_release": platform.release(),
        "python": platform.python_version(),
        "jobs": str(jobs),
        "wall_seconds": f"{time.monotonic() - start:.0f}",
    }
    return results, meta


def default_python(repo: Path) -> str:
    """The guest's interpreter: $VMTEST_PYTHON, the repo's .venv, else the runner's own."""
    env = os.environ.get("VMTEST_PYTHON")
    if env:
        return env
    venv = repo / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable
