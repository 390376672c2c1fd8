"""Per-CPU aggregation (toolkit.percpu) on PERCPU_ARRAY / PERCPU_HASH maps written from Python.

Every expected value is computed from the per-CPU lists the Map itself
decodes (``m.lookup(key)``) or from the values written, never hard-coded.
"""

from __future__ import annotations

import collections
import random
import struct

import pytest

from pybpfload import BPFError, Map, MapKeyError, MapType
from pybpfload.kernel.maps import possible_cpus
from pybpfload.toolkit import percpu

pytestmark = pytest.mark.kernel

NCPU = possible_cpus()
Stats = collections.namedtuple("Stats", "packets bytes drops")


def _rand(rng: random.Random, bits: int) -> int:
    return rng.randrange(1 << bits)


@pytest.mark.parametrize("mtype", ["PERCPU_ARRAY", "PERCPU_HASH", "LRU_PERCPU_HASH"])
@pytest.mark.parametrize("value_size", [8, 4, 2])
def test_integers(mtype: str, value_size: int) -> None:
    rng = random.Random(value_size)
    with Map.create(getattr(MapType, f"BPF_MAP_TYPE_{mtype}"), 4, value_size, 16, name="cnt") as m:
        written = {}
        for k in range(0, 16, 3):
            written[k] = [_rand(rng, 8 * value_size) for _ in range(NCPU)]
            m[k] = written[k]
        for k, vals in written.items():
            assert [int.from_bytes(b, "little") for b in m.lookup(k)] == vals  # the Map agrees on what is there
            assert percpu.percpu_sum(m, k) == sum(vals)
            assert percpu.percpu_max(m, k) == max(vals)
            assert percpu.percpu_min(m, k) == min(vals)
            assert percpu.percpu_avg(m, k) == sum(vals) / NCPU
            assert percpu.percpu_values(m, k) == vals
        sums = percpu.percpu_sum_all(m)
        m.key_format = "I"
        expect = {k: sum(int.from_bytes(b, "little") for b in v) for k, v in m.items()}
        assert {int.from_bytes(k, "little"): v for k, v in sums.items()} == expect
        assert percpu.percpu_max_all(m) == {k: max(int.from_bytes(b, "little") for b in v) for k, v in m.items()}
        assert percpu.percpu_avg_all(m) == {k: v / NCPU for k, v in expect.items()}


def test_signed_values_and_the_maps_value_format() -> None:
    with Map.create(MapType.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 2, name="deltas", value_format="q") as m:
        vals = [(-1) ** c * (c + 5) for c in range(NCPU)]
        m[1] = vals
        assert m[1] == vals
        assert percpu.percpu_sum(m, 1) == sum(vals) and percpu.percpu_min(m, 1) == min(vals)
        assert percpu.percpu_sum(m, 1, value_format="Q") == sum(v % (1 << 64) for v in vals)  # an explicit format wins
        assert percpu.percpu_sum(m, 0) == 0


@pytest.mark.parametrize("fmt", ["QQI", "=QQI", "<QQI", ">QQI", "IQQ", "=I4xQQ"])
def test_structs_field_by_field(fmt: str) -> None:
    rng = random.Random(fmt)
    size = struct.calcsize(fmt)
    with Map.create(MapType.BPF_MAP_TYPE_PERCPU_HASH, 8, size, 64, name="stats", value_format=fmt) as m:
        for k in range(20):
            m[k] = [(rng.randrange(1 << 32), rng.randrange(1 << 40), rng.randrange(1 << 31)) for _ in range(NCPU)]
        m.key_format = "Q"
        for k, per_cpu in m.items():  # the Map decodes every CPU's struct: the reference
            cols = list(zip(*per_cpu))
            assert percpu.percpu_sum(m, k) == tuple(sum(c) for c in cols)
            assert percpu.percpu_max(m, k, as_type=Stats) == Stats(*(max(c) for c in cols))
            avg = percpu.percpu_avg(m, k, as_type=Stats)
            assert isinstance(avg, Stats) and avg == Stats(*(sum(c) / NCPU for c in cols))
        sums = percpu.percpu_sum_all(m, as_type=Stats)
        assert sums == {k: Stats(*(sum(c) for c in zip(*v))) for k, v in m.items()}


def test_big_endian_and_unaligned_fields_take_the_slow_path() -> None:
    rng = random.Random(3)
    with Map.create(MapType.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 9, 1, name="packed") as m:
        per_cpu = [(rng.randrange(256), rng.randrange(1 << 64)) for _ in range(NCPU)]
        m[0] = [struct.pack("=BQ", *v) for v in per_cpu]
        assert percpu.percpu_sum(m, 0, value_format="=BQ") == (sum(v[0] for v in per_cpu), sum(v[1] for v in per_cpu))
        assert percpu.percpu_sum(m, 0, value_format="=B8x") == sum(v[0] for v in per_cpu)


def test_refusals() -> None:
    with Map.create(MapType.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 16, 1, name="wide") as m:
        with pytest.raises(BPFError, match="values are 16 bytes; give value_format="):
            percpu.percpu_sum(m, 0)
        with pytest.raises(BPFError, match="'s' .*only numbers"):
            percpu.percpu_sum(m, 0, value_format="8sQ")
        with pytest.raises(BPFError, match="is 24 bytes, values are 16"):
            percpu.percpu_sum(m, 0, value_format="QQQ")
    with Map.create(MapType.BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 4, name="sparse") as m:
        with pytest.raises(MapKeyError):
            percpu.percpu_sum(m, 7)
        with pytest.raises(KeyError):
            percpu.percpu_avg(m, 7)
        assert percpu.percpu_sum_all(m) == {}
    with Map.create(MapType.BPF_MAP_TYPE_ARRAY, 4, 8, 1, name="plain") as m:
        with pytest.raises(BPFError, match="'plain' is not a per-CPU map"):
            percpu.percpu_sum(m, 0)
    m = Map.create(MapType.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1, name="closed")
    m.close()
    with pytest.raises(BPFError):
        percpu.percpu_sum(m, 0)
