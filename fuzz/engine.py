"""The fuzzing loop of one target in this process: atheris (libFuzzer) when installed, else a blind mutator.

With atheris, pybpfload's modules are imported under
``atheris.instrument_imports`` so libFuzzer sees which branches each input
reaches and keeps the inputs that reach new ones (the working corpus, under
``--workdir``, grows across runs; the committed seeds are read-only).
Without it, :func:`blind` mutates seeds and corpus entries at random — no
coverage feedback, same crash handling.

Either way each input goes through :func:`fuzz.harness.run_one`; a crash is
saved under ``fuzz/regressions/<target>/`` and reported in the stats file
(``new`` unless :mod:`fuzz.known` lists it).
"""

from __future__ import annotations

import json
import os
import random
import struct
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

MAX_LEN = 65536


class Stats:
    def __init__(self, target: str, path: Path, engine: str) -> None:
        self.path = path
        self.data: Dict[str, Any] = {
            "target": target,
            "engine": engine,
            "execs": 0,
            "ok": 0,
            "error": 0,
            "crash": 0,
            "seconds": 0.0,
            "crashes": [],
        }
        self.t0 = time.monotonic()
        self.last = 0.0

    def add(self, status: str) -> None:
        d = self.data
        d["execs"] += 1
        d[status] += 1
        now = time.monotonic()
        if now - self.last > 2.0:
            self.write(now)

    def write(self, now: float = 0.0) -> None:
        now = now or time.monotonic()
        self.last = now
        self.data["seconds"] = now - self.t0
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)


def _import_all() -> None:
    import importlib
    import pkgutil

    import pybpfload

    for m in pkgutil.walk_packages(pybpfload.__path__, "pybpfload."):
        if m.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(m.name)
        except Exception as e:  # a module that does not import (half-written, optional dependency) is not a target
            sys.stderr.write(f"fuzz: not instrumenting {m.name}: {type(e).__name__}: {e}\n")


def _make_test_one(target: str, stats: Stats, timeout: float) -> Callable[[bytes], None]:
    from . import harness
    from .targets import target as get_target

    fn = get_target(target)
    seen: set = set()

    def test_one(data: bytes) -> None:
        out = harness.run_one(fn, data, timeout)
        stats.add(out.status)
        if out.status != "crash":
            return
        sig = out.signature
        path, saved = harness.save_crash(target, data, out)
        if sig in seen:
            return
        seen.add(sig)
        entry = {
            "signature": sig,
            "known": out.known.key if out.known is not None else None,
            "path": str(path),
            "saved": saved,
            "summary": out.summary(),
        }
        stats.data["crashes"].append(entry)
        stats.write()
        harness._stderr(harness.describe_crash(target, path, out))
        if out.known is None:
            harness._stderr(out.traceback)

    return test_one


def run_atheris(target: str, seconds: int, workdir: Path, timeout: float, mem_mb: int, stats_path: Path) -> None:
    import atheris  # type: ignore[import-untyped]

    with atheris.instrument_imports(include=["pybpfload"]):
        _import_all()
    from . import SEEDS, harness

    corpus = workdir / "corpus" / target
    artifacts = workdir / "artifacts" / target
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    stats = Stats(target, stats_path, "atheris")
    test_one = _make_test_one(target, stats, timeout)
    harness.limit_memory(mem_mb)
    import atexit

    atexit.register(stats.write)
    args = [
        sys.argv[0],
        str(corpus),
        str(SEEDS[target]),
        f"-max_total_time={seconds}",
        "-timeout=60",  # wall-clock backstop for hangs in C code; Python-level hangs are caught per input
        f"-max_len={MAX_LEN}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
    ]
    mutator = structured_mutator(target, lambda d, n: atheris.Mutate(d, n))  # looked up late: Setup() rebinds it
    if mutator is not None:
        atheris.Setup(args, test_one, custom_mutator=mutator)
    else:
        atheris.Setup(args, test_one)
    atheris.Fuzz()


# ------------------------------------------------------------------ structure-aware mutation
_BTF_HDR = struct.Struct("<HBBIIIII")
_EXT_HDR = struct.Struct("<HBBI")


def _mutate_btf(data: bytes, rng: random.Random, mut: Callable[[bytes, int], bytes], max_size: int) -> Optional[bytes]:
    """Mutate the type or the string section of a raw BTF blob and write a header that matches (None: not one)."""
    if len(data) < _BTF_HDR.size:
        return None
    magic, ver, flags, hdr_len, toff, tlen, soff, slen = _BTF_HDR.unpack_from(data)
    if magic != 0xEB9F or hdr_len != _BTF_HDR.size or hdr_len + max(toff + tlen, soff + slen) > len(data):
        return None
    types = data[hdr_len + toff : hdr_len + toff + tlen]
    strings = data[hdr_len + soff : hdr_len + soff + slen]
    room = max(0, max_size - hdr_len - len(types) - len(strings))
    if rng.random() < 0.75:
        types = mut(types, len(types) + room)
        if rng.random() < 0.8:  # usually keep whole 4-byte words
            types = types[: len(types) & ~3]
    else:
        strings = mut(strings, len(strings) + room)
        if rng.random() < 0.8:
            strings = b"\0" + strings.lstrip(b"\0")[: max(0, len(strings) - 1)].rstrip(b"\0") + b"\0"
    hdr = _BTF_HDR.pack(magic, ver, flags, hdr_len, 0, len(types), len(types), len(strings))
    return (hdr + types + strings)[:max_size]


def _mutate_ext(data: bytes, rng: random.Random, mut: Callable[[bytes, int], bytes], max_size: int) -> Optional[bytes]:
    """Mutate one of the func_info / line_info / core_relo sections of a .BTF.ext, offsets and lengths kept consistent."""
    if len(data) < _EXT_HDR.size + 24:
        return None
    magic, ver, flags, hdr_len = _EXT_HDR.unpack_from(data)
    if magic != 0xEB9F or hdr_len not in (24, 32) or hdr_len > len(data):
        return None
    n = (hdr_len - _EXT_HDR.size) // 8
    secs = [struct.unpack_from("<II", data, _EXT_HDR.size + 8 * i) for i in range(n)]
    parts = []
    for off, ln in secs:
        if hdr_len + off + ln > len(data):
            return None
        parts.append(data[hdr_len + off : hdr_len + off + ln])
    i = rng.randrange(n)
    room = max(0, max_size - len(data))
    parts[i] = mut(parts[i], len(parts[i]) + room)
    head = bytearray(data[:hdr_len])
    pos = 0
    for j, part in enumerate(parts):
        struct.pack_into("<II", head, _EXT_HDR.size + 8 * j, pos, len(part))
        pos += len(part)
    return (bytes(head) + b"".join(parts))[:max_size]


def _mutate_elf(data: bytes, rng: random.Random, mut: Callable[[bytes, int], bytes], max_size: int) -> Optional[bytes]:
    """Mutate the contents of one section of an ELF object in place (same size: every header stays valid)."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    if shentsize != 64 or not 0 < shnum < 4096 or shoff + shnum * 64 > len(data):
        return None
    spans = []
    for i in range(1, shnum):
        sh_type, = struct.unpack_from("<I", data, shoff + i * 64 + 4)
        off, size = struct.unpack_from("<QQ", data, shoff + i * 64 + 0x18)
        if sh_type != 8 and 0 < size and off + size <= len(data):  # not NOBITS
            spans.append((off, size))
    if not spans:
        return None
    off, size = rng.choice(spans)
    part = mut(data[off : off + size], size)[:size].ljust(size, b"\0")
    return data[:off] + part + data[off + size :]


def structured_mutator(target: str, mutate_bytes: Callable[[bytes, int], bytes]) -> Optional[Callable[[bytes, int, int], bytes]]:
    """A libFuzzer custom mutator for the targets whose input has a header worth keeping consistent.

    Half the time (and whenever the input does not parse as one) it is
    libFuzzer's own byte-level mutation; otherwise one section is mutated
    and the header rewritten to match (BTF, .BTF.ext), or one ELF section's
    contents are mutated in place, so the mutation reaches the type, string,
    record, instruction and relocation decoders instead of the header checks.
    """
    prefix = 1 if target in ("core", "btf_ext") else 0
    if target in ("btf", "core"):
        structured = _mutate_btf
    elif target == "btf_ext":
        structured = _mutate_ext
    elif target in ("elf", "prepare"):
        structured = _mutate_elf
    else:
        return None

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5 and len(data) > prefix:
            body = structured(data[prefix:], rng, mutate_bytes, max_size - prefix)
            if body is not None:
                head = data[:prefix]
                if prefix and rng.random() < 0.1:
                    head = bytes([rng.randrange(256)])
                return head + body
        return mutate_bytes(data, max_size)

    return mutator


# ------------------------------------------------------------------ blind mutator
_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x10000)


def mutate(data: bytes, rng: random.Random, pool: List[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        op = rng.randrange(7)
        if not b:
            b += bytes(rng.randrange(1, 16))
            continue
        i = rng.randrange(len(b))
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i] = rng.randrange(256)
        elif op == 2 and len(b) >= 4:
            i = rng.randrange(0, len(b) - 3) & ~3
            struct.pack_into("<I", b, i, rng.choice(_INTERESTING))
        elif op == 3:
            del b[i : i + rng.randrange(1, 64)]
        elif op == 4:
            j = rng.randrange(len(b))
            n = rng.randrange(1, 64)
            b[i:i] = b[j : j + n]
        elif op == 5 and pool:
            other = rng.choice(pool)
            if other:
                j = rng.randrange(len(other))
                b[i:] = other[j : j + len(b) - i]
        else:
            v = struct.unpack("<I", bytes(b[i : i + 4]).ljust(4, b"\0"))[0]
            b[i : i + 4] = struct.pack("<I", (v + rng.randrange(-16, 17)) & 0xFFFFFFFF)
    return bytes(b[:MAX_LEN])


def run_blind(target: str, seconds: int, workdir: Path, timeout: float, mem_mb: int, stats_path: Path, seed: int = 0) -> None:
    from . import SEEDS, harness

    stats = Stats(target, stats_path, "blind")
    test_one = _make_test_one(target, stats, timeout)
    harness.limit_memory(mem_mb)
    pool = [p.read_bytes() for p in sorted(SEEDS[target].iterdir())]
    corpus = workdir / "corpus" / target
    if corpus.is_dir():
        pool += [p.read_bytes() for p in sorted(corpus.iterdir())[:2000]]
    rng = random.Random(seed or None)
    end = time.monotonic() + seconds
    for data in pool:
        test_one(data)
    while time.monotonic() < end:
        test_one(mutate(rng.choice(pool), rng, pool))
    stats.write()
