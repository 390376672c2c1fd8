"""The ``pybpfload`` command (also ``python -m pybpfload``)."""

from __future__ import annotations

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from .cli.main import run

    return run(sys.argv[1:] if argv is None else argv)


def console() -> None:
    """The installed ``pybpfload`` command: :func:`main`, then the process ends at once.

    A command has nothing left to do once it has returned its status: its objects
    are closed (or pinned on purpose), and the kernel releases every fd at exit.
    Tearing the interpreter down (every module, every object freed one by one)
    costs a short command ~8 ms, as much as its whole BPF work, so after flushing
    the output the process leaves with ``os._exit``, as a C tool's ``exit`` does.
    An exception or ``SystemExit`` (argparse's usage errors, ``--help``) takes
    Python's ordinary way out.
    """
    import os

    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader went away (``| head``): what ran still ran
        pass
    except OSError:
        status = status or 1
    os._exit(status)


if __name__ == "__main__":
    console()
