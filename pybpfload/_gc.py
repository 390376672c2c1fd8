"""The cyclic garbage collector paused while pybpfload imports and builds (start-up, issue 20).

CPython runs a collection every 700 new container objects.  Importing pybpfload's
modules and pyelftools, decoding an object and loading it make tens of thousands
of them and almost no garbage: opening and loading a tracepoint tool ran 34 young
and 3 middle collections, 1-2 ms of its start-up, that found next to nothing
(17 and 1 with the pause, most of them the interpreter's own start-up).
:func:`paused` stops the collector around that
work and puts it back as it found it: nested and concurrent uses re-enable it
once, when the last one ends, and never when the application had disabled it.
Reference counting frees everything acyclic meanwhile; cycles wait for the next
collection.
"""

from __future__ import annotations

import _thread
import gc
from types import TracebackType
from typing import Optional, Type

_lock = _thread.allocate_lock()
_depth = 0
_reenable = False


class _Paused:
    __slots__ = ()

    def __enter__(self) -> None:
        global _depth, _reenable
        with _lock:
            if _depth == 0:
                _reenable = gc.isenabled()
                gc.disable()
            _depth += 1

    def __exit__(self, t: Optional[Type[BaseException]], e: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        global _depth
        with _lock:
            _depth -= 1
            if _depth == 0 and _reenable:
                gc.enable()


_PAUSED = _Paused()


def paused() -> _Paused:
    """``with paused(): ...`` — no cyclic collection inside (see the module docstring)."""
    return _PAUSED
