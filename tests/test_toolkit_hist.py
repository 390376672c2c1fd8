"""Histograms (toolkit.hist) against bcc's own printing code.

The oracle is Debian's python3-bpfcc: its ``bcc.table`` runs under the system
Python (/usr/bin/python3, where libbcc is) in one subprocess per test; its
``_print_log2_hist`` / ``_print_linear_hist`` print lists of counts, and its
``TableBase.print_log2_hist`` / ``print_linear_hist`` run on a stub table
(ctypes keys and values, as bcc's own tables hand them) for the keyed forms.
Outputs must be byte-identical.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from typing import Any, Dict, List

import pytest

import pybpfload
from pybpfload import BPFError, Map, MapType
from pybpfload.kernel.maps import possible_cpus
from pybpfload.toolkit.hist import Histogram, format_linear_hist, format_log2_hist, linear_hist, log2_hist

SYS_PY = "/usr/bin/python3"
BCC_DIR = "/usr/lib/python3/dist-packages"

# Runs under the system Python: reads a JSON list of cases, prints a JSON list of outputs.
ORACLE = r'''
import contextlib, ctypes as ct, io, json, sys
sys.path.insert(0, %(bcc_dir)r)
import bcc.table as T

SECTION_PRINT = {"pid": lambda b: "pid %%d" %% b, None: None}
BUCKET_FN = {"x10": lambda b: b * 10, None: None}
SORT_FN = {"sorted": sorted, "reversed": lambda l: sorted(l, reverse=True), None: None}

class Key(ct.Structure):
    _fields_ = [("section", ct.c_uint32), ("slot", ct.c_uint64)]

class Stub:
    decode_c_struct = T.TableBase.decode_c_struct

    def __init__(self, items, keyed):
        self.Key = Key if keyed else ct.c_uint64
        self._items = items
    def items(self):
        for k, v in self._items:
            key = Key(k[0], k[1]) if isinstance(k, list) else ct.c_uint64(k)
            yield key, ct.c_uint64(v)

out = []
for case in json.load(sys.stdin):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        kind = case["kind"]
        if "vals" in case:
            fn = T._print_log2_hist if kind == "log2" else T._print_linear_hist
            fn(case["vals"], case["val_type"], case["strip"])
        else:
            fn = T.TableBase.print_log2_hist if kind == "log2" else T.TableBase.print_linear_hist
            fn(Stub(case["items"], case["keyed"]), val_type=case["val_type"], section_header=case["section_header"],
               section_print_fn=SECTION_PRINT[case["section_print"]], bucket_fn=BUCKET_FN[case["bucket_fn"]],
               strip_leading_zero=case["strip"], bucket_sort_fn=SORT_FN[case["sort"]])
    out.append(buf.getvalue())
json.dump(out, sys.stdout)
''' % {"bcc_dir": BCC_DIR}

SECTION_PRINT = {"pid": lambda b: "pid %d" % b, None: None}
BUCKET_FN = {"x10": lambda b: b * 10, None: None}
SORT_FN = {"sorted": sorted, "reversed": lambda lst: sorted(lst, reverse=True), None: None}


def bcc_outputs(cases: List[Dict[str, Any]]) -> List[str]:
    if not os.path.exists(os.path.join(BCC_DIR, "bcc", "table.py")) or not os.path.exists(SYS_PY):
        pytest.skip("the oracle (Debian's python3-bpfcc) is not installed")
    r = subprocess.run([SYS_PY, "-c", ORACLE], input=json.dumps(cases), capture_output=True, text=True)
    if r.returncode != 0 and ("libbcc" in r.stderr or "ModuleNotFoundError" in r.stderr):
        pytest.skip(f"bcc does not import: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out) == len(cases)
    return out


def random_counts(rng: random.Random, n: int) -> List[int]:
    shape = rng.choice(["dense", "sparse", "lead_zeros", "single", "zeros", "huge"])
    if shape == "zeros":
        return [0] * n
    if shape == "single":
        v = [0] * n
        v[rng.randrange(n)] = rng.randint(1, 1000)
        return v
    if shape == "huge":
        return [rng.choice([0, rng.randint(1, 1 << 62)]) for _ in range(n)]
    v = [rng.choice([0, 0, 0, rng.randint(1, 50)]) if shape == "sparse" else rng.randint(0, 10**6) for _ in range(n)]
    if shape == "lead_zeros":
        cut = rng.randrange(n)
        v[:cut] = [0] * cut
    return v


def ours(case: Dict[str, Any]) -> str:
    fmt = format_log2_hist if case["kind"] == "log2" else format_linear_hist
    if "vals" in case:
        return fmt(case["vals"], case["val_type"], strip_leading_zero=case["strip"])
    items = case["items"]
    vals: Dict[Any, int] = {tuple(k) if isinstance(k, list) else k: v for k, v in items}
    return fmt(
        vals,
        val_type=case["val_type"],
        section_header=case["section_header"],
        section_print_fn=SECTION_PRINT[case["section_print"]],
        bucket_fn=BUCKET_FN[case["bucket_fn"]],
        strip_leading_zero=case["strip"],
        bucket_sort_fn=SORT_FN[case["sort"]],
    )


@pytest.mark.oracle
def test_lists_of_counts_match_bcc() -> None:
    rng = random.Random(1919)
    cases = []
    for i in range(400):
        kind = "log2" if i % 2 else "linear"
        n = rng.choice([1, 2, 5, 20, 33, 34, 40, 65]) if kind == "log2" else rng.choice([1, 3, 10, 50, 200])
        cases.append(
            {
                "kind": kind,
                "vals": random_counts(rng, n),
                "val_type": rng.choice(["value", "usecs", "msecs", "a rather long column header here", ""]),
                "strip": rng.choice([None, False, True]),
            }
        )
    for case, expect in zip(cases, bcc_outputs(cases)):
        assert ours(case) == expect, case


def _keyed_cases(rng: random.Random, n: int) -> List[Dict[str, Any]]:
    cases = []
    for i in range(n):
        kind = "log2" if i % 2 else "linear"
        keyed = i % 4 >= 2
        hi = 65 if kind == "log2" or keyed else 120  # bcc's keyed tables have 65 slots, also linear ones
        items: List[Any] = []
        seen = set()
        for _ in range(rng.randint(0, 40)):
            slot = rng.randrange(hi if rng.random() < 0.2 else 20)
            key: Any = [rng.randrange(5), slot] if keyed else slot
            if str(key) in seen:
                continue
            seen.add(str(key))
            items.append([key, rng.randint(1, 10**5)])
        cases.append(
            {
                "kind": kind,
                "keyed": keyed,
                "items": items,
                "val_type": rng.choice(["value", "kbytes"]),
                "section_header": rng.choice(["Bucket ptr", "pid"]),
                "section_print": rng.choice([None, "pid"]),
                "bucket_fn": rng.choice([None, "x10"]),
                "sort": rng.choice([None, "sorted", "reversed"]),
                "strip": rng.choice([None, True]),
            }
        )
    return cases


@pytest.mark.oracle
def test_tables_and_sections_match_bcc() -> None:
    """bcc's table methods (sections, section_print_fn, bucket_fn, bucket_sort_fn) on the same elements."""
    cases = _keyed_cases(random.Random(19), 300)
    for case, expect in zip(cases, bcc_outputs(cases)):
        assert ours(case) == expect, case


def test_returns_the_data() -> None:
    out = io.StringIO()
    (h,) = pybpfload.print_log2_hist([0, 3, 0, 7, 1], "usecs", file=out)
    assert isinstance(h, Histogram) and h.kind == "log2" and h.section is None
    assert h.counts == [0, 3, 0, 7, 1] and h.total == 11 and h.last_slot == 4
    assert h.rows() == [(0, 1, 3), (2, 3, 0), (4, 7, 7), (8, 15, 1)]
    assert h.buckets == [(0, 1), (2, 3), (4, 7), (8, 15)]
    assert out.getvalue().splitlines()[0] == "     usecs               : count     distribution"
    assert out.getvalue() == h.format("usecs")
    (lin,) = linear_hist({3: 2, 5: 1})
    assert lin.counts == [0, 0, 0, 2, 0, 1] and lin.rows(strip_leading_zero=True) == [(3, 3, 2), (4, 4, 0), (5, 5, 1)]
    hs = log2_hist({(1, 2): 5, (0, 1): 1, (1, 3): 2}, bucket_sort_fn=sorted)
    assert [h.section for h in hs] == [0, 1] and hs[1].counts == [0, 0, 5, 2]
    assert log2_hist({"a": [0, 1], "b": [0, 0, 4]})[1] == Histogram("log2", [0, 0, 4, 0], "b")


def test_prints_to_stdout(capsys: pytest.CaptureFixture) -> None:
    pybpfload.print_linear_hist([1, 2])
    assert capsys.readouterr().out == format_linear_hist([1, 2])


def test_refusals_are_bpf_errors() -> None:
    with pytest.raises(BPFError, match="not int"):
        log2_hist(5)
    with pytest.raises(BPFError, match="a list of counts has none"):
        log2_hist([1, 2], key_format="II")
    with pytest.raises(BPFError, match="kind"):
        Histogram("cubic", [])


# ------------------------------------------------------------------ real maps

def _oracle_for(kind: str, slots: Dict[Any, int], keyed: bool, **kw: Any) -> str:
    case = {
        "kind": kind,
        "keyed": keyed,
        "items": [[list(k) if isinstance(k, tuple) else k, v] for k, v in slots.items()],
        "val_type": kw.get("val_type", "value"),
        "section_header": kw.get("section_header", "Bucket ptr"),
        "section_print": kw.get("section_print"),
        "bucket_fn": None,
        "sort": kw.get("sort"),
        "strip": kw.get("strip"),
    }
    return bcc_outputs([case])[0]


@pytest.mark.kernel
@pytest.mark.oracle
@pytest.mark.parametrize("mtype, key_size, value_size", [("ARRAY", 4, 8), ("HASH", 4, 8), ("HASH", 8, 8), ("ARRAY", 4, 4)])
def test_flat_map_matches_bcc(mtype: str, key_size: int, value_size: int) -> None:
    rng = random.Random(key_size * 10 + value_size)
    t = getattr(MapType, f"BPF_MAP_TYPE_{mtype}")
    with Map.create(t, key_size, value_size, 65, name="dist") as m:
        slots = {}
        for slot in rng.sample(range(1, 40), 12):
            slots[slot] = rng.randint(1, (1 << (8 * value_size)) - 1)
            m[slot] = slots[slot]
        if mtype == "ARRAY":  # every slot of an array is there; bcc reads the zeros too
            slots = {i: slots.get(i, 0) for i in range(65)}
        for kind in ("log2", "linear"):
            out = io.StringIO()
            fn = pybpfload.print_log2_hist if kind == "log2" else pybpfload.print_linear_hist
            (h,) = fn(m, "nsecs", strip_leading_zero=True, file=out)
            assert out.getvalue() == _oracle_for(kind, slots, False, val_type="nsecs", strip=True)
            assert h.counts[: max(slots) + 1] == [slots.get(i, 0) for i in range(max(slots) + 1)]


@pytest.mark.kernel
@pytest.mark.oracle
def test_keyed_map_matches_bcc() -> None:
    """A BPF_HISTOGRAM(dist, struct {u32 pid; u64 slot;}) as bcc's keyed histograms print it."""
    rng = random.Random(7)
    with Map.create(MapType.BPF_MAP_TYPE_HASH, 16, 8, 1024, name="dist") as m:
        slots: Dict[Any, int] = {}
        for _ in range(60):
            key = (rng.choice([100, 200, 4242]), rng.randrange(30))
            slots[key] = rng.randint(1, 10**6)
        for (pid, slot), v in slots.items():
            m[pid.to_bytes(4, sys.byteorder) + bytes(4) + slot.to_bytes(8, sys.byteorder)] = v
        # bcc prints sections in the order the map returns them: so must we
        order = [int.from_bytes(k[:4], sys.byteorder) for k in m.keys()]
        items = {}
        for k in m.keys():
            items[(int.from_bytes(k[:4], sys.byteorder), int.from_bytes(k[8:], sys.byteorder))] = 0
        for k in items:
            items[k] = slots[k]
        expect = _oracle_for("log2", items, True, section_header="PID", section_print="pid")
        got = pybpfload.print_log2_hist(m, section_header="PID", section_print_fn=lambda p: "pid %d" % p, key_format="=I4xQ", file=io.StringIO())
        assert [h.section for h in got] == list(dict.fromkeys(order))
        assert format_log2_hist(m, "value", "PID", lambda p: "pid %d" % p, key_format="=I4xQ") == expect
        # the same split by functions on the raw key, and by the map's own key_format
        by_fn = format_log2_hist(
            m,
            section_header="PID",
            section_print_fn=lambda p: "pid %d" % p,
            section_key=lambda k: int.from_bytes(k[:4], sys.byteorder),
            slot_key=lambda k: int.from_bytes(k[8:], sys.byteorder),
        )
        assert by_fn == expect
        m.key_format = "=I4xQ"
        assert format_log2_hist(m, section_header="PID", section_print_fn=lambda p: "pid %d" % p) == expect
        m.key_format = None
        expect_sorted = _oracle_for("linear", items, True, sort="sorted", strip=True)
        assert format_linear_hist(m, key_format="=I4xQ", bucket_sort_fn=sorted, strip_leading_zero=True) == expect_sorted


@pytest.mark.kernel
def test_percpu_map_is_summed_and_struct_keys_need_a_split() -> None:
    n = possible_cpus()
    with Map.create(MapType.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 65, name="pdist") as m:
        m[3] = [c + 1 for c in range(n)]
        m[5] = [7] * n
        (h,) = log2_hist(m)
        assert h.counts[3] == n * (n + 1) // 2 and h.counts[5] == 7 * n and h.total == n * (n + 1) // 2 + 7 * n
    with Map.create(MapType.BPF_MAP_TYPE_HASH, 16, 8, 8, name="kdist") as m:
        m[bytes(16)] = 1
        with pytest.raises(BPFError, match=r"keys are 16 bytes.*key_format="):
            log2_hist(m)
        with pytest.raises(BPFError, match="key_format 'II' is 8 bytes, keys are 16"):
            log2_hist(m, key_format="II")
    with Map.create(MapType.BPF_MAP_TYPE_HASH, 4, 8, 8, name="big") as m:
        m[70] = 1
        with pytest.raises(BPFError, match="slot 70 is outside a log2 histogram's 65 slots"):
            log2_hist(m)
        assert linear_hist(m)[0].counts[70] == 1


@pytest.mark.kernel
def test_empty_map_prints_nothing() -> None:
    with Map.create(MapType.BPF_MAP_TYPE_HASH, 4, 8, 8, name="empty") as m:
        out = io.StringIO()
        (h,) = pybpfload.print_log2_hist(m, file=out)
        assert out.getvalue() == "" and h.total == 0
        assert format_linear_hist(m, key_format="=HH") == ""  # keyed: no sections, nothing printed
