"""Open bugs the fuzzer already found and that are being fixed elsewhere.

A crash that matches an entry here does not fail ``python -m fuzz run``, and
its regression file is an expected failure (xfail) in
``tests/test_fuzz_regressions.py``.  When the fix lands, delete the entry:
the regression file then has to pass, and a recurrence fails CI again.

An entry matches a crash when the exception type is one of ``exc_types``
and one of ``where`` ("path" or "path:function", relative to the repository)
is a frame of its traceback (any frame when ``where`` is empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple


@dataclass(frozen=True)
class KnownBug:
    key: str
    reason: str
    exc_types: Tuple[str, ...]
    where: Tuple[str, ...] = ()

    def matches(self, exc_type: str, frames: Iterable[Tuple[str, str]]) -> bool:
        if exc_type not in self.exc_types:
            return False
        if not self.where:
            return True
        for path, func in frames:
            for w in self.where:
                wpath, _, wfunc = w.partition(":")
                if path == wpath and (not wfunc or func == wfunc):
                    return True
        return False


# Fixed meanwhile, their entries removed: RecursionError in btf/query.py describe/sizeof
# on sizeless types (3b889cb), quadratic btf/cdump.py _order_type (1f45a8e), exponential
# btf/core.py types_match (1fae0e9, c780255), non-UTF-8 program names (50f4d41), the
# .bss image materialised at open (kernel/maps.py ZeroImage).
KNOWN: Tuple[KnownBug, ...] = ()


def match(exc_type: str, frames: Iterable[Tuple[str, str]]) -> Optional[KnownBug]:
    frames = tuple(frames)
    for k in KNOWN:
        if k.matches(exc_type, frames):
            return k
    return None
