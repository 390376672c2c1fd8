"""Per-CPU aggregation: sum, max, min and average over a per-CPU map's CPUs.

bcc's ``PerCpuArray.sum(key)`` / ``max`` / ``average``, for one key or the
whole map, for integers and for structs field by field::

    percpu_sum(m, key)                      # an int (the value as an unsigned integer)
    percpu_sum(m, key, value_format="QQ")   # a tuple, field by field
    percpu_avg(m, key, as_type=Stats)       # a Stats namedtuple of floats
    percpu_sum_all(m)                        # {key: sum} for every key

The value is read once into one flat buffer (every possible CPU's value,
8-byte aligned as the kernel lays them out) and each field is reduced
straight from that buffer at C speed (a strided memoryview over the field),
with no per-CPU list in between.

``value_format`` is a :mod:`struct` format for *one* CPU's value; it
defaults to the map's own ``value_format``, and without either the value is
one unsigned integer of value_size bytes (1, 2, 4 or 8).  A format's ``x``
pad bytes are skipped; ``s`` fields (bytes) are refused.  ``as_type``
(a namedtuple class, or any callable taking the fields) builds the result of
a multi-field value.  The average is the sum over the number of possible
CPUs (bcc divides by that too).  Keys are given and returned as the map
takes and gives them (ints, bytes, or tuples through its ``key_format``).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from ..errors import BPFError

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel.maps import Map
    from ._mapio import RawMap

__all__ = [
    "percpu_sum",
    "percpu_max",
    "percpu_min",
    "percpu_avg",
    "percpu_sum_all",
    "percpu_max_all",
    "percpu_min_all",
    "percpu_avg_all",
    "percpu_values",
]

_NATIVE_INT = {1: "B", 2: "H", 4: "I", 8: "Q"}
_CAST_OK = set("bBhHiIlLqQnNfd?")


class _Layout:
    """Where each field of one CPU's value sits: (offset, struct code, size), and how to reduce it."""

    def __init__(self, raw: "RawMap", value_format: Optional[str]) -> None:
        fmt = value_format if value_format is not None else raw.map.value_format
        name = raw.name
        if not raw.percpu:
            raise BPFError(f"map {name!r} is not a per-CPU map (its type is {int(raw.map.type)}); read it with lookup()")
        self.stride = raw.stride
        self.ncpu = raw.ncpu
        self.names: Optional[List[str]] = None  # typed struct values: each field's dotted member name
        btf_fields = _btf_fields(raw.map) if fmt is None else None
        if btf_fields:
            self.fmt = None
            self.names = [n for n, _ in btf_fields]
            self.fields = [f for _, f in btf_fields]
            self.single = False
            return
        if fmt is None:
            code = _NATIVE_INT.get(raw.value_size)
            if code is None:
                raise BPFError(f"map {name!r}: values are {raw.value_size} bytes; give value_format= to say what they hold")
            fmt = "=" + code
        try:
            whole = struct.Struct(fmt)
        except struct.error as e:
            raise BPFError(f"map {name!r}: bad value_format {fmt!r}: {e}") from None
        if whole.size > raw.stride:
            raise BPFError(f"map {name!r}: value_format {fmt!r} is {whole.size} bytes, values are {raw.value_size}")
        self.fmt = fmt
        self.fields = _fields(fmt, name)
        self.single = len(self.fields) == 1

    def reduce(self, buf: memoryview, how: str) -> List[Any]:
        out = []
        stride, n = self.stride, self.ncpu
        fn: Callable[[Any], Any] = max if how == "max" else min if how == "min" else sum
        for off, code, size, castable in self.fields:
            if castable and off % size == 0 and stride % size == 0:
                # the field of every CPU as one strided view: reduced in C, no list
                col = buf[off : off + stride * (n - 1) + size].cast(code)[:: stride // size]  # type: ignore[call-overload]
                out.append(fn(col))
            else:  # unaligned, or not in native order / size: unpacked CPU by CPU
                st = struct.Struct(code)
                out.append(fn(st.unpack_from(buf, c * stride + off)[0] for c in range(n)))
        return out


_NATIVE_LITTLE = struct.pack("=H", 1) == b"\x01\x00"


def _fields(fmt: str, name: str) -> List[Tuple[int, str, int, bool]]:
    """(offset, code, size, castable) of every number field of ``fmt``, at the offsets struct gives them.

    ``castable``: memoryview.cast(code) reads the field (native order and size);
    otherwise ``code`` is a one-field struct format with the byte-order prefix.
    """
    prefix = fmt[0] if fmt[:1] in ("@", "=", "<", ">", "!") else ""
    body = fmt[len(prefix) :].replace(" ", "")
    native_order = prefix in ("", "@", "=") or (prefix == "<" and _NATIVE_LITTLE) or (prefix in (">", "!") and not _NATIVE_LITTLE)
    fields: List[Tuple[int, str, int, bool]] = []
    i = 0
    so_far = ""
    while i < len(body):
        j = i
        while j < len(body) and body[j].isdigit():
            j += 1
        if j >= len(body):
            raise BPFError(f"map {name!r}: bad value_format {fmt!r}")
        count = int(body[i:j]) if j > i else 1
        code = body[j]
        i = j + 1
        if code in "sp":
            raise BPFError(f"map {name!r}: value_format {fmt!r} has a {code!r} (bytes) field: only numbers can be summed")
        if code == "x":
            so_far += f"{count}x"
            continue
        for _ in range(count):
            size = struct.calcsize(prefix + code)
            off = struct.calcsize(prefix + so_far + code) - size
            so_far += code
            castable = native_order and code in _CAST_OK and struct.calcsize("@" + code) == size
            fields.append((off, code, size, True) if castable else (off, (prefix or "@") + code, size, False))
    if not fields:
        raise BPFError(f"map {name!r}: value_format {fmt!r} has no fields")
    return fields


def _btf_fields(m: "Map") -> Optional[List[Tuple[str, Tuple[int, str, int, bool]]]]:
    """(dotted member name, field) of every number in a typed map's struct value (its BTF), else None.

    Integers, bools, enums and floats, in nested structs too; bitfields, arrays and
    unions are left out (as bcc sums only numbers)."""
    from ..btf import values as V

    vs = m.__dict__.get("_vstruct") if m.typed else None
    c = getattr(vs, "codec", None)
    if not isinstance(c, V._Composite):
        return None
    out: List[Tuple[str, Tuple[int, str, int, bool]]] = []

    def walk(comp: Any, base: int, prefix: str) -> None:
        for f in comp.fields:
            fc = f.codec
            if f.bits:
                continue
            if isinstance(fc, V._Scalar) and fc.fmt in _CAST_OK:
                code = fc.fmt
                castable = struct.calcsize("@" + code) == fc.size and _NATIVE_LITTLE
                out.append((prefix + f.name, (base + f.off, code if castable else "<" + code, fc.size, castable)))
            elif isinstance(fc, V._Composite) and not fc.is_union:
                walk(fc, base + f.off, "" if f.anon else prefix + f.name + ".")

    walk(c, 0, "")
    return out or None


def _result(vals: List[Any], layout: _Layout, as_type: Optional[Callable[..., Any]]) -> Any:
    if as_type is not None:
        return as_type(*vals)
    if layout.names is not None:  # a typed struct: member by member, nested as the struct
        from ..kernel.typedmaps import Aggregate

        agg = Aggregate()
        for name, v in zip(layout.names, vals):
            *path, last = name.split(".")
            d = agg
            for p in path:
                d = d.setdefault(p, Aggregate())
            d[last] = v
        return agg
    return vals[0] if layout.single else tuple(vals)


def _one(m: "Map", key: Any, how: str, value_format: Optional[str], as_type: Optional[Callable[..., Any]]) -> Any:
    from ._mapio import RawMap

    raw = RawMap(m)
    layout = _Layout(raw, value_format)
    vals = layout.reduce(raw.lookup(key), how)
    if how == "avg":
        vals = [v / layout.ncpu for v in vals]
    return _result(vals, layout, as_type)


def _all(m: "Map", how: str, value_format: Optional[str], as_type: Optional[Callable[..., Any]]) -> Dict[Any, Any]:
    from ._mapio import RawMap

    raw = RawMap(m)
    layout = _Layout(raw, value_format)
    out: Dict[Any, Any] = {}
    red = "sum" if how == "avg" else how
    for kb, buf in raw.raw_items():
        vals = layout.reduce(buf, red)
        if how == "avg":
            vals = [v / layout.ncpu for v in vals]
        out[m._decode_key(kb)] = _result(vals, layout, as_type)  # noqa: SLF001 - as the map decodes its keys
    return out


def percpu_sum(m: "Map", key: Any, *, value_format: Optional[str] = None, as_type: Optional[Callable[..., Any]] = None) -> Any:
    """The sum over CPUs of ``key``'s value (field by field for a struct); MapKeyError when absent."""
    return _one(m, key, "sum", value_format, as_type)


def percpu_max(m: "Map", key: Any, *, value_format: Optional[str] = None, as_type: Optional[Callable[..., Any]] = None) -> Any:
    """The largest of ``key``'s per-CPU values (per field for a struct)."""
    return _one(m, key, "max", value_format, as_type)


def percpu_min(m: "Map", key: Any, *, value_format: Optional[str] = None, as_type: Optional[Callable[..., Any]] = None) -> Any:
    """The smallest of ``key``'s per-CPU values (per field for a struct)."""
    return _one(m, key, "min", value_format, as_type)


def percpu_avg(m: "Map", key: Any, *, value_format: Optional[str] = None, as_type: Optional[Callable[..., Any]] = None) -> Any:
    """The sum over CPUs divided by the number of possible CPUs, as bcc's ``average`` (a float, or floats per field)."""
    return _one(m, key, "avg", value_format, as_type)


def percpu_sum_all(m: "Map", *, value_format: Optional[str] = None, as_type: Optional[Callable[..., Any]] = None) -> Dict[Any, Any]:
    """``{key: sum over CPUs}`` for every key of the map."""
    return _all(m, "sum", value_format, as_type)


def percpu_max_all(m: "Map", *, value_format: Optional[str] = None, as_type: Optional[Callable[..., Any]] = None) -> Dict[Any, Any]:
    """``{key: max over CPUs}`` for every key of the map."""
    return _all(m, "max", value_format, as_type)


def percpu_min_all(m: "Map", *, value_format: Optional[str] = None, as_type: Optional[Callable[..., Any]] = None) -> Dict[Any, Any]:
    """``{key: min over CPUs}`` for every key of the map."""
    return _all(m, "min", value_format, as_type)


def percpu_avg_all(m: "Map", *, value_format: Optional[str] = None, as_type: Optional[Callable[..., Any]] = None) -> Dict[Any, Any]:
    """``{key: average over CPUs}`` for every key of the map."""
    return _all(m, "avg", value_format, as_type)


def percpu_values(m: "Map", key: Any, *, value_format: Optional[str] = None) -> List[Any]:
    """Every CPU's value of ``key``, decoded with ``value_format`` (the per-CPU list the reducers avoid)."""
    from ._mapio import RawMap

    raw = RawMap(m)
    layout = _Layout(raw, value_format)
    if layout.fmt is None:  # a typed struct value: the map's own per-CPU list of value objects
        return list(m.lookup(key))
    buf = raw.lookup(key)
    st = struct.Struct(layout.fmt)
    out = []
    for c in range(layout.ncpu):
        t = st.unpack_from(buf, c * layout.stride)
        out.append(t[0] if len(t) == 1 else t)
    return out
