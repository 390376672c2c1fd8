#!/usr/bin/env python3
"""Map operation speed: the public API next to the pure-Python floor, in one run.

    sudo python3 benchmarks/bench_maps.py [--entries 100000] [--rounds 5]

- floor: a bare ctypes loop calling syscall(__NR_bpf) with prebuilt attr
  buffers (the key packed into a preallocated buffer, the value read back as
  bytes) — as fast as pure Python gets;
- api: Map.lookup / Map.update with bytes keys, and with int keys;
- dump: the whole map into a dict with Map.dump() (batch lookup), next to
  the raw batch syscalls alone.

Figures are ops/s (best of --rounds); ratios are what to compare.
"""

from __future__ import annotations

import argparse
import ctypes
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pybpfload import Map, MapType  # noqa: E402
from pybpfload.syscall._raw import NR_BPF, syscall  # noqa: E402
from pybpfload.syscall._types import Cmd, MapBatchAttr, MapElemAttr  # noqa: E402


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n = args.entries

    m = Map.create(MapType.BPF_MAP_TYPE_HASH, 4, 8, n, name="bench")
    keys_b = [struct.pack("I", i) for i in range(n)]
    vals_b = [struct.pack("Q", i * 3) for i in range(n)]
    m.update_batch(keys_b, vals_b)
    fd = m.fileno()

    # ---- floor: prebuilt attr, pack_into the key, syscall, read the value
    kbuf = ctypes.create_string_buffer(4)
    vbuf = ctypes.create_string_buffer(8)
    attr = MapElemAttr(map_fd=fd, key=ctypes.addressof(kbuf), value=ctypes.addressof(vbuf))
    ref = ctypes.byref(attr)
    size = ctypes.sizeof(attr)
    pack_into = struct.Struct("I").pack_into
    lookup, update = int(Cmd.BPF_MAP_LOOKUP_ELEM), int(Cmd.BPF_MAP_UPDATE_ELEM)

    def floor_lookup() -> None:
        for i in range(n):
            pack_into(kbuf, 0, i)
            if syscall(NR_BPF, lookup, ref, size) < 0:
                raise OSError(ctypes.get_errno(), "lookup")
            vbuf.raw  # noqa: B018 - reading the value is the measured work

    def floor_update() -> None:
        for i in range(n):
            pack_into(kbuf, 0, i)
            vbuf.raw = vals_b[i]
            if syscall(NR_BPF, update, ref, size) < 0:
                raise OSError(ctypes.get_errno(), "update")

    def api_lookup_bytes() -> None:
        get = m.lookup
        for k in keys_b:
            get(k)

    def api_lookup_int() -> None:
        get = m.lookup
        for i in range(n):
            get(i)

    def api_getitem() -> None:
        for k in keys_b:
            m[k]

    def api_update_bytes() -> None:
        up = m.update
        for k, v in zip(keys_b, vals_b):
            up(k, v)

    def api_update_int() -> None:
        up = m.update
        for i in range(n):
            up(i, i)

    # ---- dump: raw batch syscalls only vs Map.dump()
    chunk = 4096
    bk = ctypes.create_string_buffer(4 * chunk)
    bv = ctypes.create_string_buffer(8 * chunk)
    tin = ctypes.create_string_buffer(8)
    tout = ctypes.create_string_buffer(8)

    def raw_batch() -> None:
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
            if r < 0:
                if ctypes.get_errno() == 2:
                    return
                raise OSError(ctypes.get_errno(), "batch")
            ctypes.memmove(tin, tout, 8)
            first = False

    def dump() -> None:
        d = m.dump()
        assert len(d) == n

    rows = []
    t_floor_l = best(floor_lookup, args.rounds)
    t_floor_u = best(floor_update, args.rounds)
    for label, fn, base in [
        ("floor lookup (bare ctypes)", floor_lookup, t_floor_l),
        ("api lookup, bytes keys", api_lookup_bytes, t_floor_l),
        ("api lookup, int keys", api_lookup_int, t_floor_l),
        ("api m[key], bytes keys", api_getitem, t_floor_l),
        ("floor update (bare ctypes)", floor_update, t_floor_u),
        ("api update, bytes", api_update_bytes, t_floor_u),
        ("api update, ints", api_update_int, t_floor_u),
    ]:
        t = t_floor_l if fn is floor_lookup else t_floor_u if fn is floor_update else best(fn, args.rounds)
        rows.append((label, n / t / 1e6, base / t))
    print(f"hash map, {n} entries, 4-byte keys, 8-byte values; best of {args.rounds}")
    print(f"{'operation':34} {'M ops/s':>8} {'vs floor':>9}")
    for label, mops, ratio in rows:
        print(f"{label:34} {mops:8.3f} {ratio:8.0%}")
    t_raw = best(raw_batch, args.rounds)
    t_dump = best(dump, args.rounds)
    print(f"{'raw batch syscalls, 100k':34} {t_raw * 1000:7.1f} ms")
    print(f"{'Map.dump() into a dict':34} {t_dump * 1000:7.1f} ms  ({t_dump / t_raw:.2f}x raw)")
    m.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
