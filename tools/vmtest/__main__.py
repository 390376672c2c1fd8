"""Command line of the VM test runner (run with PYTHONPATH=tools python -m vmtest ...).

fetch [KERNEL...]           download (or refresh) kernels and build their initramfs
run KERNEL [--] CMD...      run CMD as root in the current directory inside KERNEL's guest
matrix [--kernels A,B]      kernel-marked tests on each kernel, two guests at a time
table [--results FILE]      the Markdown feature-by-kernel table of a results file
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from .kernels import KERNELS, KernelSpec, VMTestError, fetch_kernel, kernel_spec
from .initramfs import build_initramfs
from .qemu import guest_env, run_in_vm
from .results import KernelResult

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_RESULTS = HERE / "results.json"
DEFAULT_OUT = HERE / "out"


def parse_kernels(text: Optional[str]) -> List[KernelSpec]:
    """Comma-separated kernel names (or suites); all of the matrix when empty or "all"."""
    if not text or text == "all":
        return list(KERNELS)
    return [kernel_spec(n.strip()) for n in text.split(",") if n.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vmtest", description="Run pybpfload's kernel tests on Debian kernels under qemu.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--offline", action="store_true", help="use cached kernels, do not ask the archive")
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("fetch", parents=[common], help="download kernels and build their initramfs")
    f.add_argument("kernels", nargs="*", help="kernel names (default: all)")

    r = sub.add_parser("run", parents=[common], help="run a command inside one kernel's guest")
    r.add_argument("kernel")
    r.add_argument("--cwd", default=None, help="directory to run in (default: the current one)")
    r.add_argument("--timeout", type=float, default=1800.0)
    r.add_argument("--keep", type=Path, default=None, help="copy the job share and console log here")
    r.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="extra guest environment")
    r.add_argument("--append", action="append", default=[], metavar="ARG", help="extra kernel command-line argument")
    r.add_argument("command", nargs="*", help="the command (put it after -- if it has options)")

    m = sub.add_parser("matrix", parents=[common], help="run the kernel-marked tests on every kernel")
    m.add_argument("--kernels", default="all", help="comma-separated names: " + ",".join(k.name for k in KERNELS))
    m.add_argument("--jobs", type=int, default=2, help="guests at a time (default 2)")
    m.add_argument("--python", default=None, help="interpreter inside the guests (default: .venv, else this one)")
    m.add_argument("--host", action="store_true", help="also run on this machine's kernel (column 'host')")
    m.add_argument("--timeout", type=float, default=None, help="seconds per guest (default 900)")
    m.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    m.add_argument("--out", type=Path, default=DEFAULT_OUT, help="per-kernel logs, junit.xml and console.log")
    m.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")

    t = sub.add_parser("table", help="print the Markdown table of a results file")
    t.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    return p


def closing_line(results: Sequence[KernelResult]) -> str:
    """All kernels' counts on one plain line: 'vmtest: N passed, N failed, N skipped'."""
    passed = sum(r.counts()["passed"] for r in results)
    failed = sum(r.counts()["failed"] + r.counts()["error"] for r in results)
    failed += sum(1 for r in results if not r.ok and not r.tests)  # a kernel that gave no results
    skipped = sum(r.counts()["skipped"] for r in results)
    return f"vmtest: {passed} passed, {failed} failed, {skipped} skipped"


def cmd_fetch(ns: argparse.Namespace) -> int:
    for spec in parse_kernels(",".join(ns.kernels)):
        k = fetch_kernel(spec, offline=ns.offline)
        print(f"{spec.name}: {k.release} ({k.version}) {k.vmlinuz} {build_initramfs(k)}")
    return 0


def cmd_run(ns: argparse.Namespace) -> int:
    command = list(ns.command)
    if not command:
        print("vmtest run: no command given", file=sys.stderr)
        return 2
    k = fetch_kernel(kernel_spec(ns.kernel), offline=ns.offline)
    extra = dict(e.split("=", 1) for e in ns.env)
    r = run_in_vm(
        k.vmlinuz,
        build_initramfs(k),
        command,
        cwd=ns.cwd or os.getcwd(),
        env=guest_env(os.environ, extra),
        timeout=ns.timeout,
        keep=ns.keep,
        kernel_args=ns.append,
    )
    sys.stdout.write(r.output)
    if r.status is None:
        print(f"vmtest: {'timed out' if r.timed_out else 'no exit status'}; console:\n{r.console[-4000:]}", file=sys.stderr)
        return 124 if r.timed_out else 125
    return r.status


def cmd_matrix(ns: argparse.Namespace) -> int:
    from .matrix import DEFAULT_TIMEOUT, default_python, run_matrix
    from .results import render_table, write_results

    specs = parse_kernels(ns.kernels)
    python = ns.python or default_python(REPO)
    print(f"vmtest: kernel tests on {', '.join(s.name for s in specs)} with {python}, {ns.jobs} guest(s) at a time", flush=True)
    results, meta = run_matrix(
        specs, REPO, python, ns.out, ns.jobs, list(ns.pytest_args), ns.timeout or DEFAULT_TIMEOUT, ns.offline, ns.host
    )
    write_results(ns.results, results, meta)
    print(f"\n== matrix summary ({meta['wall_seconds']}s wall, logs in {ns.out}, results in {ns.results})")
    for r in results:
        print(f"{r.name:>5} {r.release:<24} {'ok    ' if r.ok else 'FAILED'} {r.seconds:6.0f}s  {r.summary}")
        for t in r.tests:
            if t.outcome in ("failed", "error"):
                print(f"        {t.outcome}: {t.nodeid}: {t.message}")
    print()
    print(render_table(results, meta))
    print(closing_line(results))
    return 0 if all(r.ok for r in results) else 1


def cmd_table(ns: argparse.Namespace) -> int:
    from .results import load, load_meta, render_table

    text = ns.results.read_text()
    sys.stdout.write(render_table(load(text), load_meta(text)))
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; everything after the first ``--`` is the guest command or pytest's arguments."""
    argv = list(argv)
    tail: List[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, tail = argv[:i], argv[i + 1 :]
    ns = build_parser().parse_args(argv)
    if ns.cmd == "run":
        ns.command = list(ns.command) + tail
    elif ns.cmd == "matrix":
        ns.pytest_args = list(ns.pytest_args) + tail
    elif tail:
        build_parser().error(f"{ns.cmd} takes no arguments after --")
    return ns


def main(argv: Optional[Sequence[str]] = None) -> int:
    ns = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return {"fetch": cmd_fetch, "run": cmd_run, "matrix": cmd_matrix, "table": cmd_table}[ns.cmd](ns)
    except VMTestError as e:
        print(f"vmtest: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
