"""Malformed objects raise the project's ParseError (ELFError / BTFError) and nothing else.

fixtures/malformed/ is written by fixtures/make_malformed.py (one targeted
corruption per file); the fuzz test adds seeded random corruptions of every
fixture.  No input may hang, allocate wildly or escape as IndexError,
struct.error, KeyError...
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from pybpfload.errors import ParseError
from pybpfload.object import Object

from .conftest import FIXTURES

MALFORMED = sorted((FIXTURES / "malformed").glob("*.o"))
GOOD = sorted(FIXTURES.glob("*.bpf.o"))


def test_the_malformed_set_is_there() -> None:
    assert len(MALFORMED) >= 25, "run python3 fixtures/make_malformed.py"


@pytest.mark.parametrize("path", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_malformed_object_raises_parse_error(path: Path) -> None:
    data = path.read_bytes()
    with pytest.raises(ParseError) as ei:
        Object.open_mem(data, object_name="bad") if data else Object.open(path)
    assert str(ei.value)


def _open_or_parse_error(data: bytes) -> None:
    try:
        Object.open_mem(data, object_name="fuzz")
    except ParseError:
        pass


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_random_corruption_raises_only_parse_error(path: Path) -> None:
    base = path.read_bytes()
    rng = random.Random(f"pybpfload:{path.name}")
    start = time.monotonic()
    for _ in range(150):
        b = bytearray(base)
        how = rng.randrange(4)
        if how == 0:  # truncate
            b = b[: rng.randrange(len(b))]
        elif how == 1:  # flip bytes anywhere
            for _ in range(rng.randrange(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif how == 2:  # big values in the section header table
            shoff = int.from_bytes(b[0x28:0x30], "little")
            if shoff + 64 <= len(b):
                pos = shoff + rng.randrange(len(b) - shoff - 8)
                b[pos : pos + 8] = rng.choice([0xFFFFFFFFFFFFFFFF, 1 << 40, 0x7FFFFFFF, 0]).to_bytes(8, "little")
        else:  # smash a run of bytes in the second half (symbols, BTF)
            pos = rng.randrange(len(b) // 2, len(b))
            n = rng.randrange(1, 64)
            b[pos : pos + n] = bytes(rng.randrange(256) for _ in range(min(n, len(b) - pos)))
        _open_or_parse_error(bytes(b))
    assert time.monotonic() - start < 60
