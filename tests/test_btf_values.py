"""Typed values from BTF (pybpfload.btf.values) against the C compiler.

ORACLE: the structs of fixtures/src/btf_kinds.bpf.c compiled for the host
(same layout as BPF on x86-64/arm64) fill a value from a byte pattern and
print its members; the codec must decode the same numbers from the same bytes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest

from pybpfload.btf.values import CString, Value, codec, to_json
from pybpfload.errors import BPFError
from pybpfload.object import Object

from .conftest import fixture_path

SRC = Path(__file__).resolve().parent.parent / "fixtures" / "src" / "btf_kinds.bpf.c"

ORACLE_MAIN = r"""
#include <stdio.h>
#include <string.h>
int main(void) {
    static unsigned char raw[sizeof(struct all)];
    for (unsigned i = 0; i < sizeof raw; i++) raw[i] = (unsigned char)(i * 37 + 11);
    struct all v;
    memcpy(&v, raw, sizeof v);
    printf("{\"size\": %zu, \"a\": %u, \"b\": %u, \"c\": %d, \"d\": %llu, \"e\": %u, \"f\": %d, \"g\": %u,",
           sizeof v, v.bits.a, v.bits.b, v.bits.c, (unsigned long long)v.bits.d, v.bits.e, v.bits.f, v.bits.g);
    printf("\"pc\": %d, \"pi\": %d, \"pl\": %lld, \"ai\": %d, \"al\": %lld, \"atail\": %d,",
           v.packed.c, v.packed.i, v.packed.l, v.aligned.i, v.aligned.l, v.aligned.tail);
    printf("\"as_int\": %d, \"lo\": %d, \"hi\": %d, \"name0\": %d, \"m21\": %d, \"ptx\": %d,",
           v.nested.as_int, v.nested.halves.lo, v.nested.halves.hi, v.nested.inner.name[0], v.nested.matrix[2][1], v.pt.x);
    printf("\"sc\": %d, \"uc\": %u, \"s\": %d, \"us\": %u, \"l\": %ld, \"ul\": %lu, \"small\": %u,",
           v.sc, v.uc, v.s, v.us, v.l, v.ul, (unsigned)v.small);
    printf("\"i128_lo\": %llu, \"i128_hi\": %lld, \"u128_hi\": %llu, \"flt\": %.9g, \"ratio\": %.17g}\n",
           (unsigned long long)v.i128, (long long)(v.i128 >> 64), (unsigned long long)(v.u128 >> 64), v.f, v.nested.ratio);
    return 0;
}
"""


@pytest.fixture(scope="module")
def all_codec() -> Any:
    obj = Object.open(fixture_path("btf_kinds.bpf.o"))
    btf = obj.btf
    assert btf is not None
    return codec(btf, btf.find_id("all"))


def _pattern(n: int) -> bytes:
    return bytes((i * 37 + 11) & 0xFF for i in range(n))


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    cc = shutil.which("clang") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler for the oracle")
    text = SRC.read_text()
    body = text[text.index("#define __tag") : text.index("struct all all_data")]
    body = body.replace("__attribute__((btf_decl_tag(x)))", "").replace('__attribute__((btf_type_tag("user")))', "")
    # BPF's long double is 8-byte aligned, the host's 16: the zero-length array only aligns
    body = body.replace("long double ld_unused[0];", "double ld_unused[0];")
    d = tmp_path_factory.mktemp("values_oracle")
    (d / "o.c").write_text(body + ORACLE_MAIN)
    subprocess.run([cc, "-O0", "-w", "-o", str(d / "o"), str(d / "o.c")], check=True)
    return json.loads(subprocess.run([str(d / "o")], check=True, capture_output=True, text=True).stdout)


def test_decode_matches_the_compiler(all_codec: Any, oracle: Dict[str, Any]) -> None:
    assert all_codec.size == oracle["size"]
    v = all_codec.unpack(_pattern(all_codec.size))
    got = {
        "a": v.bits.a, "b": v.bits.b, "c": v.bits.c, "d": v.bits.d, "e": v.bits.e, "f": v.bits.f, "g": v.bits.g,
        "pc": v.packed.c, "pi": v.packed.i, "pl": v.packed.l, "ai": v.aligned.i, "al": v.aligned.l, "atail": v.aligned.tail,
        "as_int": v.nested.as_int, "lo": v.nested.halves.lo, "hi": v.nested.halves.hi,
        "name0": v.nested.inner.name.raw[0] - 256 if v.nested.inner.name.raw[0] > 127 else v.nested.inner.name.raw[0],
        "m21": v.nested.matrix[2][1], "ptx": v.pt.x,
        "sc": v.sc, "uc": v.uc, "s": v.s, "us": v.us, "l": v.l, "ul": v.ul, "small": v.small,
        "i128_lo": v.i128 & (2**64 - 1), "i128_hi": v.i128 >> 64, "u128_hi": v.u128 >> 64,
    }  # fmt: skip
    for k, want in got.items():
        assert want == oracle[k], k
    assert v.f == pytest.approx(oracle["flt"], rel=1e-6)
    assert v.nested.ratio == pytest.approx(oracle["ratio"], rel=1e-15)


def test_round_trip_keeps_every_byte(all_codec: Any) -> None:
    raw = _pattern(all_codec.size)
    v = all_codec.unpack(raw)
    again = all_codec.pack(v, base=raw)
    # a value object of the type is its bytes: nothing normalised, padding and _Bool kept
    assert [i for i in range(len(raw)) if raw[i] != again[i]] == []
    assert all_codec.pack(v._asdict(), base=bytes(len(raw))) != raw  # a dict is re-encoded: _Bool normalised, padding zero
    assert all_codec.unpack(again) == v


def test_value_objects(all_codec: Any) -> None:
    v = all_codec.unpack(all_codec.pack({"pt": {"x": 3, "y": -4}, "color": "GREEN", "nested": {"inner": {"name": "abc"}}}))
    assert isinstance(v, Value) and v.pt.x == 3 and v.pt.y == -4
    assert v.pt == {"x": 3, "y": -4}
    assert v.color == 5 and v.color.name == "GREEN" and repr(v.color) == "<color.GREEN: 5>"
    assert type(v.color).GREEN == 5
    name = v.nested.inner.name
    assert isinstance(name, CString) and name == b"abc" and name.raw == b"abc" + bytes(5)
    # members of the anonymous union are reached directly, as in C
    assert v.nested.as_int == 0 and "as_int" in v.nested._fields
    d = v._asdict()
    assert d["pt"] == {"x": 3, "y": -4} and d["nested"]["halves"] == {"lo": 0, "hi": 0}
    js = json.loads(json.dumps(to_json(v)))
    assert js["color"] == "GREEN" and js["nested"]["inner"]["name"] == "abc"
    assert repr(v.pt) == "(anon)(x=3, y=-4)" or "x=3, y=-4" in repr(v.pt)
    w = all_codec.unpack(bytes(v))
    assert w == v and not (w != v)
    w.pt.x = 9
    assert w != v


def test_union_member_written_alone(all_codec: Any) -> None:
    v = all_codec.unpack(all_codec.pack({"nested": {"as_int": 0x00020001}}))
    assert (v.nested.halves.lo, v.nested.halves.hi) == (1, 2)
    v.nested.halves.hi = 7
    w = all_codec.unpack(all_codec.pack(v))
    assert w.nested.as_int == 0x00070001


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"bits": {"a": 8}}, "struct all.bits.a"),
        ({"bits": {"c": -65}}, "struct all.bits.c"),
        ({"u": -1}, "struct all.u"),
        ({"pt": {"x": 2**40}}, "struct all.pt.x"),
        ({"u128": 2**128}, "struct all.u128"),
        ({"nope": 1}, "struct all.nope"),
        ({"nested": {"inner": {"name": b"123456789"}}}, "struct all.nested.inner.name"),
        ({"color": "PURPLE"}, "struct all.color"),
        ({"nested": {"matrix": [[1, 2, 3, 4, 5]]}}, "struct all.nested.matrix[0]"),
    ],
)
def test_values_that_do_not_fit_name_the_member(all_codec: Any, bad: Dict[str, Any], where: str) -> None:
    base = _pattern(all_codec.size)
    with pytest.raises(BPFError, match="^" + re.escape(where)):
        all_codec.pack(bad, base=base)


def test_dict_changes_only_what_it_names(all_codec: Any) -> None:
    base = _pattern(all_codec.size)
    after = all_codec.unpack(all_codec.pack({"bits": {"g": 1}, "i128": -(2**100)}, base=base))
    before = all_codec.unpack(base)
    assert after.bits.g == 1 and after.i128 == -(2**100)
    assert after.bits.a == before.bits.a and after.bits.d == before.bits.d and after.nested == before.nested


def test_codec_is_compiled_once(all_codec: Any) -> None:
    obj = Object.open(fixture_path("btf_kinds.bpf.o"))
    btf = obj.btf
    assert codec(btf, btf.find_id("all")) is codec(btf, btf.find_id("all"))


def test_bytes_of_the_wrong_size_refused(all_codec: Any) -> None:
    with pytest.raises(BPFError, match="3 bytes given"):
        all_codec.pack(b"abc")


def test_flat_struct_fast_path_checks_the_size() -> None:
    from pybpfload.btf import types as T
    from pybpfload.btf.encode import Builder

    b = Builder()
    u32 = b.add(T.Int(0, "unsigned int", 4, 0, 0, 32))
    s8 = b.add(T.Int(0, "signed char", 1, 1, 0, 8))
    b.add(T.Struct(0, "ev", 8, (T.Member("pid", u32, 0, 0), T.Member("prio", s8, 32, 0))))
    spec = b.spec()
    c = codec(spec, spec.find_id("ev"))
    assert c.unpack(b"\x01\0\0\0\xff\0\0\0") == {"pid": 1, "prio": -1}
    assert c.unpack(b"\x01\0\0\0\xff\0\0\0extra").pid == 1
    with pytest.raises(BPFError, match="3 bytes"):
        c.unpack(b"abc")


def test_member_names_python_cannot_spell() -> None:
    from pybpfload.btf import types as T
    from pybpfload.btf.encode import Builder

    b = Builder()
    u32 = b.add(T.Int(0, "unsigned int", 4, 0, 0, 32))
    b.add(T.Struct(0, "s", 8, (T.Member("__pad", u32, 0, 0), T.Member("from", u32, 32, 0))))
    spec = b.spec()
    c = codec(spec, spec.find_id("s"))
    v = c.unpack(c.pack({"from": 5, "__pad": 1}))
    assert getattr(v, "from") == 5 and getattr(v, "__pad") == 1
    assert v._asdict() == {"__pad": 1, "from": 5} and to_json(v) == {"__pad": 1, "from": 5}


def test_enum64_bool_float_and_128_bit() -> None:
    # clang 14 has no ENUM64 (it truncates BF_HIGH to 32 bits): the clang 19 build
    obj = Object.open(fixture_path("btf_kinds.clang19.bpf.o"))
    btf = obj.btf
    assert btf is not None
    all_codec = codec(btf, btf.find_id("all"))
    v = all_codec.unpack(all_codec.pack({"flags": "BF_HIGH", "flag": True, "f": 1.5, "u128": 2**127 + 1, "i128": -(2**127)}))
    assert v.flags == 0x8000000000 and v.flags.name == "BF_HIGH" and type(v.flags).BF_LOW == 1
    assert v.flag is True and v.f == 1.5 and v.u128 == 2**127 + 1 and v.i128 == -(2**127)
    assert all_codec.unpack(all_codec.pack({"flags": 3})).flags.name is None  # a value the enum does not name
    js = to_json(v)
    assert js["flags"] == "BF_HIGH" and js["flag"] is True and js["u128"] == hex(2**127 + 1)
