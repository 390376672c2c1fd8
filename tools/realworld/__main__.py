"""python -m realworld fetch|sweep (tools/ on PYTHONPATH)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from .corpus import PACKAGES, SUITES

DEFAULT_CORPUS = Path.home() / ".cache" / "pybpfload-realworld"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="realworld", description=__doc__)
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help=f"object directory (default {DEFAULT_CORPUS})")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download the packages and collect their BPF objects")
    f.add_argument("--suites", default=",".join(SUITES))
    f.add_argument("--packages", default=",".join(PACKAGES))
    lb = sub.add_parser("libbpf", help="fetch current libbpf (Debian's libbpf1, never installed) as the second oracle")
    lb.add_argument("--suite", default=None, help="Debian suite to take it from (default trixie)")
    lb.add_argument("--offline", action="store_true", help="only look in the cache")
    lb.add_argument("--print-path", action="store_true", help="print the library's path alone on stdout")
    s = sub.add_parser("sweep", help="compare pybpfload with libbpf on every object (exit 1 on any difference)")
    s.add_argument("--open-only", action="store_true", help="no kernel: compare the opened objects only")
    s.add_argument("--current", default="auto",
                   help="second oracle: 'auto' (cached or fetched trixie libbpf), 'none', or a libbpf.so path")
    s.add_argument("files", nargs="*", type=Path)
    ns = p.parse_args(argv)
    if ns.cmd == "fetch":
        from .corpus import fetch

        entries = fetch(ns.corpus, ns.suites.split(","), ns.packages.split(","))
        print(f"realworld: {len(entries)} BPF objects in {ns.corpus}")
        return 0 if entries else 1
    if ns.cmd == "libbpf":
        from . import libbpf_current

        return libbpf_current.main(ns.suite or libbpf_current.DEFAULT_SUITE, ns.offline, ns.print_path)
    from .sweep import main_sweep

    return main_sweep(ns.corpus, ns.files or None, load=not ns.open_only, current=ns.current)


if __name__ == "__main__":
    sys.exit(main())
