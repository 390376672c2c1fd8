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


KNOWN: Tuple[KnownBug, ...] = (
    KnownBug(
        "query-recursion",
        "RecursionError in btf/query.py describe/sizeof on sizeless types (fix in progress)",
        ("RecursionError",),
        ("pybpfload/btf/query.py",),
    ),
    KnownBug(
        "cdump-order-quadratic",
        "quadratic btf/cdump.py _order_type (fix in progress)",
        ("Hang",),
        ("pybpfload/btf/cdump.py:_order_type",),
    ),
    KnownBug(
        "core-types-match-exponential",
        "exponential btf/core.py types_match (fix in progress)",
        ("Hang", "RecursionError"),
        ("pybpfload/btf/core.py:types_match",),
    ),
    KnownBug(
        "bss-materialised",
        "a huge .bss materialised as zero bytes at open (fix in progress)",
        ("MemoryError", "Hang", "OverflowError"),
        ("pybpfload/object.py:_make_map",),
    ),
    KnownBug(
        "prog-name-non-utf8",
        "non-UTF-8 program names (fix in progress)",
        ("UnicodeEncodeError", "UnicodeDecodeError"),
    ),
)


def match(exc_type: str, frames: Iterable[Tuple[str, str]]) -> Optional[KnownBug]:
    frames = tuple(frames)
    for k in KNOWN:
        if k.matches(exc_type, frames):
            return k
    return None
