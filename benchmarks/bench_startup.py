#!/usr/bin/env python3
"""Start-up of a pybpfload tool next to its C anchors, in one run (issue 20).

    sudo python3 benchmarks/bench_startup.py [--rounds 15] [--source git:HEAD | --source tree]
                                             [--venv DIR] [--core-object OBJ] [--baseline REF] [--cpu N]

``--baseline REF`` installs git REF the same way into VENV-baseline and runs
its pybpfload rows in the same interleaved rounds: a before/after in one run,
which is the only fair comparison on a machine whose load changes.

pybpfload is measured the way a user runs it: a NON-editable install into a
separate venv (``--venv``, default /tmp/pybpfload-bench-venv), its .pyc files
compiled with ``compileall``, the venv's interpreter called directly (no pyenv
shim) and PYTHONDONTWRITEBYTECODE removed from the children's environment.
``--source git:REF`` (the default, git:HEAD) installs a ``git archive`` of REF,
so uncommitted work of others never leaks into the figures; ``--source tree``
installs the working tree.  Extra rows, labelled, run the development tree
(``ROOT/.venv``'s interpreter, PYTHONPATH=ROOT) with PYTHONDONTWRITEBYTECODE=1
and an empty PYTHONPYCACHEPREFIX: no .pyc, every module compiled from source,
as in this repository's CI environment.

Rows (each pybpfload figure beside its anchor, measured in interleaved rounds:
every round runs every command once, in the same order):

1. whole process ``pybpfload load xdp_count.bpf.o PIN`` vs ``python -c pass``
   (goal <= 3x) and ``bpftool prog loadall``;
2. whole process ``pybpfload load CORE_OBJ PIN`` vs ``bpftool prog loadall``
   of the same CO-RE object (goal <= 1.5x);
3. ``import pybpfload`` + ``Object.open`` of a generated 300-program object vs
   libbpf's ``bpf_object__open_file`` of it, both timed inside a fresh process
   (goal <= 2x); objects libbpf refuses are never put in a ratio;
4. kernel BTF open + find ``task_struct`` in a fresh process (after the
   import, the file-mapping module included) vs libbpf's ``btf__parse`` + ``btf__find_by_name_kind`` in a fresh
   process: cold (cache disabled, goal <= 2x) and with the index cache (<= 1x);
5. peak RSS (ru_maxrss, the child forked by a small C wrapper) of the CO-RE
   load vs a C libbpf loader (open + load) of the same object (goal <= 1.5x);
6. whole process of a tracepoint tool that opens, loads and attaches every
   program of fixtures/tool_execsnoop.bpf.o and exits (a script of 5 lines)
   vs the same 20 lines of C with libbpf (goal <= 1.2x).

A floor row measures what every pybpfload process imports before any of its
own code runs, given the design: ``re`` (pip's console script imports it),
``ctypes`` and pyelftools' ELF structures (with ``typing`` and ``construct``).
Rows 1 and 2 show their time above it; row 3 shows the floor's imports timed
the same way.

Figures are medians with min-max over the rounds.  C anchors need clang and
libbpf-dev; their rows say "n/a" otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
PIN = "/sys/fs/bpf/pybpfload-bench-startup"

OPEN_SNIPPET = (
    "import time, sys; t = time.perf_counter()\n"
    "import pybpfload\n"
    "o = pybpfload.Object.open(sys.argv[1])\n"
    "print((time.perf_counter() - t) * 1000)\n"
)
# What any pybpfload process imports before a line of pybpfload runs, given the design:
# re (the console script pip writes imports it), ctypes (bpf(2)) and pyelftools' ELF
# structures (the ELF header is read through them; they import typing and construct).
# The debugging modules pyelftools' construct imports (pdb, inspect, traceback, pprint) are
# stand-ins here, as pybpfload binds them (elf/reader.py: a header parse never uses them).
FLOOR_IMPORTS = (
    "import sys, types\n"
    "for n in ('pdb', 'inspect', 'traceback', 'pprint'):\n"
    "    sys.modules[n] = m = types.ModuleType(n); m.pformat = repr\n"
    "import re, ctypes, elftools.elf.structs\n"
)
FLOOR_SNIPPET = "import time; t = time.perf_counter()\n" + FLOOR_IMPORTS + "print((time.perf_counter() - t) * 1000)\n"
BTF_SNIPPET = (
    "import time, sys\n"
    "from pybpfload.btf.spec import Spec\n"
    "from pybpfload.btf import types as T\n"
    "import pybpfload.btf._mapped  # the rest of the import: the file mapping (ctypes), imported on first use\n"
    "t = time.perf_counter()\n"
    "s = Spec.from_file('/sys/kernel/btf/vmlinux')\n"
    "assert s.find_id('task_struct', T.Kind.STRUCT) > 0\n"
    "print((time.perf_counter() - t) * 1000)\n"
)

C_OPEN = r"""
#include <stdio.h>
#include <time.h>
#include <bpf/libbpf.h>
static int quiet(enum libbpf_print_level l, const char *f, va_list a) { return 0; }
int main(int argc, char **argv)
{
	struct timespec a, b;
	libbpf_set_print(quiet);
	clock_gettime(CLOCK_MONOTONIC, &a);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (!obj)
		return 1;
	printf("%.3f\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
	bpf_object__close(obj);
	return 0;
}
"""

C_BTF = r"""
#include <stdio.h>
#include <time.h>
#include <bpf/btf.h>
int main(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	struct btf *btf = btf__parse("/sys/kernel/btf/vmlinux", NULL);
	if (!btf || btf__find_by_name_kind(btf, "task_struct", BTF_KIND_STRUCT) < 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.3f\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
	btf__free(btf);
	return 0;
}
"""

C_LOAD = r"""
#include <stdio.h>
#include <bpf/libbpf.h>
static int quiet(enum libbpf_print_level l, const char *f, va_list a) { return 0; }
int main(int argc, char **argv)
{
	libbpf_set_print(quiet);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj))
		return 1;
	bpf_object__close(obj);
	return 0;
}
"""


TOOL_SNIPPET = (
    "import sys\n"
    "from pybpfload import Object\n"
    "with Object.open(sys.argv[1]) as obj:\n"
    "    obj.load()\n"
    "    links = obj.attach_all()\n"
)

C_TOOL = r"""
#include <stdio.h>
#include <bpf/libbpf.h>
static int quiet(enum libbpf_print_level l, const char *f, va_list a) { return 0; }
int main(int argc, char **argv)
{
	struct bpf_program *prog;
	libbpf_set_print(quiet);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj))
		return 1;
	bpf_object__for_each_program(prog, obj) {
		struct bpf_link *link = bpf_program__attach(prog);
		if (!link)
			return 1;
	}
	bpf_object__close(obj);
	return 0;
}
"""

C_RSS = r"""
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	struct rusage ru;
	int status;
	pid_t pid = fork();
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return 1;
	printf("%ld\n", ru.ru_maxrss);
	return 0;
}
"""


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


# ---------------------------------------------------------------- set-up
def base_python() -> str:
    """A real interpreter (not a pyenv shim) to create the venv with."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def install(venv: Path, source: str) -> Tuple[Path, str]:
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)
    if source == "tree":
        src, label = ROOT, "working tree"
    else:
        ref = source.split(":", 1)[1] if ":" in source else "HEAD"
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True, text=True, check=True)
        label = f"git {ref} ({sha.stdout.strip()})"
        src = Path(tempfile.mkdtemp(prefix="pybpfload-src-"))
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(src)],
        check=True,
        env=clean_env(),
        stderr=subprocess.DEVNULL,
    )
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(src)], check=True, env=clean_env(), stderr=subprocess.DEVNULL)
    site = subprocess.run([str(py), "-c", "import pybpfload, os; print(os.path.dirname(pybpfload.__file__))"], capture_output=True, text=True, env=clean_env(), check=True).stdout.strip()
    subprocess.run([str(py), "-m", "compileall", "-q", site, os.path.dirname(site)], env=clean_env(), stdout=subprocess.DEVNULL)
    if src != ROOT:
        shutil.rmtree(src, ignore_errors=True)
    return py, label


def build_c(work: Path, name: str, code: str) -> Optional[str]:
    cc = shutil.which("clang") or shutil.which("gcc")
    if cc is None or not Path("/usr/include/bpf/libbpf.h").exists():
        return None
    c = work / f"{name}.c"
    c.write_text(code)
    out = work / name
    r = subprocess.run([cc, "-O2", str(c), "-o", str(out), "-lbpf"], capture_output=True)
    return str(out) if r.returncode == 0 else None


def build_many(work: Path, n: int) -> Optional[Path]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT))
    from bench_open import generate_source  # the same generated object as bench_open.py

    clang = shutil.which("clang")
    if clang is None:
        return None
    src, obj = work / "many_progs.bpf.c", work / "many_progs.bpf.o"
    src.write_text(generate_source(n))
    r = subprocess.run(
        [clang, "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I/usr/include/x86_64-linux-gnu", "-c", str(src), "-o", str(obj)],
        capture_output=True,
    )
    return obj if r.returncode == 0 else None


# ---------------------------------------------------------------- measuring
class Cmd:
    """One command measured per round: wall time of the process, or the figure it prints."""

    def __init__(self, label: str, argv: Sequence[str], env: Dict[str, str], printed: bool = False, cwd: Optional[Path] = None) -> None:
        self.label, self.argv, self.env, self.printed, self.cwd = label, list(argv), env, printed, cwd
        self.times: List[float] = []
        self.failed: Optional[str] = None

    def run(self) -> None:
        if self.failed:
            return
        subprocess.run(["rm", "-rf", PIN])
        t = time.perf_counter()
        p = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, cwd=self.cwd)
        out, err = p.communicate()
        wall = (time.perf_counter() - t) * 1000
        subprocess.run(["rm", "-rf", PIN])
        if p.returncode:
            self.failed = (err.decode(errors="replace").strip().splitlines() or ["exit %d" % p.returncode])[-1]
            return
        self.times.append(float(out.split()[-1]) if self.printed else wall)

    def stat(self) -> str:
        if self.failed:
            return f"failed: {self.failed[:60]}"
        if not self.times:
            return "n/a"
        return f"{statistics.median(self.times):8.1f} ms  ({min(self.times):.1f}-{max(self.times):.1f})"

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.times) if self.times and not self.failed else None


def peak_rss_kib(wrapper: Optional[str], argv: Sequence[str], env: Dict[str, str]) -> Optional[int]:
    """ru_maxrss of argv, forked by a small C wrapper: a child forked from this Python process
    would report this process's RSS (Linux keeps the pre-exec high-water mark)."""
    if wrapper is None:
        return None
    subprocess.run(["rm", "-rf", PIN])
    r = subprocess.run([wrapper, *argv], capture_output=True, text=True, env=env)
    subprocess.run(["rm", "-rf", PIN])
    return int(r.stdout.split()[-1]) if r.returncode == 0 else None


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:6.2f}x" if a is not None and b else "   n/a"


def over(a: Optional[float], floor: Optional[float]) -> str:
    return f"{a - floor:.1f} ms" if a is not None and floor is not None else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--source", default="git:HEAD", help="git:REF (default git:HEAD) or tree")
    ap.add_argument("--venv", default="/tmp/pybpfload-bench-venv")
    ap.add_argument("--core-object", default=str(FIX / "core_task.bpf.o"), help="the CO-RE tool object of rows 2 and 5")
    ap.add_argument("--programs", type=int, default=300)
    ap.add_argument("--no-install", action="store_true", help="use the venv as it is")
    ap.add_argument("--baseline", metavar="REF", help="also run git REF (installed the same way into VENV-baseline) in the same rounds")
    ap.add_argument("--cpu", type=int, metavar="N", help="run every command on CPU N only (steadier figures on a machine whose CPUs differ)")
    a = ap.parse_args()
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})  # inherited by every command
    if os.geteuid() != 0:
        sys.exit("needs root (bpf(2), /sys/fs/bpf)")

    venv = Path(a.venv)
    if a.no_install:
        py, label = venv / "bin" / "python", "venv as installed"
    else:
        py, label = install(venv, a.source)
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    c_open, c_btf, c_load, c_tool = (
        build_c(work, n, c) for n, c in (("c_open", C_OPEN), ("c_btf", C_BTF), ("c_load", C_LOAD), ("c_tool", C_TOOL))
    )
    tool_obj = str(FIX / "tool_execsnoop.bpf.o")
    many = build_many(work, a.programs)
    bpftool = shutil.which("bpftool")
    cache = work / "cache"
    env = clean_env(PYBPFLOAD_CACHE_DIR=str(cache))  # a private, warm index cache
    nocache = clean_env(PYBPFLOAD_CACHE_DIR="")
    # no .pyc at all: an empty private pycache prefix, never written to
    dev_env = clean_env(PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(ROOT), PYBPFLOAD_CACHE_DIR=str(cache), PYTHONPYCACHEPREFIX=str(work / "nopyc"))
    dev_py = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else base_python()
    xdp, core = str(FIX / "xdp_count.bpf.o"), a.core_object
    cli = [str(py), "-m", "pybpfload"]
    # the venv's console script is what users run; use it when present
    if (venv / "bin" / "pybpfload").exists():
        cli = [str(venv / "bin" / "pybpfload")]

    cmds = {
        "pass": Cmd("python -c pass", [str(py), "-c", "pass"], env),
        "floor": Cmd("floor: python + re, ctypes, pyelftools", [str(py), "-c", FLOOR_IMPORTS], env),
        "xdp": Cmd("pybpfload load xdp_count", cli + ["load", xdp, PIN], env),
        "xdp_dev": Cmd("  same, dev tree, no .pyc (PYTHONDONTWRITEBYTECODE=1)", [dev_py, "-m", "pybpfload", "load", xdp, PIN], dev_env, cwd=ROOT),
        "xdp_bt": Cmd("bpftool prog loadall xdp_count", [bpftool or "false", "prog", "loadall", xdp, PIN], clean_env()),
        "core": Cmd("pybpfload load " + Path(core).name, cli + ["load", core, PIN], env),
        "core_bt": Cmd("bpftool prog loadall " + Path(core).name, [bpftool or "false", "prog", "loadall", core, PIN], clean_env()),
        "tool": Cmd("pybpfload open+load+attach tool_execsnoop", [str(py), "-c", TOOL_SNIPPET, tool_obj], env),
        "btf_cold": Cmd("pybpfload kernel BTF + find, no cache", [str(py), "-c", BTF_SNIPPET], nocache, printed=True),
        "btf_warm": Cmd("pybpfload kernel BTF + find, index cache", [str(py), "-c", BTF_SNIPPET], env, printed=True),
    }
    if c_tool:
        cmds["tool_c"] = Cmd("C libbpf open+load+attach tool_execsnoop", [c_tool, tool_obj], clean_env())
    if c_btf:
        cmds["btf_c"] = Cmd("libbpf btf__parse + find (fresh process)", [c_btf], clean_env(), printed=True)
    if many:
        cmds["open"] = Cmd(f"pybpfload import + open {a.programs} progs", [str(py), "-c", OPEN_SNIPPET, str(many)], env, printed=True)
        cmds["open_dev"] = Cmd("  same, dev tree, no .pyc (PYTHONDONTWRITEBYTECODE=1)", [dev_py, "-c", OPEN_SNIPPET, str(many)], dev_env, printed=True, cwd=ROOT)
        cmds["open_floor"] = Cmd("  floor: the imports of re, ctypes, pyelftools", [str(py), "-c", FLOOR_SNIPPET], env, printed=True)
        if c_open:
            cmds["open_c"] = Cmd(f"libbpf open {a.programs} progs (fresh process)", [c_open, str(many)], clean_env(), printed=True)
    if not bpftool:
        cmds["xdp_bt"].failed = cmds["core_bt"].failed = "no bpftool"
    base_label = ""
    if a.baseline:  # the same pybpfload rows from another commit, interleaved with these
        bvenv = Path(str(venv) + "-baseline")
        bpy, base_label = install(bvenv, "git:" + a.baseline)
        bcli = [str(bvenv / "bin" / "pybpfload")] if (bvenv / "bin" / "pybpfload").exists() else [str(bpy), "-m", "pybpfload"]
        for key in ("xdp", "core", "tool", "open", "btf_cold", "btf_warm"):
            c = cmds.get(key)
            if c is None:
                continue
            argv = bcli + c.argv[len(cli):] if c.argv[: len(cli)] == cli else [str(bpy)] + c.argv[1:]
            cmds[key + "@base"] = Cmd("  baseline " + a.baseline, argv, c.env, printed=c.printed)

    cmds["btf_warm"].run()  # fill the private cache
    cmds["btf_warm"].times.clear()
    for c in cmds.values():  # one warm-up each (page cache, .pyc)
        c.run()
        c.times.clear()
    for _ in range(a.rounds):
        for c in cmds.values():
            c.run()

    rss_of = build_c(work, "rss_of", C_RSS)
    rss_ours = peak_rss_kib(rss_of, cli + ["load", core, PIN], env)
    rss_c = peak_rss_kib(rss_of, [c_load, core], clean_env()) if c_load else None
    rss_bt = peak_rss_kib(rss_of, [bpftool, "prog", "loadall", core, PIN], clean_env()) if bpftool else None

    rss_base = None
    if a.baseline:
        rss_base = peak_rss_kib(rss_of, cmds["core@base"].argv, env)

    m = {k: c.median for k, c in cmds.items()}
    print(f"pybpfload: {label}, non-editable install in {venv}, .pyc compiled, {py} called directly, PYTHONDONTWRITEBYTECODE unset")
    if a.baseline:
        print(f"baseline rows: {base_label}, installed the same way into {venv}-baseline, run in the same rounds")
    on = f"CPU {a.cpu} only" if a.cpu is not None else f"{os.cpu_count()} CPUs"
    print(f"{a.rounds} interleaved rounds; median (min-max); {on}; kernel {os.uname().release}\n")
    W = 48
    print(f"{'row':{W}} {'figure':>30}  ratio to anchor")
    print(f"{cmds['pass'].label:{W}} {cmds['pass'].stat():>30}")
    print(f"{cmds['floor'].label:{W}} {cmds['floor'].stat():>30}  {ratio(m['floor'], m['pass'])} python -c pass, "
          f"{ratio(m['floor'], m['core_bt'])} bpftool's CO-RE load: below it no pybpfload row can go")
    print(f"{cmds['xdp_bt'].label:{W}} {cmds['xdp_bt'].stat():>30}")
    print(f"{cmds['xdp'].label:{W}} {cmds['xdp'].stat():>30}  {ratio(m['xdp'], m['pass'])} python -c pass (goal <= 3x), {ratio(m['xdp'], m['xdp_bt'])} bpftool, "
          f"floor + {over(m['xdp'], m['floor'])}")
    if "xdp@base" in cmds:
        print(f"{cmds['xdp@base'].label:{W}} {cmds['xdp@base'].stat():>30}  {ratio(m['xdp@base'], m['pass'])}")
    print(f"{cmds['xdp_dev'].label:{W}} {cmds['xdp_dev'].stat():>30}  {ratio(m['xdp_dev'], m['pass'])} python -c pass")
    print(f"{cmds['core_bt'].label:{W}} {cmds['core_bt'].stat():>30}")
    print(f"{cmds['core'].label:{W}} {cmds['core'].stat():>30}  {ratio(m['core'], m['core_bt'])} bpftool (goal <= 1.5x), floor + {over(m['core'], m['floor'])}")
    if "core@base" in cmds:
        print(f"{cmds['core@base'].label:{W}} {cmds['core@base'].stat():>30}  {ratio(m['core@base'], m['core_bt'])}")
    if "tool_c" in cmds:
        print(f"{cmds['tool_c'].label:{W}} {cmds['tool_c'].stat():>30}")
    print(f"{cmds['tool'].label:{W}} {cmds['tool'].stat():>30}  {ratio(m['tool'], m.get('tool_c'))} C libbpf (goal <= 1.2x)")
    if "tool@base" in cmds:
        print(f"{cmds['tool@base'].label:{W}} {cmds['tool@base'].stat():>30}  {ratio(m['tool@base'], m.get('tool_c'))}")
    if "open" in cmds:
        oc = cmds.get("open_c")
        if oc is not None:
            print(f"{oc.label:{W}} {oc.stat():>30}")
        print(f"{cmds['open'].label:{W}} {cmds['open'].stat():>30}  {ratio(m['open'], m.get('open_c'))} libbpf (goal <= 2x)")
        if "open@base" in cmds:
            print(f"{cmds['open@base'].label:{W}} {cmds['open@base'].stat():>30}  {ratio(m['open@base'], m.get('open_c'))}")
        print(f"{cmds['open_dev'].label:{W}} {cmds['open_dev'].stat():>30}  {ratio(m['open_dev'], m.get('open_c'))} libbpf")
        print(f"{cmds['open_floor'].label:{W}} {cmds['open_floor'].stat():>30}  {ratio(m['open_floor'], m.get('open_c'))} libbpf")
    if "btf_c" in cmds:
        print(f"{cmds['btf_c'].label:{W}} {cmds['btf_c'].stat():>30}")
    print(f"{cmds['btf_cold'].label:{W}} {cmds['btf_cold'].stat():>30}  {ratio(m['btf_cold'], m.get('btf_c'))} libbpf (goal <= 2x)")
    if "btf_cold@base" in cmds:
        print(f"{cmds['btf_cold@base'].label:{W}} {cmds['btf_cold@base'].stat():>30}  {ratio(m['btf_cold@base'], m.get('btf_c'))}")
    print(f"{cmds['btf_warm'].label:{W}} {cmds['btf_warm'].stat():>30}  {ratio(m['btf_warm'], m.get('btf_c'))} libbpf (goal <= 1x)")
    if "btf_warm@base" in cmds:
        print(f"{cmds['btf_warm@base'].label:{W}} {cmds['btf_warm@base'].stat():>30}  {ratio(m['btf_warm@base'], m.get('btf_c'))}")
    fmt = lambda k: f"{k / 1024:.1f} MiB" if k else "n/a"  # noqa: E731
    print(f"\npeak RSS of loading {Path(core).name}: pybpfload {fmt(rss_ours)}, C libbpf loader {fmt(rss_c)}, bpftool {fmt(rss_bt)}"
          f"  -> {ratio(rss_ours, rss_c)} the C loader (goal <= 1.5x)")
    if a.baseline:
        print(f"  baseline {a.baseline}: {fmt(rss_base)} -> {ratio(rss_base, rss_c)} the C loader")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
