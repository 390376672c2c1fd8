"""The offsets index of a BTF type section: where each type record starts.

This walk is on the path of every CO-RE load (vmlinux BTF has ~127k
types), so it is written for CPython's interpreter: the step to the next
record is looked up in a dict keyed by the whole ``info`` word (a few
thousand distinct values), the loop is unrolled and ends on IndexError
instead of testing the bound on every record.
"""

from __future__ import annotations

from array import array
from typing import Dict, List

from ..errors import BTFError

# Extra 32-bit words after the 3-word common header, per kind: (fixed, per vlen item).
EXTRA_WORDS = {
    1: (1, 0),  # INT
    2: (0, 0),  # PTR
    3: (3, 0),  # ARRAY
    4: (0, 3),  # STRUCT
    5: (0, 3),  # UNION
    6: (0, 2),  # ENUM
    7: (0, 0),  # FWD
    8: (0, 0),  # TYPEDEF
    9: (0, 0),  # VOLATILE
    10: (0, 0),  # CONST
    11: (0, 0),  # RESTRICT
    12: (0, 0),  # FUNC (vlen is the linkage)
    13: (0, 2),  # FUNC_PROTO
    14: (1, 0),  # VAR
    15: (0, 3),  # DATASEC
    16: (0, 0),  # FLOAT
    17: (1, 0),  # DECL_TAG
    18: (0, 0),  # TYPE_TAG
    19: (0, 3),  # ENUM64
}
FIXED: List[int] = [0] * 32
PER_ITEM: List[int] = [-1] * 32  # -1: not a valid kind
for _k, (_f, _p) in EXTRA_WORDS.items():
    FIXED[_k] = _f
    PER_ITEM[_k] = _p


def record_words(info: int) -> int:
    """Length in 32-bit words of a type record whose info word is ``info``."""
    kind = (info >> 24) & 0x1F
    per = PER_ITEM[kind]
    if per < 0:
        raise BTFError(f"unknown BTF kind {kind}")
    return 3 + FIXED[kind] + per * (info & 0xFFFF)


def _seed() -> Dict[int, int]:
    steps: Dict[int, int] = {}
    for kind, (fixed, per) in EXTRA_WORDS.items():
        for kflag in (0, 1 << 31):
            for vlen in range(32 if (per or kind == 12) else 1):
                steps[(kind << 24) | kflag | vlen] = 3 + fixed + per * vlen
    return steps


_SEED = _seed()


def walk(words: "array[int]") -> "array[int]":
    """Word offset of every type record in ``words`` (the type section).

    Raises BTFError for an unknown kind or a record that runs past the end.
    """
    offsets = array("I")
    if not words:
        return offsets
    add, pop = offsets.append, offsets.pop
    steps = dict(_SEED)
    w = words
    i = 0
    while True:
        try:
            while True:  # unrolled: the bound is checked by IndexError on w[i + 1]
                add(i)
                i += steps[w[i + 1]]
                add(i)
                i += steps[w[i + 1]]
                add(i)
                i += steps[w[i + 1]]
                add(i)
                i += steps[w[i + 1]]
                add(i)
                i += steps[w[i + 1]]
                add(i)
                i += steps[w[i + 1]]
                add(i)
                i += steps[w[i + 1]]
                add(i)
                i += steps[w[i + 1]]
        except KeyError as e:
            info = e.args[0]
            try:
                steps[info] = record_words(info)
            except BTFError:
                raise BTFError(f"unknown BTF kind {(info >> 24) & 0x1F} at type id +{len(offsets)}") from None
            pop()  # the current record is added again when the loop resumes
        except IndexError:
            end = pop()
            if end != len(w):
                raise BTFError(f"truncated BTF type record (type id +{len(offsets)})") from None
            return offsets


def names_of(words: "array[int]", offsets: "array[int]") -> "array[int]":
    """The name offset of every record (gathered at C speed)."""
    return array("I", map(words.__getitem__, offsets))
