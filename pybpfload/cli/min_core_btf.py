"""``pybpfload gen min-core-btf OBJ... [--btf SRC] -o OUT``: kernel BTF cut down to what objects' CO-RE uses.

As ``bpftool gen min_core_btf SRC OUT OBJ...`` (:mod:`pybpfload.reloc.btfgen`),
and over a fleet at once: SRC may be a directory of kernel BTFs (BTFHub's
``.btf.tar.xz`` archives too), minimized into the same tree under OUT.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import BPFError


def cmd_gen_min_core_btf(args: argparse.Namespace) -> int:
    from ..reloc.btfgen import btf_sources, generate, read_object

    for path in args.objects:  # as bpftool, an object without CO-RE relocations keeps nothing: said
        if read_object(path).relo_count == 0:
            print(f"pybpfload: note: {path} has no CO-RE relocations", file=sys.stderr)
    jobs = args.jobs if args.jobs > 0 else (os.cpu_count() or 1)
    is_dir = os.path.isdir(args.btf)
    if is_dir:
        _pairs, skipped = btf_sources(args.btf, args.output)
        for path in skipped:
            print(f"pybpfload: skipped {path}: not BTF", file=sys.stderr)
    results = generate(args.objects, args.btf, args.output, jobs=jobs, keep_going=is_dir)
    failed = 0
    for r in results:
        if r.error:
            failed += 1
            print(f"pybpfload: error: {r.error}", file=sys.stderr)
        elif not args.quiet:
            print(f"{r.output}: {r.types} types, {r.size} bytes")
    if is_dir:
        if not results:
            raise BPFError(f"no BTF file in {args.btf}")
        print(f"{len(results) - failed} of {len(results)} BTF files minimized into {args.output}" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


def _jobs(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 (one per CPU) or more")
    return n


def add_parser(sub: Any) -> None:
    """Add ``min-core-btf`` to the ``gen`` command (whose parser :mod:`.skeleton` makes)."""
    gen = sub.choices["gen"]
    gsub = next(a for a in gen._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    p = gsub.add_parser(
        "min-core-btf",
        help="kernel BTF cut down to what objects' CO-RE relocations use, as bpftool gen min_core_btf",
        description="Minimize kernel BTF for the CO-RE relocations of OBJ... (bpftool gen min_core_btf). "
        "SRC is a BTF file (raw, ELF with .BTF, or a tar archive of one) or a directory of them; "
        "for a directory, OUT is a directory that receives the same tree.",
    )
    p.add_argument("objects", nargs="+", metavar="OBJ", help="BPF objects whose CO-RE relocations decide what is kept")
    p.add_argument("--btf", default="/sys/kernel/btf/vmlinux", metavar="SRC", help="source BTF file or directory (default: the running kernel's)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file (or directory)")
    p.add_argument("-j", "--jobs", type=_jobs, default=1, metavar="N", help="for a directory: N processes (0: one per CPU)")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per file written")
    p.set_defaults(handler=cmd_gen_min_core_btf)


__all__ = ["add_parser", "cmd_gen_min_core_btf"]
