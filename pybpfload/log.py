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

import sys
import _thread  # allocate_lock is threading.Lock, without importing threading (~1 ms)
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    import logging

__all__ = ["WARN", "INFO", "DEBUG", "set_print", "get_print", "warn", "info", "debug", "logger"]  # noqa: F822 - logger: module __getattr__

# libbpf_print_level
WARN = 0
INFO = 1
DEBUG = 2

PrintFn = Callable[[int, str], object]

_PY_LEVEL = {WARN: 30, INFO: 20, DEBUG: 10}  # logging.WARNING, INFO, DEBUG

# The "pybpfload" logger is made when first needed: importing logging costs every
# command-line run ~3 ms, and an application that never imported logging cannot have
# configured it (so nothing could be shown through it).
_logger: "Optional[logging.Logger]" = None


def _get_logger() -> "logging.Logger":
    global _logger
    if _logger is None:
        import logging

        lg = logging.getLogger("pybpfload")
        if not any(isinstance(h, logging.NullHandler) for h in lg.handlers):
            lg.addHandler(logging.NullHandler())  # no logging.lastResort echo: the print callback speaks
        _logger = lg
    return _logger


def __getattr__(name: str) -> Any:
    if name == "logger":  # pybpfload.log.logger: logging.getLogger("pybpfload")
        return _get_logger()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _logging_configured() -> bool:
    logging = sys.modules.get("logging")
    return logging is not None and bool(logging.getLogger().handlers)


def default_print(level: int, msg: str) -> None:
    """libbpf's __base_pr: WARN and INFO to stderr, DEBUG dropped."""
    if level == DEBUG:
        return
    if _logging_configured():
        return  # logging is configured: it shows the message
    sys.stderr.write(msg)


_lock = _thread.allocate_lock()
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
    lg = _logger
    if lg is None and "logging" in sys.modules:
        lg = _get_logger()
    to_logger = lg is not None and lg.isEnabledFor(pylevel)
    if fn is None and not to_logger:
        return
    if fn is default_print and level == DEBUG and not to_logger:
        return
    msg = (fmt % args) if args else fmt
    if fn is not None:
        fn(level, "pybpfload: " + msg + "\n")
    if to_logger:
        lg.log(pylevel, msg)  # type: ignore[union-attr]


def warn(fmt: str, *args: object) -> None:
    _emit(WARN, fmt, args)


def info(fmt: str, *args: object) -> None:
    _emit(INFO, fmt, args)


def debug(fmt: str, *args: object) -> None:
    _emit(DEBUG, fmt, args)
