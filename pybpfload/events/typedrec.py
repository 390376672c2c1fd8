"""Ring and perf buffer records decoded with BTF: ``RingBuffer.add(m, cb, type="struct event")``.

The record's type is looked up by name in the BTF of the map's object (a map
of an :class:`~pybpfload.Object`) or in ``btf=`` (a Spec, or anything with a
``.btf``).  The callback gets a value object (see :mod:`pybpfload.btf.values`)
decoded from a copy of the record; bytes past the type's size (a
variable-length tail) are in ``rec._tail``.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import BPFError

_KINDS = {"struct": "STRUCT", "union": "UNION", "enum": "ENUM"}


def record_decoder(map: Any, type_name: str, btf: Any = None) -> Callable[[Any], Any]:
    """A function turning one record (bytes or a view) into a value of ``type_name``."""
    from ..btf import types as T
    from ..btf.values import codec

    spec = btf.btf if btf is not None and hasattr(btf, "btf") else btf
    if spec is None:
        getter = getattr(map, "__dict__", {}).get("_btf_getter")
        spec = getter() if getter is not None else None
    if spec is None:
        raise BPFError(f"typed records of {type_name!r}: no BTF (pass btf=, or a map of an opened Object)")
    parts = type_name.split()
    kind = None
    if len(parts) == 2 and parts[0] in _KINDS:
        kind, name = T.Kind[_KINDS[parts[0]]], parts[1]
    else:
        name = type_name
    try:
        tid = spec.find_id(name, kind)
    except KeyError:
        raise BPFError(f"typed records: no type {type_name!r} in the BTF") from None
    c = codec(spec, tid)
    size = c.size
    unpack = c.unpack
    if c.value_class is None:

        def decode_scalar(rec: Any) -> Any:
            return unpack(bytes(rec[:size]))

        return decode_scalar

    flex = _flexible_member(c)
    if getattr(c, "_ctypes", False):  # a ctypes-backed struct: one C call from the record itself
        cdec = c.decode
        whole = c.value_class.from_buffer_copy  # type: ignore[union-attr,attr-defined]

        def decode_c(rec: Any) -> Any:
            n = len(rec)
            if n == size:
                return cdec(rec, 0)
            if n < size:
                return cdec(bytes(rec).ljust(size, b"\0"), 0)  # a short record: what is missing reads as zero
            v = cdec(rec, 0)
            tail = bytes(rec[size:])
            d = v.__dict__
            d["_tail"] = tail
            if flex is not None:
                d[flex[0]] = flex[1](tail)
            return v

        decode_c.fast = (size, whole)  # type: ignore[attr-defined]  # for ring_callback / perf_callback
        return decode_c

    def decode(rec: Any) -> Any:
        b = bytes(rec)
        if len(b) < size:
            b = b.ljust(size, b"\0")  # a short record: what is missing reads as zero
        v = unpack(b)
        tail = b[size:]
        object.__setattr__(v, "_tail", tail)
        if flex is not None and tail:
            object.__setattr__(v, flex[0], flex[1](tail))
        return v

    return decode


def _flexible_member(c: Any) -> Any:
    """(name, decode tail) of a struct's last member when it is a flexible array (``u8 data[]``), else None."""
    from ..btf import values as V

    fields = getattr(c, "fields", None)
    if not fields or c.is_union:
        return None
    last = max(fields, key=lambda f: f.off)
    lc = last.codec
    if lc.size != 0:
        return None
    if isinstance(lc, V._BytesArray):
        return last.name, bytes
    if isinstance(lc, V._List) and lc.elem.size:
        elem, n = lc.elem, lc.elem.size

        def elems(tail: bytes) -> Any:
            return [elem.decode(tail, i) for i in range(0, len(tail) - n + 1, n)]

        return last.name, elems
    return None


def _fast(decode: Any) -> Any:
    """(size, C decoder) for a record of exactly the type's size, when the type is ctypes-backed."""
    return getattr(decode, "fast", (None, None))


def ring_callback(map: Any, type_name: str, btf: Any, callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    decode = record_decoder(map, type_name, btf)
    size, cdec = _fast(decode)
    if cdec is not None:  # one frame per record: the exact-size record straight into C

        def typed_c(rec: Any) -> Any:
            if len(rec) == size:
                return callback(cdec(rec))
            return callback(decode(rec))

        return typed_c

    def typed(rec: Any) -> Any:
        return callback(decode(rec))

    return typed


def perf_callback(map: Any, type_name: str, btf: Any, callback: Callable[[int, Any], Any]) -> Callable[[int, Any], Any]:
    decode = record_decoder(map, type_name, btf)
    size, cdec = _fast(decode)
    if cdec is not None:

        def typed_c(cpu: int, rec: Any) -> Any:
            if len(rec) == size:
                return callback(cpu, cdec(rec))
            return callback(cpu, decode(rec))

        return typed_c

    def typed(cpu: int, rec: Any) -> Any:
        return callback(cpu, decode(rec))

    return typed


__all__ = ["record_decoder", "ring_callback", "perf_callback"]
