"""Python values typed by BTF: one codec per type, compiled once.

``codec(spec, type_id)`` gives a :class:`Codec` that turns the bytes of a
value of that type into Python and back:

- integers of any size (128-bit too) and signedness → ``int``; ``_Bool`` →
  ``bool``; pointers → ``int``; ``float`` / ``double`` → ``float``;
- enums (and enum64) → an ``int`` subclass made per enum, with ``.name``
  (None for a value the enum does not name) and the enumerators as class
  attributes;
- ``char`` arrays → :class:`CString`, ``bytes`` cut at the first NUL with the
  whole array in ``.raw``; other arrays of 1-byte integers → ``bytes``;
  other arrays → ``list``;
- structs and unions → a value object made per type: attribute access,
  ``==`` (with another value or a dict), ``repr``, ``_asdict()`` (nested dicts
  and lists), members of anonymous structs and unions reachable directly, as
  in C; bitfields decoded in place;
- typedefs, qualifiers and type tags are looked through.

Writing (:meth:`Codec.pack`) takes a value of the decoded kind, an ``int``
for scalars, a ``dict`` or value object for structs and unions (a dict
changes only the members it names), a ``str``/``bytes`` for byte arrays, a
list for arrays, or the raw ``bytes`` of the whole type.  A value that does
not fit, or a member the type lacks, raises :class:`~pybpfload.errors.BPFError`
naming the member; nothing is written then (the value is built in a copy).

Pure: bytes in, Python out; no syscall.
"""

from __future__ import annotations

import ctypes
import keyword
import struct
import sys
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import BPFError
from . import types as T

__all__ = ["Codec", "CString", "EnumValue", "Value", "codec", "to_json", "write_back"]

_SCALAR_FMT = {
    (1, False): "B",
    (1, True): "b",
    (2, False): "H",
    (2, True): "h",
    (4, False): "I",
    (4, True): "i",
    (8, False): "Q",
    (8, True): "q",
}


class CString(bytes):
    """A ``char`` array: the bytes before the first NUL; ``.raw`` is the whole array."""

    raw: bytes

    def __repr__(self) -> str:
        return bytes.__repr__(self)


class EnumValue(int):
    """Base of the enum classes made per BTF enum: an ``int`` with a ``name``."""

    name: Optional[str] = None
    _by_value: Dict[int, "EnumValue"] = {}
    _enum_name = ""

    def __repr__(self) -> str:
        if self.name is None:
            return f"<{self._enum_name}: {int(self)}>"
        return f"<{self._enum_name}.{self.name}: {int(self)}>"

    __str__ = __repr__

    @classmethod
    def _of(cls, v: int) -> "EnumValue":
        e = cls._by_value.get(v)
        if e is None:
            e = int.__new__(cls, v)
        return e


class Value:
    """Base of the value classes made per struct or union."""

    __slots__ = ()
    _fields: Tuple[str, ...] = ()  # members, anonymous ones flattened
    _slots: Tuple[str, ...] = ()  # what is stored (anonymous members as nested values)
    _type_name = ""
    _codec: "Codec"

    def _asdict(self) -> Dict[str, Any]:
        """The members as a dict (nested values as dicts, recursively)."""
        return {f: _plain(getattr(self, f)) for f in self._fields}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, dict):
            return self._asdict() == {k: _plain(v) for k, v in other.items()}
        if not isinstance(other, Value) or not _same_type(self, other):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self._slots)

    def __ne__(self, other: object) -> bool:
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __hash__(self) -> int:
        # hashable so that struct keys can key a dict (Map.dump()); do not change a value used as a key
        return hash((self._type_name, _frozen([getattr(self, s) for s in self._slots])))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{self._type_name}({inner})"

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        return ((f, getattr(self, f)) for f in self._fields)

    def __bytes__(self) -> bytes:
        return self._codec.pack(self)


def _same_type(a: "Value", b: "Value") -> bool:
    """One C type, whatever BTF (object, kernel copy, another open) each was decoded with."""
    ca, cb = a._codec, b._codec
    return ca is cb or (ca.type_name == cb.type_name and ca.size == cb.size and a._fields == b._fields)


def _frozen(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    return v


def _plain(v: Any) -> Any:
    if isinstance(v, Value):
        return v._asdict()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def to_json(v: Any) -> Any:
    """A decoded value as ``bpftool map dump -j`` formats it ("formatted"): char
    arrays as strings, enums by name, structs as objects, 128-bit ints as hex."""
    if isinstance(v, Value):
        out: Dict[str, Any] = {}
        for f in v._codec.fields:  # type: ignore[attr-defined]
            x = getattr(v, f.name)
            # bpftool: an anonymous member nests under "", a bitfield is a hex string
            out["" if f.anon else f.name] = (
                f"{x:#x}" if f.bits and isinstance(x, int) and not isinstance(x, EnumValue) else to_json(x)
            )
        return out
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and not isinstance(v, EnumValue) and not -(1 << 63) <= v < (1 << 64):
        return f"{v & ((1 << 128) - 1):#x}"  # 128-bit, as bpftool prints it
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, CString):
        return v.decode("utf-8", "replace")
    if isinstance(v, bytes):
        return list(v)
    if isinstance(v, EnumValue):
        return v.name if v.name is not None else int(v)
    return v


def _err(path: str, msg: str) -> BPFError:
    return BPFError(f"{path or 'value'}: {msg}")


class Codec:
    """Decodes and encodes one BTF type (see the module docstring)."""

    size: int
    type_name: str
    value_class: Optional[type] = None  # the Value subclass of a struct or union
    enum_class: Optional[type] = None  # the EnumValue subclass of an enum

    def decode(self, buf: Any, off: int = 0) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def unpack(self, buf: Any) -> Any:
        """The value in ``buf`` (at least ``size`` bytes)."""
        if len(buf) < self.size:
            raise BPFError(f"{self.type_name}: {len(buf)} bytes, the type is {self.size}")
        return self.decode(buf, 0)

    def pack(self, value: Any, base: Optional[Any] = None, path: str = "") -> bytes:
        """The bytes of ``value``; members a dict leaves out keep ``base``'s bytes (zeros by default)."""
        buf = bytearray(self.size) if base is None else bytearray(bytes(base)[: self.size].ljust(self.size, b"\0"))
        self._encode_top(value, buf, 0, path or self.type_name)
        return bytes(buf)

    def _encode_top(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        if isinstance(value, (bytes, bytearray, memoryview)) and not isinstance(self, _BytesArray):
            b = bytes(value)
            if len(b) != self.size:
                raise _err(path, f"{len(b)} bytes given, {self.type_name} is {self.size}")
            buf[off : off + self.size] = b
            return
        self.encode(value, buf, off, path)

    def __repr__(self) -> str:
        return f"<Codec {self.type_name} ({self.size} bytes)>"


class _Scalar(Codec):
    """Integers of 1, 2, 4, 8 bytes, floats, pointers, bools and enums: one struct code."""

    def __init__(
        self,
        fmt: str,
        size: int,
        name: str,
        conv: Optional[Callable[[Any], Any]] = None,
        check: Optional[Callable[[Any], Any]] = None,
    ) -> None:
        self.fmt = fmt
        self.st = struct.Struct("<" + fmt)
        self.size = size
        self.type_name = name
        self.conv = conv
        self.check = check

    def decode(self, buf: Any, off: int = 0) -> Any:
        v = self.st.unpack_from(buf, off)[0]
        return self.conv(v) if self.conv is not None else v

    def encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        if self.check is not None:
            value = self.check(value)
        if isinstance(value, (bool, int)) or (self.fmt in "fd" and isinstance(value, float)):
            try:
                self.st.pack_into(buf, off, value)
                return
            except struct.error:
                pass
            raise _err(path, f"{value!r} does not fit {self.type_name} ({self.size} bytes)")
        raise _err(path, f"{type(value).__name__} given, {self.type_name} needs a number")


class _BigInt(Codec):
    """Integers of other sizes (16-byte __int128, odd sizes)."""

    def __init__(self, size: int, signed: bool, name: str) -> None:
        self.size, self.signed, self.type_name = size, signed, name

    def decode(self, buf: Any, off: int = 0) -> Any:
        return int.from_bytes(bytes(buf[off : off + self.size]), "little", signed=self.signed)

    def encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        if not isinstance(value, int):
            raise _err(path, f"{type(value).__name__} given, {self.type_name} needs an int")
        try:
            buf[off : off + self.size] = value.to_bytes(self.size, "little", signed=self.signed)
        except OverflowError:
            raise _err(path, f"{value!r} does not fit {self.type_name} ({self.size} bytes)") from None


class _Opaque(Codec):
    """Types with no Python form (void, functions, forward declarations, long double): bytes."""

    def __init__(self, size: int, name: str) -> None:
        self.size, self.type_name = size, name

    def decode(self, buf: Any, off: int = 0) -> Any:
        return bytes(buf[off : off + self.size])

    def encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        b = bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else None
        if b is None or len(b) != self.size:
            raise _err(path, f"{self.type_name} takes {self.size} bytes")
        buf[off : off + self.size] = b


class _BytesArray(Codec):
    """Arrays of 1-byte integers: bytes (``char`` arrays: CString)."""

    def __init__(self, n: int, cstring: bool, name: str) -> None:
        self.size, self.cstring, self.type_name = n, cstring, name

    def decode(self, buf: Any, off: int = 0) -> Any:
        raw = bytes(buf[off : off + self.size])
        if not self.cstring:
            return raw
        s = CString(raw.split(b"\0", 1)[0])
        s.raw = raw
        return s

    def encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        if isinstance(value, str):
            value = value.encode()
        if isinstance(value, CString):
            value = value.raw if len(value.raw) <= self.size else bytes(value)
        if isinstance(value, list) and all(isinstance(x, int) and 0 <= x < 256 for x in value):
            value = bytes(value)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _err(path, f"{type(value).__name__} given, {self.type_name} takes bytes or str")
        b = bytes(value)
        if len(b) > self.size:
            raise _err(path, f"{len(b)} bytes do not fit {self.type_name}")
        buf[off : off + self.size] = b.ljust(self.size, b"\0")


class _List(Codec):
    def __init__(self, elem: Codec, n: int, name: str) -> None:
        self.elem, self.n, self.type_name = elem, n, name
        self.size = elem.size * n
        self.stride = elem.size
        self.st: Optional[struct.Struct] = None
        if isinstance(elem, _Scalar) and elem.conv is None:
            self.st = struct.Struct("<" + elem.fmt * n)

    def decode(self, buf: Any, off: int = 0) -> Any:
        if self.st is not None:
            return list(self.st.unpack_from(buf, off))
        d, s = self.elem.decode, self.stride
        return [d(buf, off + i * s) for i in range(self.n)]

    def encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self._encode_top(value, buf, off, path)
        if not isinstance(value, (list, tuple)):
            raise _err(path, f"{type(value).__name__} given, {self.type_name} takes a list")
        if len(value) > self.n:
            raise _err(path, f"{len(value)} elements do not fit {self.type_name}")
        for i, v in enumerate(value):
            self.elem.encode(v, buf, off + i * self.stride, f"{path}[{i}]")


class _Field:
    """One member of a struct or union, as its codec sees it."""

    __slots__ = ("name", "codec", "off", "bits", "shift", "signed", "nbytes", "conv", "anon")

    def __init__(self, name: str, codec: Codec, off: int) -> None:
        self.name, self.codec, self.off = name, codec, off
        self.bits = 0
        self.shift = 0
        self.signed = False
        self.nbytes = 0
        self.conv: Optional[Callable[[Any], Any]] = None
        self.anon = False


class _Composite(Codec):
    """Structs and unions; the value class and the decoder are generated per type."""

    def __init__(self, name: str, size: int, is_union: bool) -> None:
        self.type_name, self.size, self.is_union = name, size, is_union
        self.fields: List[_Field] = []
        self.flat: Dict[str, Tuple[Tuple[str, ...], _Field]] = {}  # name -> slot path, field
        self._decode: Callable[[Any, int], Any] = self._decode_generic
        self._ctypes = False  # value_class is a ctypes.Structure (see _ctypes_class)

    def decode(self, buf: Any, off: int = 0) -> Any:
        return self._decode(buf, off)

    def _finish(self) -> None:
        slots = tuple(f.name for f in self.fields)
        extra = ("_raw", "_tail", "_home") if self.is_union else ("_tail", "_home")  # _tail: a record's bytes past the type
        flat: Dict[str, Tuple[Tuple[str, ...], _Field]] = {}
        for f in self.fields:
            if f.anon:
                assert isinstance(f.codec, _Composite)
                for n, (p, ff) in f.codec.flat.items():
                    flat.setdefault(n, ((f.name, *p), ff))
            else:
                flat.setdefault(f.name, ((f.name,), f))
        self.flat = flat
        ns: Dict[str, Any] = {"_slots": slots, "_fields": tuple(flat), "_type_name": self.type_name, "_codec": self}
        if not any(n.startswith("__") for n in slots):  # type() would mangle "__x" slots: those live in a __dict__
            ns["__slots__"] = slots + extra
        for n, (p, _) in flat.items():
            if len(p) > 1 and n not in slots:
                ns[n] = _flat_property(p)
        pyname = self.type_name.split()[-1] if self.type_name.split() else "anon"
        if not pyname.isidentifier():
            pyname = "anon"
        ccls = _ctypes_class(self, pyname, ns)
        if ccls is not None:  # decoded by ctypes in one C call (see _ctypes_class)
            self.value_class = ccls
            self.decode = ccls.from_buffer_copy  # type: ignore[attr-defined,method-assign]
            self._decode = ccls.from_buffer_copy  # type: ignore[attr-defined]
            self.unpack = self._unpack_c  # type: ignore[method-assign]
            return
        self.value_class = type(pyname, (Value,), ns)
        self._compile()

    def _unpack_c(self, buf: Any) -> Any:
        try:
            return self._decode(buf, 0)  # type: ignore[call-arg]
        except ValueError:  # shorter than the type
            raise BPFError(f"{self.type_name}: {len(buf)} bytes, the type is {self.size}") from None
        except TypeError:  # not a buffer: as the generic path
            return Codec.unpack(self, bytes(buf))

    def _compile(self) -> None:
        """A decoder in one struct.unpack_from for the plain members, generated code for the rest."""
        cls = self.value_class
        fmt = "<"
        pos = 0
        plain: List[_Field] = []
        rest: List[_Field] = []
        for f in sorted(self.fields, key=lambda f: f.off):
            c = f.codec
            if not self.is_union and not f.bits and isinstance(c, _Scalar) and f.off >= pos:
                fmt += "x" * (f.off - pos) + c.fmt
                pos = f.off + c.size
                plain.append(f)
            else:
                rest.append(f)
        safe = all(f.name.isidentifier() and not keyword.iskeyword(f.name) for f in self.fields)
        if not safe or self.is_union:
            return
        g: Dict[str, Any] = {
            "new": object.__new__,
            "cls": cls,
            "unpack_from": struct.Struct(fmt).unpack_from,
            "fb": int.from_bytes,
        }
        lines = ["def decode(b, off=0):", " o = new(cls)"]
        if plain:
            names = [f.name for f in plain]
            if any(f.codec.conv is not None for f in plain):  # type: ignore[attr-defined]
                lines.append(" t = unpack_from(b, off)")
                for i, f in enumerate(plain):
                    conv = f.codec.conv  # type: ignore[attr-defined]
                    if conv is not None:
                        g[f"c_{i}"] = conv
                        lines.append(f" o.{f.name} = c_{i}(t[{i}])")
                    else:
                        lines.append(f" o.{f.name} = t[{i}]")
            else:
                lines.append(f" {', '.join('o.' + n for n in names)}{',' if len(names) == 1 else ''} = unpack_from(b, off)")
        for i, f in enumerate(rest):
            if f.bits:
                g[f"f_{i}"] = f
                g[f"get_{i}"] = _bitfield_getter(f)
                lines.append(f" o.{f.name} = get_{i}(b, off)")
            else:
                g[f"d_{i}"] = f.codec.decode
                lines.append(f" o.{f.name} = d_{i}(b, off + {f.off})")
        lines.append(" return o")
        exec("\n".join(lines), g)  # noqa: S102 - generated from BTF member names checked as identifiers
        self._decode = g["decode"]
        if plain and not rest and not any(f.codec.conv is not None for f in plain):  # type: ignore[attr-defined]
            # the common case, one frame: a whole-size unpack straight into the members
            g["unpack_all"] = struct.Struct(fmt + "x" * (self.size - pos)).unpack
            g["error"] = struct.error
            g["slow"] = self._unpack_slow
            targets = ", ".join("o." + f.name for f in plain) + ("," if len(plain) == 1 else "")
            src = f"def unpack(b):\n try:\n  t = unpack_all(b)\n except error:\n  return slow(b)\n o = new(cls)\n {targets} = t\n return o"
            exec(src, g)  # noqa: S102 - as above
            self.unpack = g["unpack"]  # type: ignore[method-assign]

    def _unpack_slow(self, buf: Any) -> Any:
        return Codec.unpack(self, buf)

    def _decode_generic(self, buf: Any, off: int = 0) -> Any:
        o: Any = object.__new__(self.value_class)  # type: ignore[arg-type]
        for f in self.fields:
            if f.bits:
                v = _bitfield_getter(f)(buf, off)
            else:
                v = f.codec.decode(buf, off + f.off)
            object.__setattr__(o, f.name, v)
        if self.is_union:
            object.__setattr__(o, "_raw", bytes(buf[off : off + self.size]))
        return o

    def encode(self, value: Any, buf: bytearray, off: int, path: str) -> None:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self._encode_top(value, buf, off, path)
        if isinstance(value, dict):
            for k, v in value.items():
                hit = self.flat.get(k) if isinstance(k, str) else None
                if hit is None:
                    raise _err(f"{path}.{k}", f"{self.type_name} has no member {k!r}; its members: {', '.join(self.flat)}")
                self._encode_field(hit, v, buf, off, f"{path}.{k}")
            return
        if isinstance(value, Value) and value._codec is self:
            if self._ctypes:
                buf[off : off + self.size] = bytes(value)  # type: ignore[call-overload]
                return
            if self.is_union:
                raw = getattr(value, "_raw", None)
                if raw is not None:
                    buf[off : off + self.size] = raw
                orig = self.decode(raw) if raw is not None else None
                for f in self.fields:
                    v = getattr(value, f.name)
                    if orig is None or getattr(orig, f.name) != v:
                        self._write(f, v, buf, off, f"{path}.{f.name}")
                return
            for f in self.fields:
                self._write(f, getattr(value, f.name), buf, off, f"{path}.{f.name}")
            return
        if isinstance(value, Value):
            return self.encode(value._asdict(), buf, off, path)
        raise _err(path, f"{type(value).__name__} given, {self.type_name} takes a dict, a {self.type_name} value or bytes")

    def _encode_field(self, hit: Tuple[Tuple[str, ...], _Field], v: Any, buf: bytearray, off: int, path: str) -> None:
        p, f = hit
        if len(p) == 1:
            return self._write(f, v, buf, off, path)
        # a member of an anonymous struct/union: through the anonymous member's codec
        outer = next(x for x in self.fields if x.name == p[0])
        assert isinstance(outer.codec, _Composite)
        outer.codec._encode_field((p[1:], f), v, buf, off + outer.off, path)

    def _write(self, f: _Field, v: Any, buf: bytearray, off: int, path: str) -> None:
        if not f.bits:
            f.codec.encode(v, buf, off + f.off, path)
            return
        if not isinstance(v, int):
            raise _err(path, f"{type(v).__name__} given, a bitfield takes an int")
        lo, hi = (-(1 << (f.bits - 1)), (1 << (f.bits - 1)) - 1) if f.signed else (0, (1 << f.bits) - 1)
        if not lo <= v <= hi:
            raise _err(path, f"{v!r} does not fit a {f.bits}-bit {'signed ' if f.signed else ''}bitfield")
        start = off + f.off
        word = int.from_bytes(bytes(buf[start : start + f.nbytes]), "little")
        mask = ((1 << f.bits) - 1) << f.shift
        word = (word & ~mask) | ((v << f.shift) & mask)
        buf[start : start + f.nbytes] = word.to_bytes(f.nbytes, "little")


def _flat_property(path: Tuple[str, ...]) -> property:
    def get(self: Any) -> Any:
        o = self
        for p in path:
            o = getattr(o, p)
        return o

    def set_(self: Any, v: Any) -> None:
        o = self
        for p in path[:-1]:
            o = getattr(o, p)
        setattr(o, path[-1], v)

    return property(get, set_)


def _bitfield_getter(f: _Field) -> Callable[[Any, int], Any]:
    o, n, shift, mask, signed, conv = f.off, f.nbytes, f.shift, (1 << f.bits) - 1, f.signed, f.conv
    top = 1 << (f.bits - 1)

    def get(b: Any, off: int = 0) -> Any:
        v = (int.from_bytes(bytes(b[off + o : off + o + n]), "little") >> shift) & mask
        if signed and v & top:
            v -= top << 1
        return conv(v) if conv is not None else v

    return get


# ------------------------------------------------------------------ ctypes-backed value classes
# A struct whose members are plain numbers (and structs of those) decodes fastest as a
# ctypes.Structure: from_buffer_copy is one C call, members are read by C descriptors.
# Members ctypes cannot show as we do (enums, bools, char arrays, other arrays, 128-bit
# ints, bitfields, unions...) become properties over the same memory, decoded and
# encoded by their codecs.  Writes are checked (ctypes itself would truncate).
_C_INTS = {
    (1, False): ctypes.c_uint8, (1, True): ctypes.c_int8, (2, False): ctypes.c_uint16, (2, True): ctypes.c_int16,
    (4, False): ctypes.c_uint32, (4, True): ctypes.c_int32, (8, False): ctypes.c_uint64, (8, True): ctypes.c_int64,
}  # fmt: skip
_C_FMT = {"B": (1, False), "b": (1, True), "H": (2, False), "h": (2, True), "I": (4, False), "i": (4, True), "Q": (8, False), "q": (8, True)}
_C_LE = sys.byteorder == "little"  # BTF values are little-endian here (as the struct formats "<")


def _direct_ctype(f: "_Field") -> Any:
    """The ctypes type of a member ctypes can hold as we decode it, else None."""
    c = f.codec
    if f.bits or f.anon and not isinstance(c, _Composite):
        return None
    if isinstance(c, _Scalar) and c.conv is None:
        if c.fmt == "f":
            return ctypes.c_float
        if c.fmt == "d":
            return ctypes.c_double
        ct = _C_FMT.get(c.fmt)
        return _C_INTS[ct] if ct is not None else None
    if isinstance(c, _Composite) and c._ctypes and c.value_class is not None:
        return c.value_class
    return None


def _ctypes_class(comp: "_Composite", pyname: str, ns: Dict[str, Any]) -> Optional[type]:
    if comp.is_union or not _C_LE or comp.size <= 0:
        return None
    names = [f.name for f in comp.fields]
    if any(not n.isidentifier() or keyword.iskeyword(n) or n.startswith("__") or hasattr(_CValue, n) for n in names):
        return None
    fields: List[Tuple[str, Any]] = []
    props: Dict[str, Any] = {}
    direct: Dict[str, Any] = {}
    pos = 0
    for f in sorted(comp.fields, key=lambda f: f.off):
        ct = _direct_ctype(f)
        if ct is not None and f.off >= pos and f.off + f.codec.size <= comp.size:
            if f.off > pos:
                fields.append((f"_pad{pos}", ctypes.c_uint8 * (f.off - pos)))
            fields.append((f.name, ct))
            pos = f.off + f.codec.size
            direct[f.name] = f
        elif f.codec.size == 0 and not f.bits:  # a flexible array: set per record (events' tails)
            props[f.name] = f.codec.decode(b"", 0)
        else:
            props[f.name] = _member_property(comp, f)
    if pos < comp.size:
        fields.append((f"_pad{pos}", ctypes.c_uint8 * (comp.size - pos)))
    body = dict(ns)
    body.pop("__slots__", None)
    body.update(props)
    body.update({"_pack_": 1, "_fields_": fields, "_direct": direct})
    try:
        cls = type(pyname, (_CValue,), body)
    except (TypeError, ValueError, AttributeError):  # pragma: no cover - a layout ctypes refuses
        return None
    if ctypes.sizeof(cls) != comp.size:  # pragma: no cover - defensive
        return None
    comp._ctypes = True
    return cls


def _member_property(comp: "_Composite", f: "_Field") -> property:
    """A member read and written through its codec, over the struct's own memory."""
    size = f.nbytes if f.bits else f.codec.size
    start = f.off
    if f.bits:
        getter = _bitfield_getter(f)

        def get(self: Any) -> Any:
            return getter(ctypes.string_at(ctypes.addressof(self) + start, size), -start)

    else:
        dec = f.codec.decode

        def get(self: Any) -> Any:
            v = dec(ctypes.string_at(ctypes.addressof(self) + start, size), 0)
            if v.__class__ is list or isinstance(v, Value):  # a copy: changes to it are written back

                def home(x: Any, s: Any = self) -> None:
                    setattr(s, f.name, x)

                v = write_back(v, home, f"{_where(self)}.{f.name}")
            return v

    def set_(self: Any, v: Any) -> None:
        buf = bytearray(ctypes.string_at(ctypes.addressof(self), comp.size))
        comp._write(f, v, buf, 0, f"{comp.type_name}.{f.name}")
        ctypes.memmove(ctypes.addressof(self) + start, bytes(buf[start : start + size]), size)
        _written(self)

    return property(get, set_)


class _CValue(ctypes.Structure, Value):
    """Base of the ctypes-backed value classes (no ``_fields_`` of its own)."""

    _direct: Dict[str, "_Field"] = {}
    _tail = b""

    def __setattr__(self, name: str, v: Any) -> None:
        f = self._direct.get(name)
        if f is not None:  # checked and encoded by the codec (ctypes itself would truncate)
            buf = bytearray(f.codec.size)
            f.codec._encode_top(v, buf, 0, f"{_where(self)}.{name}")
            ctypes.memmove(ctypes.addressof(self) + f.off, bytes(buf), f.codec.size)
            _written(self)
            return
        if name in ("_tail", "_home", "_path") or isinstance(type(self).__dict__.get(name), property) or name in self._fields:
            object.__setattr__(self, name, v)
            return
        from ..errors import UnknownAttributeError

        raise UnknownAttributeError(f"{self._type_name} has no member {name!r}; its members: {', '.join(self._fields)}")

    __eq__ = Value.__eq__  # ctypes' own come first in the MRO (and make values unhashable)
    __ne__ = Value.__ne__
    __hash__ = Value.__hash__

    def __bytes__(self) -> bytes:
        return ctypes.string_at(ctypes.addressof(self), ctypes.sizeof(self))

    def __reduce__(self) -> Any:
        return (_from_bytes, (self._codec, bytes(self)))


def _from_bytes(c: "Codec", b: bytes) -> Any:
    return c.unpack(b)


def _where(v: Any) -> str:
    """A value's name for errors: its variable's path (``.data.cfg``) and the members down to it."""
    names: List[str] = []
    cur, base = v, getattr(v, "_b_base_", None)
    while base is not None:  # a nested ctypes struct: which member of its parent it is, by offset
        off = ctypes.addressof(cur) - ctypes.addressof(base)
        names.append(next((n for n, f in getattr(base, "_direct", {}).items() if f.off == off and f.codec.value_class is type(cur)), "?"))
        cur, base = base, getattr(base, "_b_base_", None)
    root = (cur.__dict__.get("_path") if hasattr(cur, "__dict__") else getattr(cur, "_path", None)) or cur._type_name
    return ".".join([root, *reversed(names)])


def _written(v: Any) -> None:
    """After a write into a value: tell its owner (a global variable, an enclosing copy)."""
    root = v
    base = getattr(root, "_b_base_", None)
    while base is not None:  # a nested ctypes struct: the memory is its parent's
        root = base
        base = getattr(root, "_b_base_", None)
    home = root.__dict__.get("_home") if hasattr(root, "__dict__") else getattr(root, "_home", None)
    if home is not None:
        home(root)


class _BoundList(list):  # type: ignore[type-arg]
    """A decoded array whose changes are written back where it came from."""

    __slots__ = ("_home",)
    _home: Callable[[Any], None]

    def __setitem__(self, i: Any, v: Any) -> None:
        list.__setitem__(self, i, v)
        self._home(self)


def write_back(v: Any, home: Callable[[Any], None], path: str = "") -> Any:
    """Make ``v`` (a decoded struct, union or list) write itself back with ``home`` when
    changed; ``path`` names it in errors (``.data.cfg``)."""
    if v.__class__ is list:
        b = _BoundList(v)
        b._home = home
        for i, x in enumerate(v):  # arrays of arrays or of structs: an element's change goes through b
            if x.__class__ is list or isinstance(x, Value):

                def elem_home(y: Any, i: int = i) -> None:
                    b[i] = y

                list.__setitem__(b, i, write_back(x, elem_home, f"{path}[{i}]"))
        return b
    if isinstance(v, _CValue):
        v.__dict__["_home"] = home
        if path:
            v.__dict__["_path"] = path
        return v
    if isinstance(v, Value):
        bound = _BOUND.get(type(v))
        if bound is None:
            bound = _BOUND[type(v)] = type(type(v).__name__, (type(v),), {"__slots__": (), "__setattr__": _bound_setattr})
        object.__setattr__(v, "__class__", bound)
        object.__setattr__(v, "_home", home)
        for s in v._slots:  # nested values (not ctypes): their changes go through this one
            try:
                child = object.__getattribute__(v, s)
            except AttributeError:
                continue
            if isinstance(child, Value) or child.__class__ is list:

                def member_home(x: Any, p: Any = v, n: str = s) -> None:
                    setattr(p, n, x)

                object.__setattr__(v, s, write_back(child, member_home))
    return v


_BOUND: Dict[type, type] = {}


def _bound_setattr(self: Any, name: str, v: Any) -> None:
    object.__setattr__(self, name, v)
    if name != "_home":
        home = getattr(self, "_home", None)
        if home is not None:
            home(self)


# ------------------------------------------------------------------ building codecs
_CODECS: "weakref.WeakKeyDictionary[Any, Dict[int, Codec]]" = weakref.WeakKeyDictionary()


def codec(spec: Any, tid: int) -> Codec:
    """The codec of type ``tid`` of ``spec`` (a :class:`~pybpfload.btf.Spec`), built once per (spec, id)."""
    try:
        per = _CODECS[spec]
    except KeyError:
        per = _CODECS[spec] = {}
    except TypeError:  # pragma: no cover - not weak-referenceable
        per = {}
    c = per.get(tid)
    if c is None:
        c = _build(spec, tid, per, 0)
    return c


def _enum_class(t: Any) -> type:
    name = t.name or "enum"
    ns: Dict[str, Any] = {"__slots__": (), "_enum_name": name, "_by_value": {}}
    cls = type(name if name.isidentifier() else "enum", (EnumValue,), ns)
    by: Dict[int, EnumValue] = {}
    for ev in t.values:
        e: Any = int.__new__(cls, ev.value)
        # one instance per value: the first name wins for aliases
        by.setdefault(ev.value, e)
    cls._by_value = by  # type: ignore[attr-defined]
    named: Dict[int, str] = {}
    for ev in t.values:
        named.setdefault(ev.value, ev.name)
        if ev.name.isidentifier() and not hasattr(EnumValue, ev.name):
            setattr(cls, ev.name, by[ev.value])

    # an int subclass with __slots__ = () holds no per-instance name: a value -> name table
    def name_of(self: int) -> Optional[str]:
        return named.get(int(self))

    cls.name = property(name_of)  # type: ignore[attr-defined]
    return cls


def _enum_check(cls: type, names: Dict[str, int]) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if isinstance(v, str):  # an enumerator by name
            if v in names:
                return names[v]
        return v

    return check


def _build(spec: Any, tid: int, per: Dict[int, Codec], depth: int) -> Codec:
    if depth > 64:
        raise BPFError(f"BTF type {tid}: nested too deeply to decode")
    from .query import type_name

    t = spec.type(tid)
    c: Codec
    if isinstance(t, T.MODIFIERS):
        c = _build(spec, t.type, per, depth + 1)
        per[tid] = c
        return c
    name = type_name(spec, tid) if tid else "void"
    if isinstance(t, T.Int):
        if t.encoding & T.INT_BOOL and t.size == 1:
            c = _Scalar("?", 1, name)
        elif t.size in (1, 2, 4, 8):
            c = _Scalar(_SCALAR_FMT[(t.size, t.signed)], t.size, name)
        else:
            c = _BigInt(t.size, t.signed, name)
    elif isinstance(t, T.Pointer):
        c = _Scalar("Q", 8, name)
    elif isinstance(t, T.Float):
        if t.size in (4, 8):
            c = _Scalar("f" if t.size == 4 else "d", t.size, name)
        else:
            c = _Opaque(t.size, name)
    elif isinstance(t, T.ENUMS):
        ecls = _enum_class(t)
        names = {ev.name: ev.value for ev in t.values}
        size = t.size
        fmt = _SCALAR_FMT.get((size, bool(t.signed)))
        if fmt is None:
            c = _Opaque(size, name)
        else:
            c = _Scalar(fmt, size, name, conv=ecls._of, check=_enum_check(ecls, names))  # type: ignore[attr-defined]
            c.enum_class = ecls
    elif isinstance(t, T.Array):
        elem_id = t.type
        et = spec.resolve(elem_id)
        if isinstance(et, T.Int) and et.size == 1 and not et.encoding & T.INT_BOOL:
            from .query import skip_qualifiers

            direct = spec.type(skip_qualifiers(spec, elem_id))
            cstring = isinstance(direct, T.Int) and (direct.name == "char" or bool(direct.encoding & T.INT_CHAR))
            c = _BytesArray(t.nelems, cstring, name)
        else:
            c = _List(_build(spec, elem_id, per, depth + 1), t.nelems, name)
    elif isinstance(t, T.COMPOSITES):
        comp = _Composite(name, t.size, isinstance(t, T.Union))
        per[tid] = comp  # before members: a pointer back to it does not recurse (pointers are ints anyway)
        anon = 0
        for m in t.members:
            mc = _build(spec, m.type, per, depth + 1)
            f = _Field(m.name, mc, m.bit_offset // 8)
            if not m.name:
                if not isinstance(mc, _Composite):
                    continue  # unnamed padding bitfield
                f.name = f"_anon{anon}"
                f.anon = True
                anon += 1
            if m.bitfield_size or m.bit_offset % 8:
                bits = m.bitfield_size or mc.size * 8
                start = m.bit_offset // 8
                f.off = start
                f.shift = m.bit_offset % 8
                f.bits = bits
                f.nbytes = (f.shift + bits + 7) // 8
                rt = spec.resolve(m.type)
                f.signed = bool(getattr(rt, "signed", False))
                f.conv = mc.conv if isinstance(mc, _Scalar) else None
                if isinstance(mc, _Scalar) and mc.fmt == "?":
                    f.conv = bool
            comp.fields.append(f)
        comp._finish()
        return comp
    elif isinstance(t, T.Var):
        c = _build(spec, t.type, per, depth + 1)
    else:
        size = 0
        try:
            size = spec.size(tid)
        except BPFError:
            pass
        c = _Opaque(size, name)
    per[tid] = c
    return c
