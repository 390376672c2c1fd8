#!/usr/bin/env python3
"""Typed values from BTF: decode speed next to a hand-written struct.Struct, in one run.

    python3 benchmarks/bench_typed.py [--n 200000] [--rounds 15]            # pure part
    sudo python3 benchmarks/bench_typed.py --globals                          # also global reads via mmap

- floor: ``struct.Struct("<IiQHb").unpack(b)`` on the bytes of a 5-field struct
  (the fastest hand-written decode in pure Python);
- typed: the BTF codec of the same struct as a typed map's lookup calls it
  (``Codec.decode(buffer, 0)``: a value object with attribute access), and a
  ring/perf buffer record handed to a callback (``RingBuffer.add(...,
  type=...)``'s wrapper on a view of the record) against a raw callback that
  unpacks the record by hand — the goal is >= 50 % for both;
- globals (``--globals``, root): ``obj.bss.hits`` reads of a loaded object
  whose .bss is mmapped — the goal is >= 1 M reads/s.

The methods' trials are interleaved round-robin and the best trial of each is
kept, so both see the same machine state; the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path
from typing import Callable, Dict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpfload.btf.encode import Builder  # noqa: E402
from pybpfload.btf.spec import Spec  # noqa: E402
from pybpfload.btf.values import codec  # noqa: E402


def five_field_struct() -> Spec:
    """struct ev { u32 pid; s32 ret; u64 ts; u16 cpu; s8 prio; } — built with the BTF encoder."""
    from pybpfload.btf import types as T

    b = Builder()
    ids = [
        b.add(T.Int(0, n, size, enc, 0, size * 8))
        for n, size, enc in (
            ("unsigned int", 4, 0),
            ("int", 4, 1),
            ("unsigned long long", 8, 0),
            ("unsigned short", 2, 0),
            ("signed char", 1, 1),
        )
    ]
    names, offs = ("pid", "ret", "ts", "cpu", "prio"), (0, 32, 64, 128, 144)
    b.add(T.Struct(0, "ev", 24, tuple(T.Member(n, t, o, 0) for n, t, o in zip(names, ids, offs))))
    return b.spec()


def best(fns: Dict[str, Callable[[], None]], n: int, rounds: int) -> Dict[str, float]:
    out = {k: 0.0 for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            out[k] = max(out[k], n / (time.perf_counter() - t))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--globals", action="store_true")
    a = ap.parse_args()
    spec = five_field_struct()
    c = codec(spec, spec.find_id("ev"))
    raw = struct.pack("<IiQHb", 1, -2, 3, 4, -5).ljust(24, b"\0")
    hand = struct.Struct("<IiQHbxxxxx").unpack
    dec = c.decode  # what a typed map's lookup calls on its value buffer
    from pybpfload.events.typedrec import record_decoder

    ev = record_decoder(None, "struct ev", btf=spec)  # what a typed ring / perf buffer callback gets
    rec = memoryview(raw)  # records arrive as views of the ring
    rng = range(a.n)
    for v in (dec(raw), ev(rec)):
        assert (v.pid, v.ret, v.ts, v.cpu, v.prio) == (1, -2, 3, 4, -5)

    def floor() -> None:
        for _ in rng:
            hand(raw)

    def typed() -> None:
        for _ in rng:
            dec(raw)

    from pybpfload.events.typedrec import ring_callback

    def user(x: object) -> None:
        pass

    raw_cb = lambda r: user(hand(r))  # noqa: E731 - a raw ring callback unpacking its record by hand
    typed_cb = ring_callback(None, "struct ev", spec, user)  # what RingBuffer.add(..., type=) installs

    def floor_ev() -> None:
        for _ in rng:
            raw_cb(rec)

    def typed_ev() -> None:
        for _ in rng:
            typed_cb(rec)

    fns: Dict[str, Callable[[], None]] = {
        "struct.unpack": floor,
        "typed": typed,
        "event, hand-unpacked": floor_ev,
        "event, typed": typed_ev,
    }
    if a.globals:
        from pybpfload import Object

        obj = Object.open(ROOT / "fixtures" / "global_data.bpf.o").load()
        bss = obj.bss

        def glob() -> None:
            for _ in rng:
                _ = bss.hits

        fns["obj.bss.hits (mmap)"] = glob
    r = best(fns, a.n, a.rounds)
    for k, rate in r.items():
        print(f"{k:24s} {rate / 1e6:7.2f} M/s")
    print(f"typed / struct.unpack    {r['typed'] / r['struct.unpack']:7.1%}   (map values; goal >= 50 %)")
    print(f"typed / hand, events     {r['event, typed'] / r['event, hand-unpacked']:7.1%}   (a record to a callback; goal >= 50 %)")


if __name__ == "__main__":
    main()
