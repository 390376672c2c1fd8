#!/usr/bin/env python3
"""Map operation speed: the public API next to the pure-Python floor, in one run.

    sudo python3 benchmarks/bench_maps.py [--entries 100000] [--trial 5000] [--rounds 40] [--threads 2]

- floor: a bare ctypes loop calling syscall(__NR_bpf) with prebuilt attr
  buffers (the key packed into a preallocated buffer, the value read back as
  bytes) — as fast as pure Python gets;
- api: Map.lookup / Map.update with bytes keys, and with int keys;
- threads: Map.lookup from --threads threads at once, each on its own keys
  (aggregate rate; the GIL is released during bpf(2));
- dump: the whole map into a dict with Map.dump() (batch lookup), next to
  the raw batch syscalls alone and to the floor: those syscalls and the same
  dict built the fastest pure-Python way (one precompiled struct per batch
  size splits keys and values, dict(zip())).

Every method runs in short trials of --trial operations (~10 ms), and the
trials are interleaved round-robin (floor, api..., floor, api..., ...), so
each method sees the same machine state (CPU frequency, caches, other load) as
the floor it is compared with, and the best of many short trials is one that
nothing else interrupted.  Figures are ops/s of each method's best trial;
ratios are what to compare.
"""

from __future__ import annotations

import argparse
import ctypes
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pybpfload import Map, MapType  # noqa: E402
from pybpfload.syscall._raw import NR_BPF, syscall  # noqa: E402
from pybpfload.abi.uapi import Cmd, MapBatchAttr, MapElemAttr  # noqa: E402


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(methods: Dict[str, Callable[[], None]], rounds: int) -> Dict[str, float]:
    """Best time of each method over ``rounds`` round-robin rounds (one untimed warm-up round first)."""
    for fn in methods.values():
        fn()
    best = {k: float("inf") for k in methods}
    for _ in range(rounds):
        for k, fn in methods.items():
            best[k] = min(best[k], timed(fn))
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--trial", type=int, default=5_000, help="operations per timed trial")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    n = args.entries
    t = min(args.trial, n)

    m = Map.create(MapType.BPF_MAP_TYPE_HASH, 4, 8, n, name="bench")
    keys_b = [struct.pack("I", i) for i in range(n)]
    vals_b = [struct.pack("Q", i * 3) for i in range(n)]
    m.update_batch(keys_b, vals_b)
    fd = m.fileno()
    tkeys_b, tvals_b = keys_b[:t], vals_b[:t]

    # ---- floor: prebuilt attr, pack_into the key, syscall, read the value
    kbuf = ctypes.create_string_buffer(4)
    vbuf = ctypes.create_string_buffer(8)
    attr = MapElemAttr(map_fd=fd, key=ctypes.addressof(kbuf), value=ctypes.addressof(vbuf))
    ref = ctypes.byref(attr)
    size = ctypes.sizeof(attr)
    pack_into = struct.Struct("I").pack_into
    lookup, update = int(Cmd.BPF_MAP_LOOKUP_ELEM), int(Cmd.BPF_MAP_UPDATE_ELEM)

    def floor_lookup() -> None:
        for i in range(t):
            pack_into(kbuf, 0, i)
            if syscall(NR_BPF, lookup, ref, size) < 0:
                raise OSError(ctypes.get_errno(), "lookup")
            vbuf.raw  # noqa: B018 - reading the value is the measured work

    def floor_update() -> None:
        for i in range(t):
            pack_into(kbuf, 0, i)
            vbuf.raw = tvals_b[i]
            if syscall(NR_BPF, update, ref, size) < 0:
                raise OSError(ctypes.get_errno(), "update")

    def api_lookup_bytes() -> None:
        get = m.lookup
        for k in tkeys_b:
            get(k)

    def api_lookup_int() -> None:
        get = m.lookup
        for i in range(t):
            get(i)

    def api_getitem() -> None:
        for k in tkeys_b:
            m[k]

    def api_update_bytes() -> None:
        up = m.update
        for k, v in zip(tkeys_b, tvals_b):
            up(k, v)

    def api_update_int() -> None:
        up = m.update
        for i in range(t):
            up(i, i)

    # ---- several threads, each looking up its own keys (t lookups in all)
    nthreads = max(1, args.threads)
    share = t // nthreads

    def api_lookup_threads() -> None:
        def work(lo: int) -> None:
            get = m.lookup
            for i in range(lo, lo + share):
                get(i)

        ths = [threading.Thread(target=work, args=(j * share,)) for j in range(nthreads)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()

    # ---- dump: raw batch syscalls only vs Map.dump()
    chunk = 4096
    bk = ctypes.create_string_buffer(4 * chunk)
    bv = ctypes.create_string_buffer(8 * chunk)
    tin = ctypes.create_string_buffer(8)
    tout = ctypes.create_string_buffer(8)

    def batches() -> Iterator[int]:
        """The raw BPF_MAP_LOOKUP_BATCH calls over the whole map into bk / bv: each batch's count."""
        first = True
        while True:
            a = MapBatchAttr(
                in_batch=0 if first else ctypes.addressof(tin),
                out_batch=ctypes.addressof(tout),
                keys=ctypes.addressof(bk),
                values=ctypes.addressof(bv),
                count=chunk,
                map_fd=fd,
            )
            r = syscall(NR_BPF, int(Cmd.BPF_MAP_LOOKUP_BATCH), ctypes.byref(a), ctypes.sizeof(a))
            if r < 0 and ctypes.get_errno() != 2:
                raise OSError(ctypes.get_errno(), "batch")
            yield a.count
            if r < 0:  # ENOENT: the last batch
                return
            ctypes.memmove(tin, tout, 8)
            first = False

    def raw_batch() -> None:
        for _ in batches():
            pass

    splitters: Dict[tuple, Callable] = {}

    def floor_dump() -> None:
        """The raw batch syscalls, and the dict built the fastest pure-Python way (the keys and
        values split by one precompiled struct per batch size, dict(zip()))."""
        out: Dict[bytes, bytes] = {}
        for got in batches():
            if got:
                sk = splitters.get((4, got)) or splitters.setdefault((4, got), struct.Struct("4s" * got).unpack_from)
                sv = splitters.get((8, got)) or splitters.setdefault((8, got), struct.Struct("8s" * got).unpack_from)
                out.update(zip(sk(bk), sv(bv)))
        assert len(out) == n

    def dump() -> None:
        d = m.dump()
        assert len(d) == n

    rows: List[tuple] = [
        ("floor lookup (bare ctypes)", floor_lookup, floor_lookup, t),
        ("api lookup, bytes keys", api_lookup_bytes, floor_lookup, t),
        ("api lookup, int keys", api_lookup_int, floor_lookup, t),
        ("api m[key], bytes keys", api_getitem, floor_lookup, t),
        (f"api lookup, int keys, {nthreads} threads", api_lookup_threads, floor_lookup, share * nthreads),
        ("floor update (bare ctypes)", floor_update, floor_update, t),
        ("api update, bytes", api_update_bytes, floor_update, t),
        ("api update, ints", api_update_int, floor_update, t),
    ]
    best = interleaved({label: fn for label, fn, _, _ in rows}, args.rounds)
    label_of = {fn: label for label, fn, _, _ in rows}
    print(f"hash map, {n} entries, 4-byte keys, 8-byte values; {args.rounds} interleaved rounds of {t} ops, best trial")
    print(f"{'operation':38} {'M ops/s':>8} {'vs floor':>9}")
    for label, _, base, ops in rows:
        rate = ops / best[label]
        base_rate = t / best[label_of[base]]
        print(f"{label:38} {rate / 1e6:8.3f} {rate / base_rate:8.0%}")
    bb = interleaved({"raw": raw_batch, "floor": floor_dump, "dump": dump}, max(3, args.rounds // 3))
    print(f"{'raw batch syscalls, ' + str(n):38} {bb['raw'] * 1000:7.1f} ms")
    print(f"{'floor dump (bare ctypes + dict(zip))':38} {bb['floor'] * 1000:7.1f} ms  ({bb['floor'] / bb['raw']:.2f}x raw)")
    print(f"{'Map.dump() into a dict':38} {bb['dump'] * 1000:7.1f} ms  ({bb['dump'] / bb['raw']:.2f}x raw, {bb['dump'] / bb['floor']:.2f}x the floor)")
    m.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
