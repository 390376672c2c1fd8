#!/usr/bin/env python3
"""Run the code blocks of Markdown documentation, chapter by chapter.

    sudo .venv/bin/python tools/rundocs.py docs/guide/03-maps.md [...]
    sudo .venv/bin/python tools/rundocs.py --list docs/guide/03-maps.md

Each chapter runs in one fresh child process, in order, from the repository
root (so ``fixtures/...`` paths work), inside its own mount and network
namespaces (``unshare --mount --net``): a fresh bpffs is mounted on
/sys/fs/bpf there and ``lo`` is brought up, so pins and attachments never
touch the host's.  What runs:

- ```` ```python ```` blocks, all in one namespace dict (a later block sees the
  names of earlier ones); ```` ```python no-run ```` blocks are skipped;
- ```` ```sh ```` blocks: each line that starts with ``pybpfload `` is run by
  ``sh -c`` (``pybpfload`` being this interpreter's ``-m pybpfload``) and must
  exit 0; other lines (installation, sudo...) are not run;
- ```` ```console ```` blocks: each ``$ pybpfload ...`` line is run, and the
  lines after it, up to the next ``$``, are its expected output: each must
  match a line of what the command printed (stdout and stderr), ``...``
  matching anything; its exit status is not checked (error output can be
  shown), except that a command shown without output must exit 0.

The first failure stops the chapter; the report names the chapter, the
block and the Markdown line, with the traceback in Markdown line numbers.
Exit status 1 when any chapter failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)\s*(.*)$")


@dataclass
class Block:
    lang: str  # "python", "sh" or "console"
    line: int  # 1-based line of the first line of code
    code: str
    index: int  # 1-based among the chapter's runnable blocks


def extract(path: Path) -> List[Block]:
    """The runnable blocks of a Markdown file, in order."""
    blocks: List[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang, rest = m.groups()
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip() for ln in lines[start:j]]
        i = j + 1
        lang = lang.lower()
        if "no-run" in rest.split() or lang not in ("python", "sh", "console"):
            continue
        blocks.append(Block(lang, start + 1, "\n".join(body) + "\n", len(blocks) + 1))
    return blocks


# ---------------------------------------------------------------- the child
SHELL_PRELUDE = 'pybpfload() { "$PYBPFLOAD_PYTHON" -m pybpfload "$@"; }\n'


def _sh(command: str) -> "subprocess.CompletedProcess[str]":
    env = dict(os.environ, PYBPFLOAD_PYTHON=sys.executable)
    return subprocess.run(["sh", "-c", SHELL_PRELUDE + command], capture_output=True, text=True, env=env, timeout=120)


def _expect_matches(expected: str, got: List[str]) -> bool:
    pattern = ".*".join(re.escape(part.strip()) for part in expected.split("..."))
    rx = re.compile(pattern)
    return any(rx.search(line) for line in got)


def run_block(block: Block, where: str, ns: Dict[str, object]) -> Optional[str]:
    """Run one block; None when it passed, else the failure report."""
    head = f"{where}: block {block.index} ({block.lang}, line {block.line})"
    if block.lang == "python":
        src = "\n" * (block.line - 1) + block.code  # tracebacks in Markdown line numbers
        try:
            exec(compile(src, where, "exec"), ns)
        except BaseException:  # noqa: BLE001 - every failure is reported
            tb = traceback.format_exc()
            return f"{head} failed:\n{block.code}\n{tb}"
        return None
    if block.lang == "sh":
        for n, line in enumerate(block.code.splitlines()):
            if not line.startswith("pybpfload "):
                continue
            r = _sh(line)
            if r.returncode != 0:
                return f"{head}: `{line}` (line {block.line + n}) exited {r.returncode}:\n{r.stdout}{r.stderr}"
        return None
    # console: "$ command" then expected lines
    lines = block.code.splitlines()
    k = 0
    while k < len(lines):
        if not lines[k].startswith("$ "):
            k += 1
            continue
        cmd, at = lines[k][2:], block.line + k
        k += 1
        expected = []
        while k < len(lines) and not lines[k].startswith("$ "):
            if lines[k].strip():
                expected.append(lines[k])
            k += 1
        if not cmd.startswith("pybpfload "):
            continue
        r = _sh(cmd)
        got = (r.stdout + r.stderr).splitlines()
        if not expected and r.returncode != 0:
            return f"{head}: `{cmd}` (line {at}) exited {r.returncode}:\n{r.stdout}{r.stderr}"
        for e in expected:
            if not _expect_matches(e, got):
                return f"{head}: `{cmd}` (line {at}) did not print a line matching {e!r}; it printed:\n" + "\n".join(got)
    return None


def child(path: Path, blocks: List[Block]) -> int:
    os.chdir(ROOT)
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    ns: Dict[str, object] = {"__name__": "__main__"}
    for block in blocks:
        failure = run_block(block, where, ns)
        if failure is not None:
            print(failure, file=sys.stderr)
            return 1
    print(f"{where}: {len(blocks)} block(s) passed", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- the parent
BOOT = r"""
set -e
mount -t bpf bpf /sys/fs/bpf
ip link set lo up 2>/dev/null || true
exec "$@"
"""


def run_chapter(path: Path, timeout: float = 300) -> "subprocess.CompletedProcess[str]":
    """Run one chapter in a fresh child in private mount and network namespaces."""
    path = path.resolve()
    blocks = extract(path)
    payload = json.dumps([asdict(b) for b in blocks])
    cmd = ["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", BOOT, "boot",
           sys.executable, str(Path(__file__).resolve()), "--child", str(path)]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONSTARTUP", None)
    return subprocess.run(cmd, input=payload, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, help="Markdown files (default: docs/**/*.md)")
    ap.add_argument("--list", action="store_true", help="list the runnable blocks instead of running them")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        blocks = [Block(**b) for b in json.loads(sys.stdin.read())]
        return child(args.files[0].resolve(), blocks)
    files = args.files or sorted((ROOT / "docs").rglob("*.md"))
    if args.list:
        for f in files:
            for b in extract(f):
                print(f"{f}:{b.line}: block {b.index} ({b.lang}, {len(b.code.splitlines())} lines)")
        return 0
    failed = 0
    for f in files:
        r = run_chapter(f)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        failed += r.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
