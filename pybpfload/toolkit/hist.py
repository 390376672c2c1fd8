"""log2 and linear histograms, printed as bcc prints them.

:func:`print_log2_hist` and :func:`print_linear_hist` write text byte for byte
like bcc's ``table.print_log2_hist`` / ``print_linear_hist`` for the same
bucket counts and options, and return the data as :class:`Histogram`
objects (one per section) for non-text use.  ``vals`` may be:

* a sequence of slot counts (``vals[i]`` is slot i), as bcc's internal
  ``_print_log2_hist`` takes;
* a mapping ``{slot: count}``, ``{(section, slot): count}`` or
  ``{section: [counts...]}``;
* a :class:`pybpfload.Map`: an array or hash map of slots (u32 / u64 keys ->
  u32 / u64 counts; per-CPU maps are summed over CPUs), or a map keyed by
  (section, slot) like bcc's ``BPF_HISTOGRAM(dist, key_t)``.  For a struct key
  say how to split it: ``key_format`` (a :mod:`struct` format whose last
  field is the slot and whose other fields make the section — ``"=I4xQ"``
  for ``struct {u32 pid; u64 slot;}``), or ``section_key`` / ``slot_key``
  functions taking the key (the tuple unpacked by ``key_format`` when given,
  else the key as the map's ``key_format`` decodes it, else its bytes).
  Without either, a map whose own ``key_format`` has two or more fields is
  split that way.

Sections print in the order the map returns them, unless ``bucket_sort_fn``
reorders them; ``bucket_fn`` maps each section value first (keys that land
in the same section are added up, where bcc keeps the last one it reads).
"""

from __future__ import annotations

import struct
import sys
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, TextIO, Tuple

from ..errors import BPFError

__all__ = [
    "Histogram",
    "print_log2_hist",
    "print_linear_hist",
    "format_log2_hist",
    "format_linear_hist",
    "log2_hist",
    "linear_hist",
    "LOG2_INDEX_MAX",
    "LINEAR_INDEX_MAX",
    "STARS_MAX",
]

STARS_MAX = 40
LOG2_INDEX_MAX = 65  # slots of a log2 histogram read from a map: any 64-bit value fits
LINEAR_INDEX_MAX = 1025  # slots of a linear histogram read from a map

_BO = sys.byteorder
_PERCPU_TYPES = frozenset({5, 6, 10, 21})


def _stars(val: Any, val_max: Any, width: int) -> str:
    """bcc's bar: one star per width/val_max, at most ``width``; '+' marks a value above val_max."""
    # the same float arithmetic as bcc (``i > width * val / val_max - 1``) so that the rounding agrees
    lim = width * val / val_max - 1
    n = 0 if lim < 0 else min(width, int(lim) + 1)
    text = "*" * n
    if val > val_max:
        text = text[:-1] + "+"
    return text


class Histogram:
    """One histogram: ``counts[i]`` is slot i; ``section`` is its section (None for an unkeyed histogram).

    ``kind`` is ``"log2"`` (slot i > 0 counts values in [2**(i-1), 2**i - 1],
    slot 1 also 0) or ``"linear"`` (slot i counts the value i).
    """

    __slots__ = ("kind", "counts", "section")

    def __init__(self, kind: str, counts: Sequence[Any], section: Any = None) -> None:
        if kind not in ("log2", "linear"):
            raise BPFError(f"histogram kind must be 'log2' or 'linear', not {kind!r}")
        self.kind = kind
        self.counts: List[Any] = list(counts)
        self.section = section

    def __repr__(self) -> str:
        sec = "" if self.section is None else f", section={self.section!r}"
        return f"Histogram({self.kind!r}, total={self.total}{sec})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (self.kind, self._trimmed(), self.section) == (other.kind, other._trimmed(), other.section)

    __hash__ = None  # type: ignore[assignment]

    def _trimmed(self) -> List[Any]:
        c = self.counts
        n = len(c)
        while n and not c[n - 1]:
            n -= 1
        return c[:n]

    @property
    def total(self) -> Any:
        return sum(self.counts)

    @property
    def last_slot(self) -> int:
        """The highest slot with a count above zero; -1 when there is none."""
        idx = -1
        for i, v in enumerate(self.counts):
            if v > 0:
                idx = i
        return idx

    def slot_range(self, i: int) -> Tuple[int, int]:
        """The values slot ``i`` counts, as printed (low, high): log2 slot 1 is 0 -> 1, slot 4 is 8 -> 15."""
        if self.kind == "linear":
            return i, i
        low, high = (1 << i) >> 1, (1 << i) - 1
        if low == high:
            low -= 1
        return low, high

    def rows(self, strip_leading_zero: Optional[bool] = None) -> List[Tuple[int, int, Any]]:
        """(low, high, count) of the rows the text has (log2 from slot 1, linear from slot 0, to the last non-zero slot)."""
        first = 1 if self.kind == "log2" else 0
        out: List[Tuple[int, int, Any]] = []
        for i in range(first, self.last_slot + 1):
            v = self.counts[i]
            if strip_leading_zero and not out and not v:
                continue
            lo, hi = self.slot_range(i)
            out.append((lo, hi, v))
        return out

    @property
    def buckets(self) -> List[Tuple[int, int]]:
        """(low, high) of every printed row."""
        return [(lo, hi) for lo, hi, _ in self.rows()]

    def format(self, val_type: str = "value", strip_leading_zero: Optional[bool] = None) -> str:
        """The histogram's text (without a section line), as bcc prints it."""
        lines: List[str] = []
        counts = self.counts
        idx_max = self.last_slot
        val_max: Any = 0
        for v in counts:
            if v > val_max:
                val_max = v
        if self.kind == "log2":
            if idx_max <= 32:
                header, body, stars = "     %-19s : count     distribution", "%10d -> %-10d : %-8d |%-*s|", STARS_MAX
            else:
                header, body, stars = "               %-29s : count     distribution", "%20d -> %-20d : %-8d |%-*s|", STARS_MAX // 2
            if idx_max > 0:
                lines.append(header % val_type)
            for lo, hi, v in self.rows(strip_leading_zero):
                lines.append(body % (lo, hi, v, stars, _stars(v, val_max, stars)))
        else:
            if idx_max >= 0:
                lines.append("     %-13s : count     distribution" % val_type)
            for lo, _hi, v in self.rows(strip_leading_zero):
                lines.append("        %-10d : %-8d |%-*s|" % (lo, v, STARS_MAX, _stars(v, val_max, STARS_MAX)))
        return "".join(line + "\n" for line in lines)


# ------------------------------------------------------------------ collecting slot counts
def _int_decoder(size: int, what: str, name: str) -> Callable[[Any], int]:
    if size not in (1, 2, 4, 8):
        raise BPFError(f"map {name!r}: {what} are {size} bytes; a histogram's {what} must be 4- or 8-byte integers (or give a format)")
    return lambda b: int.from_bytes(b, _BO)


def _from_map(
    m: Any,
    kind: str,
    key_format: Optional[str],
    section_key: Optional[Callable[[Any], Any]],
    slot_key: Optional[Callable[[Any], int]],
    value_format: Optional[str],
) -> Tuple[bool, List[Tuple[Any, int, Any]]]:
    """(sectioned, [(section, slot, count)...]) read from a map."""
    from ._mapio import RawMap

    raw = RawMap(m)
    name = raw.name
    # values: one count per element, summed over CPUs for per-CPU maps
    vfmt = value_format
    if vfmt is not None:
        vs = struct.Struct(vfmt)
        if vs.size > raw.stride:
            raise BPFError(f"map {name!r}: value_format {vfmt!r} is {vs.size} bytes, values are {raw.value_size}")

        def one(b: Any) -> Any:
            return vs.unpack_from(b)[0]

    else:
        dec = _int_decoder(raw.value_size, "values", name)

        def one(b: Any) -> Any:
            return dec(b[: raw.value_size])

    stride, ncpu = raw.stride, raw.ncpu

    def count(v: Any) -> Any:
        if ncpu == 1 and not raw.percpu:
            return one(v)
        return sum(one(v[c * stride : c * stride + stride]) for c in range(ncpu))

    # keys
    kfmt = key_format
    if kfmt is None and section_key is None and slot_key is None and raw.key_size not in (4, 8) and m.key_format:
        kfmt = m.key_format  # the map's own format splits its struct key
    sectioned = kfmt is not None or section_key is not None or slot_key is not None
    out: List[Tuple[Any, int, Any]] = []
    if not sectioned:
        kdec = _int_decoder(raw.key_size, "keys", name) if raw.key_size in (4, 8) else None
        if kdec is None:
            raise BPFError(
                f"map {name!r}: keys are {raw.key_size} bytes, not a u32 / u64 slot: say how to split them into "
                "(section, slot) with key_format= (e.g. '=I4xQ') or section_key= / slot_key="
            )
        for kb, v in raw.raw_items():
            out.append((None, kdec(kb), count(v)))
        return False, out

    ks = struct.Struct(kfmt) if kfmt is not None else None
    if ks is not None and ks.size != raw.key_size:
        raise BPFError(f"map {name!r}: key_format {kfmt!r} is {ks.size} bytes, keys are {raw.key_size}")
    mks = struct.Struct(m.key_format) if ks is None and m.key_format else None
    for kb, v in raw.raw_items():
        key: Any
        if ks is not None:
            key = ks.unpack(kb)
        elif mks is not None:
            t = mks.unpack(kb)
            key = t[0] if len(t) == 1 else t
        else:
            key = kb
        if section_key is not None:
            section = section_key(key)
        elif isinstance(key, tuple) and len(key) >= 2:
            section = key[0] if len(key) == 2 else key[:-1]
        else:
            raise BPFError(f"map {name!r}: section_key= is needed to find the section in key {key!r}")
        if slot_key is not None:
            slot = slot_key(key)
        elif isinstance(key, tuple) and len(key) >= 2:
            slot = key[-1]
        else:
            raise BPFError(f"map {name!r}: slot_key= is needed to find the slot in key {key!r}")
        out.append((section, int(slot), count(v)))
    return True, out


def _collect(
    vals: Any,
    kind: str,
    key_format: Optional[str],
    section_key: Optional[Callable[[Any], Any]],
    slot_key: Optional[Callable[[Any], int]],
    value_format: Optional[str],
    bucket_fn: Optional[Callable[[Any], Any]],
    bucket_sort_fn: Optional[Callable[[List[Any]], Iterable[Any]]],
) -> Tuple[bool, List[Histogram]]:
    """(whether ``vals`` is keyed by section, its histograms in print order)."""
    from ..kernel.maps import Map

    limit = LOG2_INDEX_MAX if kind == "log2" else LINEAR_INDEX_MAX
    what = "map"
    if isinstance(vals, Map):
        sectioned, triples = _from_map(vals, kind, key_format, section_key, slot_key, value_format)
        what = f"map {vals.name!r}"
    elif isinstance(vals, Mapping):
        triples = []
        items = list(vals.items())
        sectioned = bool(items) and (isinstance(items[0][1], (list, tuple)) or isinstance(items[0][0], tuple))
        for k, v in items:
            if isinstance(v, (list, tuple)):
                triples.extend((k, i, c) for i, c in enumerate(v))
            elif isinstance(k, tuple):
                triples.append((k[0] if len(k) == 2 else k[:-1], int(k[-1]), v))
            else:
                triples.append((None, int(k), v))
        limit = 1 << 20
        what = "mapping"
    elif isinstance(vals, (str, bytes)) or not isinstance(vals, Iterable):
        raise BPFError(f"a histogram takes a list of slot counts, a mapping or a pybpfload.Map, not {type(vals).__name__}")
    else:
        if section_key is not None or slot_key is not None or key_format is not None:
            raise BPFError("section_key / slot_key / key_format split a map's keys; a list of counts has none")
        return False, [Histogram(kind, list(vals))]

    if not sectioned:
        counts: List[Any] = [0] * (limit if what.startswith("map ") else 0)
        for _, slot, c in triples:
            _put(counts, slot, c, limit, kind, what)
        return False, [Histogram(kind, counts)]

    by_section: Dict[Any, List[Any]] = {}
    for section, slot, c in triples:
        if bucket_fn is not None:
            section = bucket_fn(section)
        sc = by_section.get(section)
        if sc is None:
            sc = by_section[section] = [0] * (limit if what.startswith("map ") else 0)
        _put(sc, slot, c, limit, kind, what)
    order: Iterable[Any] = list(by_section)
    if bucket_sort_fn is not None:
        order = bucket_sort_fn(list(order))
    return True, [Histogram(kind, by_section[s], s) for s in order]


def _put(counts: List[Any], slot: int, c: Any, limit: int, kind: str, what: str) -> None:
    if slot < 0 or slot >= limit:
        raise BPFError(f"{what}: slot {slot} is outside a {kind} histogram's {limit} slots (0..{limit - 1})")
    if slot >= len(counts):
        counts.extend([0] * (slot + 1 - len(counts)))
    counts[slot] += c


# ------------------------------------------------------------------ public API
def log2_hist(
    vals: Any,
    *,
    bucket_fn: Optional[Callable[[Any], Any]] = None,
    bucket_sort_fn: Optional[Callable[[List[Any]], Iterable[Any]]] = None,
    key_format: Optional[str] = None,
    section_key: Optional[Callable[[Any], Any]] = None,
    slot_key: Optional[Callable[[Any], int]] = None,
    value_format: Optional[str] = None,
) -> List[Histogram]:
    """The log2 histograms of ``vals`` (one per section, in print order), without printing."""
    return _collect(vals, "log2", key_format, section_key, slot_key, value_format, bucket_fn, bucket_sort_fn)[1]


def linear_hist(
    vals: Any,
    *,
    bucket_fn: Optional[Callable[[Any], Any]] = None,
    bucket_sort_fn: Optional[Callable[[List[Any]], Iterable[Any]]] = None,
    key_format: Optional[str] = None,
    section_key: Optional[Callable[[Any], Any]] = None,
    slot_key: Optional[Callable[[Any], int]] = None,
    value_format: Optional[str] = None,
) -> List[Histogram]:
    """The linear histograms of ``vals`` (one per section, in print order), without printing."""
    return _collect(vals, "linear", key_format, section_key, slot_key, value_format, bucket_fn, bucket_sort_fn)[1]








def format_log2_hist(
    vals: Any,
    val_type: str = "value",
    section_header: str = "Bucket ptr",
    section_print_fn: Optional[Callable[[Any], Any]] = None,
    bucket_fn: Optional[Callable[[Any], Any]] = None,
    strip_leading_zero: Optional[bool] = None,
    bucket_sort_fn: Optional[Callable[[List[Any]], Iterable[Any]]] = None,
    *,
    key_format: Optional[str] = None,
    section_key: Optional[Callable[[Any], Any]] = None,
    slot_key: Optional[Callable[[Any], int]] = None,
    value_format: Optional[str] = None,
) -> str:
    """What :func:`print_log2_hist` prints, as a string."""
    return _format("log2", vals, val_type, section_header, section_print_fn, bucket_fn, strip_leading_zero, bucket_sort_fn,
                   key_format, section_key, slot_key, value_format)[0]  # fmt: skip


def format_linear_hist(
    vals: Any,
    val_type: str = "value",
    section_header: str = "Bucket ptr",
    section_print_fn: Optional[Callable[[Any], Any]] = None,
    bucket_fn: Optional[Callable[[Any], Any]] = None,
    strip_leading_zero: Optional[bool] = None,
    bucket_sort_fn: Optional[Callable[[List[Any]], Iterable[Any]]] = None,
    *,
    key_format: Optional[str] = None,
    section_key: Optional[Callable[[Any], Any]] = None,
    slot_key: Optional[Callable[[Any], int]] = None,
    value_format: Optional[str] = None,
) -> str:
    """What :func:`print_linear_hist` prints, as a string."""
    return _format("linear", vals, val_type, section_header, section_print_fn, bucket_fn, strip_leading_zero, bucket_sort_fn,
                   key_format, section_key, slot_key, value_format)[0]  # fmt: skip


def _format(
    kind: str,
    vals: Any,
    val_type: str,
    section_header: str,
    section_print_fn: Optional[Callable[[Any], Any]],
    bucket_fn: Optional[Callable[[Any], Any]],
    strip_leading_zero: Optional[bool],
    bucket_sort_fn: Optional[Callable[[List[Any]], Iterable[Any]]],
    key_format: Optional[str],
    section_key: Optional[Callable[[Any], Any]],
    slot_key: Optional[Callable[[Any], int]],
    value_format: Optional[str],
) -> Tuple[str, List[Histogram]]:
    sectioned, hists = _collect(vals, kind, key_format, section_key, slot_key, value_format, bucket_fn, bucket_sort_fn)
    parts = []
    for h in hists:
        if sectioned:
            label = section_print_fn(h.section) if section_print_fn is not None else repr(h.section)
            parts.append("\n%s = %s\n" % (section_header, label))
        parts.append(h.format(val_type, strip_leading_zero))
    return "".join(parts), hists




def print_log2_hist(
    vals: Any,
    val_type: str = "value",
    section_header: str = "Bucket ptr",
    section_print_fn: Optional[Callable[[Any], Any]] = None,
    bucket_fn: Optional[Callable[[Any], Any]] = None,
    strip_leading_zero: Optional[bool] = None,
    bucket_sort_fn: Optional[Callable[[List[Any]], Iterable[Any]]] = None,
    *,
    key_format: Optional[str] = None,
    section_key: Optional[Callable[[Any], Any]] = None,
    slot_key: Optional[Callable[[Any], int]] = None,
    value_format: Optional[str] = None,
    file: Optional[TextIO] = None,
) -> List[Histogram]:
    """Print ``vals`` as a log2 histogram, as bcc's ``print_log2_hist`` does; return the histograms.

    The arguments after ``vals`` are bcc's, in bcc's order.  A keyed
    histogram prints one table per section, each after a line
    ``"\\n<section_header> = <section>"`` (``section_print_fn(section)`` when
    given, else ``repr(section)``).  ``strip_leading_zero`` leaves out the
    rows before the first non-zero one.  ``file`` defaults to sys.stdout.
    See the module's notes for what ``vals`` may be.
    """
    text, hists = _format("log2", vals, val_type, section_header, section_print_fn, bucket_fn, strip_leading_zero, bucket_sort_fn,
                          key_format, section_key, slot_key, value_format)  # fmt: skip
    (sys.stdout if file is None else file).write(text)
    return hists


def print_linear_hist(
    vals: Any,
    val_type: str = "value",
    section_header: str = "Bucket ptr",
    section_print_fn: Optional[Callable[[Any], Any]] = None,
    bucket_fn: Optional[Callable[[Any], Any]] = None,
    strip_leading_zero: Optional[bool] = None,
    bucket_sort_fn: Optional[Callable[[List[Any]], Iterable[Any]]] = None,
    *,
    key_format: Optional[str] = None,
    section_key: Optional[Callable[[Any], Any]] = None,
    slot_key: Optional[Callable[[Any], int]] = None,
    value_format: Optional[str] = None,
    file: Optional[TextIO] = None,
) -> List[Histogram]:
    """Print ``vals`` as a linear histogram (slot i counts the value i), as bcc's ``print_linear_hist``; return the histograms.

    Same arguments as :func:`print_log2_hist`.
    """
    text, hists = _format("linear", vals, val_type, section_header, section_print_fn, bucket_fn, strip_leading_zero, bucket_sort_fn,
                          key_format, section_key, slot_key, value_format)  # fmt: skip
    (sys.stdout if file is None else file).write(text)
    return hists
