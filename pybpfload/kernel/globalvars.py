"""Global variables by name: ``obj.rodata.threshold = 5``, ``obj.bss.hits``.

A :class:`SectionVars` is one data section's variables (``.data``,
``.rodata``, ``.bss``, ``.data.<name>``, ``.rodata.<name>``, ``.kconfig``),
typed by the object's BTF (:mod:`pybpfload.btf.values`) and placed by its
DATASEC (offsets filled from the ELF, as libbpf does at open).

- Before load, reads and writes go to the image the section's map will be
  created with (``Map.initial_value``): the way to set ``const volatile``
  configuration.
- After load, they go to the live map: through a shared mapping when the map
  is BPF_F_MMAPABLE (what libbpf's skeleton does), else element 0 is looked
  up or read, changed and updated.  ``.rodata`` is frozen at load and
  ``.kconfig`` is the loader's: writing them then raises StateError.
- ``__arena`` globals (``.addr_space.1``, ``obj.arena``) live in the object's
  arena map: before load in the image copied into the arena at load
  (``Map.initial_value``), after load straight in the arena's mapping
  (``Map.arena``), where the programs see every write at once.

An unknown name raises :class:`~pybpfload.errors.UnknownAttributeError`
listing the section's variables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

from ..errors import StateError, UnknownAttributeError

if TYPE_CHECKING:
    from ..btf.spec import Spec
    from ..btf.values import Codec
    from .maps import Map

BPF_F_MMAPABLE = 1 << 10


class SectionVars:
    """The variables of one data section; see the module docstring."""

    __slots__ = ("_map", "_section", "_vars", "_readonly_loaded", "_always_readonly", "_mm", "_arena")

    _map: "Map"
    _section: str
    _vars: Dict[str, Tuple[int, "Codec"]]
    _readonly_loaded: bool
    _always_readonly: bool
    _mm: Any
    _arena: bool  # the __arena globals: in the arena's mapping once created

    def __new__(cls, m: "Map", section: str, btf: "Spec", kind: str) -> "SectionVars":
        from ..btf import types as T
        from ..btf.values import codec

        variables: Dict[str, Tuple[int, Codec]] = {}
        try:
            ds = btf.type(btf.find_id(section, T.Kind.DATASEC))
        except Exception:  # no DATASEC (a section without variables)
            ds = None
        if isinstance(ds, T.Datasec):
            for vs in ds.vars:
                var = btf.type(vs.type)
                if isinstance(var, T.Var) and var.name and var.name not in variables:
                    variables[var.name] = (vs.offset, codec(btf, var.type))
        # one class per section: a property per variable (the fast path of obj.bss.hits)
        ns: Dict[str, Any] = {"__slots__": ()}
        for name, (off, c) in variables.items():
            if name.isidentifier() and not hasattr(SectionVars, name):
                ns[name] = _var_property(name, off, c)
        sub = type("SectionVars", (cls,), ns)
        self: Any = object.__new__(sub)
        object.__setattr__(self, "_map", m)
        object.__setattr__(self, "_section", section)
        object.__setattr__(self, "_vars", variables)
        object.__setattr__(self, "_readonly_loaded", kind == "rodata")
        object.__setattr__(self, "_always_readonly", kind == "kconfig")
        object.__setattr__(self, "_mm", None)
        object.__setattr__(self, "_arena", kind == "arena")
        return self

    # ------------------------------------------------------------ access
    def _live_buffer(self) -> Any:
        """Where the variables are now: the mapping, the live element 0, or the stored image."""
        mm = self._mm
        if mm is not None:
            return mm
        m = self._map
        if not m.created:
            image = m.__dict__.get("_initial_value")
            if image is not None and not isinstance(image, (bytes, bytearray)):
                return _Zeros(len(image))  # a ZeroImage (.bss): not materialised to be read
            return m.initial_value or bytes(m.value_size)
        if self._arena:  # looked up each time: the mapping goes with the map's close
            return m._arena_globals_view()
        if m.flags & BPF_F_MMAPABLE:
            try:
                mm = m.mmap(writable=not (self._readonly_loaded or self._always_readonly))
            except Exception:
                mm = None
            if mm is not None:
                object.__setattr__(self, "_mm", mm)
                return mm
        return m.initial_value

    def _get(self, name: str) -> Any:
        hit = self._vars.get(name)
        if hit is None:
            raise self._unknown(name)
        off, c = hit
        v = _decode(c.decode, c.size, self._live_buffer(), off)
        if _is_aggregate(c):
            from ..btf.values import write_back

            v = write_back(v, lambda x: self._set(name, x), f"{self._section}.{name}")
        return v

    def _set(self, name: str, value: Any) -> None:
        hit = self._vars.get(name)
        if hit is None:
            raise self._unknown(name)
        off, c = hit
        m = self._map
        if self._always_readonly:
            raise StateError(f"{self._section}.{name}: .kconfig variables are set by the loader, not written")
        if m.created and self._readonly_loaded:
            raise StateError(f"{self._section}.{name}: {self._section} was frozen at load (read-only); set it before load()")
        buf = self._live_buffer()
        new = c.pack(value, base=bytes(buf[off : off + c.size]), path=f"{self._section}.{name}")
        if buf is self._mm or (self._arena and m.created):
            buf[off : off + c.size] = new
            return
        image = bytearray(bytes(buf))
        image[off : off + c.size] = new
        if m.created:
            m._update_raw(0, bytes(image), "update")
        else:
            m.initial_value = bytes(image)

    def _unknown(self, name: str) -> UnknownAttributeError:
        import difflib

        close = difflib.get_close_matches(name, list(self._vars), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        names = ", ".join(self._vars) or "none"
        return UnknownAttributeError(f"{self._section} has no variable {name!r}; {hint}its variables: {names}")

    def __getattr__(self, name: str) -> Any:  # names that are not identifiers, or shadowed
        if name.startswith("__"):
            raise AttributeError(name)
        return self._get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._set(name, value)

    def __getitem__(self, name: str) -> Any:
        return self._get(name)

    def __setitem__(self, name: str, value: Any) -> None:
        self._set(name, value)

    def __contains__(self, name: object) -> bool:
        return name in self._vars

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)

    def __dir__(self) -> List[str]:
        return sorted(set(self._vars) | set(object.__dir__(self)))

    def _asdict(self) -> Dict[str, Any]:
        """Every variable's current value."""
        buf = self._live_buffer()
        return {n: _decode(c.decode, c.size, buf, off) for n, (off, c) in self._vars.items()}

    def _codec(self, name: str) -> "Codec":
        hit = self._vars.get(name)
        if hit is None:
            raise self._unknown(name)
        return hit[1]

    def _close(self) -> None:
        mm = self._mm
        if mm is not None:
            object.__setattr__(self, "_mm", None)
            mm.close()

    def __repr__(self) -> str:
        return f"<{self._section} variables: {', '.join(self._vars) or 'none'}>"


class _Zeros:
    """An all-zero buffer of ``size`` bytes whose slices are made on demand."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, s: slice) -> bytes:
        start, stop, _ = s.indices(self.size)
        return bytes(max(0, stop - start))

    def __bytes__(self) -> bytes:
        return bytes(self.size)


def _decode(decode: Any, size: int, buf: Any, off: int) -> Any:
    if isinstance(buf, _Zeros):
        return decode(bytes(size), 0)
    return decode(buf, off)


def _var_property(name: str, off: int, c: "Codec") -> property:
    decode = c.decode
    if _is_aggregate(c):  # a struct, union or array: a copy that writes itself back when changed
        from ..btf.values import write_back

        def get(self: SectionVars) -> Any:
            v = _decode(decode, c.size, self._live_buffer(), off)
            return write_back(v, lambda x: self._set(name, x), f"{self._section}.{name}")

        return property(get, lambda self, value: self._set(name, value))

    def get(self: SectionVars) -> Any:  # type: ignore[no-redef]
        mm = self._mm
        if mm is not None:
            return decode(mm, off)
        return _decode(decode, c.size, self._live_buffer(), off)

    def set_(self: SectionVars, value: Any) -> None:
        self._set(name, value)

    return property(get, set_)


def _is_aggregate(c: "Codec") -> bool:
    """Decoded to a mutable Python object (a value object or a list): changes to it must reach the map."""
    from ..btf import values as V

    return c.value_class is not None or isinstance(c, V._List)


def section_kind(section: str) -> Optional[str]:
    """ "data", "rodata", "bss", "kconfig" or "arena" for a data section's name, else None."""
    if section == ".addr_space.1":
        return "arena"
    for kind in ("rodata", "data", "bss"):
        if section == "." + kind or section.startswith("." + kind + "."):
            return kind
    if section == ".kconfig":
        return "kconfig"
    return None


__all__ = ["SectionVars", "section_kind"]
