"""Immutable records: what ``@dataclass(frozen=True)`` gave, as a plain base class.

A subclass lists its fields in ``_fields`` (all of them, the base's first),
declares its own in ``__slots__`` and writes its ``__init__`` with
``_set(self, name, value)``.  It gets field-wise ``==`` between instances of
one class, ``hash``, a dataclass-style ``repr``, pickling and copying, and
refuses assignment; :func:`replace` copies one with changes and
``_asdict()`` gives its fields as a dict (what ``dataclasses.asdict`` gave,
without recursing into nested records).  Defining a
frozen dataclass costs ~1 ms at import (its methods are generated with
``exec``); these cost nothing beyond their .pyc.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Optional, Tuple, TypeVar


class FrozenInstanceError(AttributeError):
    """Assignment to a field of an immutable record (as frozen dataclasses refuse it)."""


_set = object.__setattr__
if TYPE_CHECKING:  # annotations only; a string bound costs the process its first compile() (~1 ms)
    R = TypeVar("R", bound="Record")


class Record:
    """Field-wise equality, hash and repr over ``_fields``, frozen."""

    __slots__ = ()
    _fields: ClassVar[Tuple[str, ...]] = ()
    _values: ClassVar[attrgetter[Tuple[Any, ...]]]
    # what dataclasses' field(compare=False) / field(repr=False) did: None is every field
    _compare: ClassVar[Optional[Tuple[str, ...]]] = None
    _no_repr: ClassVar[Tuple[str, ...]] = ()
    _cmp_values: ClassVar[attrgetter[Tuple[Any, ...]]]

    def __init_subclass__(cls) -> None:
        cls._values = _getter(cls._fields)  # type: ignore[assignment]
        cls._cmp_values = _getter(cls._fields if cls._compare is None else cls._compare)  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._cmp_values(self) == self._cmp_values(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._cmp_values(self))

    def __repr__(self) -> str:
        shown = ((f, v) for f, v in zip(self._fields, self._values(self)) if f not in self._no_repr)
        return f"{self.__class__.__qualname__}({', '.join(f'{f}={v!r}' for f, v in shown)})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        return self.__class__, self._values(self)

    def _asdict(self) -> Dict[str, Any]:
        """The fields, in order, as a new dict (field name -> value; values are not copied)."""
        return {f: getattr(self, f) for f in self._fields}


def _getter(names: Tuple[str, ...]) -> Any:
    """A function giving the tuple of these attributes (attrgetter returns a bare value for one name)."""
    if not names:
        return lambda o: ()
    get = attrgetter(*names)
    return get if len(names) > 1 else (lambda o: (get(o),))


def replace(obj: R, **changes: Any) -> R:
    """A copy of ``obj`` with some fields changed (what ``dataclasses.replace`` did; on a
    dataclass instance, ``dataclasses.replace`` itself)."""
    if not isinstance(obj, Record):
        import dataclasses

        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    values = dict(zip(obj._fields, obj._values(obj)))
    for k in changes:
        if k not in values:
            raise TypeError(f"{obj.__class__.__name__} has no field {k!r}")
    values.update(changes)
    return obj.__class__(**values)  # type: ignore[call-arg]

