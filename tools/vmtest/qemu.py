"""Boot a kernel under qemu (software emulation) and run one command in it.

The guest sees the host's root read-only over 9p (under a tmpfs overlay, so it
can write anywhere without touching the host) and a per-run job directory over
a second 9p share: the host writes job.sh there, the guest writes back the
command's output and exit status.  The guest has no network device.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from .initramfs import JOB_SCRIPT, OUTPUT_FILE, ROOT_TAG, SHARE_MOUNT, SHARE_TAG, STATUS_FILE
from .kernels import VMTestError

QEMU = "qemu-system-x86_64"
MEMORY_MB = 512
# Passed through to the guest command when set on the host.
PASS_ENV = ("PYBPFLOAD_REQUIRE_KERNEL", "CI", "TERM", "LANG", "LC_ALL", "PYTHONHASHSEED")

KERNEL_ARGS = (
    "console=ttyS0",
    "rdinit=/init",
    "panic=-1",
    "oops=panic",
    "quiet",
    "loglevel=5",  # warnings (WARN splats, 9p complaints) reach console.log
    "random.trust_cpu=on",
    "tsc=reliable",
    "no_timer_check",
    "lsm=lockdown,yama,bpf",  # BPF LSM active everywhere (5.10's default list lacks it)
)


@dataclass(frozen=True)
class BootConfig:
    """Everything qemu needs to boot one guest."""

    vmlinuz: Path
    initramfs: Path
    share: Path  # host side of the job share
    console_log: Path
    memory_mb: int = MEMORY_MB
    host_root: str = "/"
    qemu: str = QEMU
    extra_kernel_args: Sequence[str] = ()


def qemu_argv(cfg: BootConfig) -> List[str]:
    """The qemu command line: TCG, one vCPU, no network, two 9p shares, serial console to a file."""
    append = " ".join((*KERNEL_ARGS, *cfg.extra_kernel_args))
    return [
        cfg.qemu,
        "-machine", "pc,accel=tcg",
        "-cpu", "max",
        "-smp", "1",
        "-m", str(cfg.memory_mb),
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-no-reboot",
        "-nic", "none",
        "-serial", f"file:{cfg.console_log}",
        "-kernel", str(cfg.vmlinuz),
        "-initrd", str(cfg.initramfs),
        "-append", append,
        "-fsdev", f"local,id=hostroot,path={cfg.host_root},security_model=none,readonly=on,multidevs=remap",
        "-device", f"virtio-9p-pci,fsdev=hostroot,mount_tag={ROOT_TAG}",
        "-fsdev", f"local,id=share,path={cfg.share},security_model=none,multidevs=remap",
        "-device", f"virtio-9p-pci,fsdev=share,mount_tag={SHARE_TAG}",
    ]  # fmt: skip


def job_script(command: Sequence[str], cwd: str, env: Mapping[str, str]) -> str:
    """The shell script the guest runs as root: same directory, chosen environment, the command."""
    lines = ["#!/bin/sh", f"cd {shlex.quote(cwd)} || exit 125"]
    for k, v in sorted(env.items()):
        lines.append(f"export {k}={shlex.quote(v)}")
    lines.append("exec " + " ".join(shlex.quote(c) for c in command))
    return "\n".join(lines) + "\n"


def guest_env(host_env: Mapping[str, str], extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The guest command's environment: a fixed base, chosen host variables, then ``extra``."""
    env = {
        "HOME": "/root",
        "PATH": host_env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "VMTEST_GUEST": "1",
    }
    for k in PASS_ENV:
        if k in host_env:
            env[k] = host_env[k]
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class RunResult:
    """What came back from a guest: the command's status and output, and the console log."""

    status: Optional[int]  # None when the guest never reported one (boot failure, time-out)
    output: str
    console: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 0


def parse_status(text: Optional[str]) -> Optional[int]:
    """The exit status the guest wrote, or None when absent or garbled."""
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def run_in_vm(
    vmlinuz: Path,
    initramfs: Path,
    command: Sequence[str],
    cwd: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    timeout: float = 1800.0,
    keep: Optional[Path] = None,
    kernel_args: Sequence[str] = (),
) -> RunResult:
    """Boot, run ``command`` as root in ``cwd`` inside the guest, power off, and return the result.

    ``keep``, if given, is a directory that receives the job share (output,
    status, dmesg, any file the command wrote under $VMTEST_SHARE) and
    console.log.  ``kernel_args`` are appended to the kernel command line.
    """
    if shutil.which(QEMU) is None:
        raise VMTestError(f"{QEMU} not found: apt-get install qemu-system-x86")
    share = Path(tempfile.mkdtemp(prefix="vmtest-share-"))
    try:
        console_log = share.parent / (share.name + ".console")
        full_env = dict(env if env is not None else guest_env(os.environ))
        full_env.setdefault("VMTEST_SHARE", SHARE_MOUNT)
        (share / JOB_SCRIPT).write_text(job_script(command, cwd or os.getcwd(), full_env))
        cfg = BootConfig(vmlinuz, initramfs, share, console_log, extra_kernel_args=tuple(kernel_args))
        start = time.monotonic()
        timed_out = False
        proc = subprocess.Popen(qemu_argv(cfg), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            qemu_out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            qemu_out, _ = proc.communicate()
            timed_out = True
        seconds = time.monotonic() - start
        console = console_log.read_text(errors="replace") if console_log.exists() else ""
        if qemu_out:
            console += "\n[qemu] " + qemu_out.decode(errors="replace")
        status_path, output_path = share / STATUS_FILE, share / OUTPUT_FILE
        status = parse_status(status_path.read_text() if status_path.exists() else None)
        output = output_path.read_text(errors="replace") if output_path.exists() else ""
        if keep is not None:
            if keep.exists():
                shutil.rmtree(keep)
            shutil.copytree(share, keep)
            (keep / "console.log").write_text(console)
        return RunResult(status, output, console, seconds, timed_out)
    finally:
        shutil.rmtree(share, ignore_errors=True)
        try:
            (share.parent / (share.name + ".console")).unlink()
        except FileNotFoundError:
            pass
