"""What the loader says: libbpf-style print callback and the ``pybpfload`` logger.

Every message goes two ways:

- to the print callback, as libbpf's ``libbpf_set_print``: ``fn(level, msg)``
  with ``level`` one of :data:`WARN`, :data:`INFO`, :data:`DEBUG` and ``msg``
  a line ending in a newline.  The default callback writes WARN and INFO to
  stderr and drops DEBUG, as libbpf's does — unless the application has
  configured :mod:`logging` (the root logger has handlers), in which case it
  stays quiet and lets logging show the messages.  ``set_print(None)``
  silences the callback;
- to ``logging.getLogger("pybpfload")`` at the matching level, filtered by
  the application's logging configuration as usual.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Callable, Optional

__all__ = ["WARN", "INFO", "DEBUG", "set_print", "get_print", "warn", "info", "debug", "logger"]

# libbpf_print_level
WARN = 0
INFO = 1
DEBUG = 2

PrintFn = Callable[[int, str], object]

logger = logging.getLogger("pybpfload")
logger.addHandler(logging.NullHandler())  # no logging.lastResort echo: the print callback speaks
_PY_LEVEL = {WARN: logging.WARNING, INFO: logging.INFO, DEBUG: logging.DEBUG}


def default_print(level: int, msg: str) -> None:
    """libbpf's __base_pr: WARN and INFO to stderr, DEBUG dropped."""
    if level == DEBUG:
        return
    if logging.getLogger().handlers:
        return  # logging is configured: it shows the message
    sys.stderr.write(msg)


_lock = threading.Lock()
_print: Optional[PrintFn] = default_print


def set_print(fn: Optional[PrintFn]) -> Optional[PrintFn]:
    """Install ``fn`` as the print callback and return the previous one (thread-safe)."""
    global _print
    with _lock:
        old, _print = _print, fn
    return old


def get_print() -> Optional[PrintFn]:
    return _print


def _emit(level: int, fmt: str, args: tuple) -> None:
    fn = _print
    pylevel = _PY_LEVEL[level]
    to_logger = logger.isEnabledFor(pylevel)
    if fn is None and not to_logger:
        return
    if fn is default_print and level == DEBUG and not to_logger:
        return
    msg = (fmt % args) if args else fmt
    if fn is not None:
        fn(level, "pybpfload: " + msg + "\n")
    if to_logger:
        logger.log(pylevel, msg)


def warn(fmt: str, *args: object) -> None:
    _emit(WARN, fmt, args)


def info(fmt: str, *args: object) -> None:
    _emit(INFO, fmt, args)


def debug(fmt: str, *args: object) -> None:
    _emit(DEBUG, fmt, args)
