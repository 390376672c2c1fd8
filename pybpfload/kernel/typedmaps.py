"""Typed keys and values for maps whose BTF names their types (``__type(key, ...)``).

``map.typed = True`` (or ``Object.open(..., typed=True)`` for every map of an
object) decodes keys and values with :mod:`pybpfload.btf.values`: a struct
value comes back as a value object, an ``int`` key as an ``int``; writes
take value objects, dicts, ints or bytes.  ``key_format`` / ``value_format``,
when set, still win; ``map.raw`` is a bytes-in, bytes-out view of the same
map.  Per-CPU maps give per-CPU lists of typed values; map-in-map, program
and perf event arrays keep their fd semantics (they are never typed).

The codecs are installed where a :mod:`struct` format would be (they answer
``size``, ``unpack``, ``pack`` and ``pack_into`` the same way), so the map's
fast paths are unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

from ..abi.uapi import MapType
from ..errors import BPFError

if TYPE_CHECKING:
    from ..btf.values import Codec
    from .maps import Map

# Values that are fds in and ids out: never typed.
_FD_MAPS = frozenset(
    {
        MapType.BPF_MAP_TYPE_PROG_ARRAY,
        MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY,
        MapType.BPF_MAP_TYPE_ARRAY_OF_MAPS,
        MapType.BPF_MAP_TYPE_HASH_OF_MAPS,
        MapType.BPF_MAP_TYPE_CGROUP_ARRAY,
        MapType.BPF_MAP_TYPE_SOCKMAP,
        MapType.BPF_MAP_TYPE_SOCKHASH,
        MapType.BPF_MAP_TYPE_DEVMAP,
        MapType.BPF_MAP_TYPE_DEVMAP_HASH,
        MapType.BPF_MAP_TYPE_CPUMAP,
        MapType.BPF_MAP_TYPE_XSKMAP,
        MapType.BPF_MAP_TYPE_STRUCT_OPS,
        MapType.BPF_MAP_TYPE_RINGBUF,
        MapType.BPF_MAP_TYPE_USER_RINGBUF,
    }
)


class TypedFormat:
    """A BTF codec shaped like a :class:`struct.Struct` of one field."""

    __slots__ = ("codec", "size", "what", "format", "_unpack", "decode")

    def __init__(self, codec: "Codec", what: str) -> None:
        self.codec = codec
        self.size = codec.size
        self.what = what
        self.format = None
        self._unpack = codec.unpack
        self.decode = codec.decode  # (buffer, offset) -> value: what Map's hot paths call

    def unpack(self, b: Any) -> Tuple[Any]:
        return (self._unpack(b),)

    def pack(self, *args: Any) -> bytes:
        if len(args) == 1:
            v = args[0]
        else:  # a tuple: the members in order
            vc = self.codec.value_class
            if vc is None:
                raise BPFError(f"{self.what}: {len(args)} values for {self.codec.type_name}")
            v = dict(zip(vc._fields, args))  # type: ignore[attr-defined]
        return self.codec.pack(v, path=self.what)

    def pack_into(self, buf: Any, off: int, *args: Any) -> None:
        buf[off : off + self.size] = self.pack(*args)

    def __repr__(self) -> str:
        return f"<typed {self.codec.type_name}>"


def typed_formats(m: "Map") -> Tuple[Optional[TypedFormat], Optional[TypedFormat]]:
    """The key and value codecs of ``m`` from its BTF (None where it has no type)."""
    getter = m.__dict__.get("_btf_getter")
    spec = getter() if getter is not None else None
    if spec is None or not (m.btf_key_type_id or m.btf_value_type_id):
        raise BPFError(f"map {m.name!r}: no BTF key/value types to decode with (typed maps come from an object's BTF)")
    if m.type in _FD_MAPS:
        return None, None
    from ..btf import types as T
    from ..btf.values import codec

    if isinstance(spec.resolve(m.btf_value_type_id), T.Datasec):
        return None, None  # global data: obj.rodata / obj.bss... (pybpfload.kernel.globalvars)
    kf = vf = None
    if m.btf_key_type_id:
        c = codec(spec, m.btf_key_type_id)
        if c.size == m.key_size:
            kf = TypedFormat(c, f"map {m.name!r} key")
    if m.btf_value_type_id:
        c = codec(spec, m.btf_value_type_id)
        if c.size == m.value_size:
            vf = TypedFormat(c, f"map {m.name!r} value")
    return kf, vf


class Aggregate(dict):  # type: ignore[type-arg]
    """Field-wise totals of struct values (``per_cpu.sum()``): the numeric members by name,
    as keys and as attributes (nested structs nested); other members are left out."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no numeric member {name!r}; the totals are of: {', '.join(self)}") from None

    def __repr__(self) -> str:
        return f"Aggregate({', '.join(f'{k}={v!r}' for k, v in self.items())})"


def _numeric(v: Any) -> Any:
    """A value's numbers: an int or float, or a dict of a struct's numeric members (nested
    structs nested, anonymous ones flattened; bitfields, arrays and unions left out, as the
    toolkit's percpu_* leave them), or None."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return int(v) if isinstance(v, int) else v
    codec = getattr(v, "_codec", None)
    if codec is None or getattr(codec, "is_union", True):
        return None
    out: Dict[str, Any] = {}
    for f in codec.fields:
        if f.bits:
            continue
        x = _numeric(getattr(v, f.name))
        if x is None:
            continue
        if f.anon and isinstance(x, dict):
            out.update(x)
        else:
            out[f.name] = x
    return out


def aggregate(values: "List[Any]", how: str) -> Any:
    """sum / max / min / avg of values (ints, or structs member by member into an Aggregate)."""
    nums = [_numeric(v) for v in values]
    if not nums:
        raise BPFError(f"{how} of no values")
    return _combine(nums, how, len(nums))


def _combine(nums: "List[Any]", how: str, n: int) -> Any:
    first = nums[0]
    if isinstance(first, dict):
        return Aggregate({k: _combine([x[k] for x in nums], how, n) for k in first})
    if first is None:
        raise BPFError(f"values without numbers cannot be combined ({how})")
    if how == "sum":
        return sum(nums)
    if how == "max":
        return max(nums)
    if how == "min":
        return min(nums)
    return sum(nums) / n


class PerCpu(list):  # type: ignore[type-arg]
    """A per-CPU map's value: one value per possible CPU, with bcc's aggregations.

    ``sum()``, ``max()``, ``min()`` and ``avg()`` (the sum over the number of
    possible CPUs, as bcc's ``average``) reduce ints, and struct values member
    by member into an :class:`Aggregate` (``v.sum().packets``)."""

    __slots__ = ()

    def sum(self) -> Any:
        return aggregate(self, "sum")

    def max(self) -> Any:
        return aggregate(self, "max")

    def min(self) -> Any:
        return aggregate(self, "min")

    def avg(self) -> Any:
        return aggregate(self, "avg")


class RawView:
    """A map seen as bytes: keys and values in and out as ``bytes``, whatever its formats."""

    __slots__ = ("_m",)

    def __init__(self, m: "Map") -> None:
        self._m = m

    def lookup(self, key: bytes) -> bytes:
        m = self._m
        v = m._lookup_raw(key)
        return v if m._percpu else v[: m.value_size]

    __getitem__ = lookup

    def get(self, key: bytes, default: Any = None) -> Any:
        try:
            return self.lookup(key)
        except KeyError:  # MapKeyError (a KeyError): the key is absent
            return default

    def update(self, key: bytes, value: bytes) -> None:
        self._m._update_raw(key, bytes(value), "BPF_MAP_UPDATE_ELEM")

    __setitem__ = update

    def delete(self, key: bytes) -> None:
        self._m.delete(key)

    __delitem__ = delete

    def keys(self) -> Iterator[bytes]:
        return self._m._raw_keys()

    __iter__ = keys

    def items(self) -> Iterator[Tuple[bytes, bytes]]:
        for k in self._m._raw_keys():
            try:
                yield k, self.lookup(k)
            except KeyError:
                continue

    def dump(self) -> Dict[bytes, bytes]:
        return dict(self.items())

    def __repr__(self) -> str:
        return f"<raw view of map {self._m.name!r}>"


__all__ = ["Aggregate", "PerCpu", "RawView", "TypedFormat", "aggregate", "typed_formats"]
