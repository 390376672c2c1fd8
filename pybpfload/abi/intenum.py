"""A light ``enum.IntEnum``: the same members, names and lookups, made in microseconds.

Defining an ``enum.IntEnum`` costs ~20 us per member on CPython 3.11; the
kernel's UAPI enums have ~450 members, ~9 ms of every process's start-up.
Subclasses of :class:`IntEnum` here behave as IntEnum members do where
pybpfload and its users touch them:

- members are ``int`` instances of the class with ``.name`` and ``.value``;
  an alias (a second name for a value) is the first name's member;
- ``Cls(value)`` looks a member up (ValueError when none), ``Cls["NAME"]`` by
  name; ``iter(Cls)`` gives the members in definition order (no aliases),
  ``len(Cls)``, ``x in Cls`` (a member or a value), ``Cls.__members__``,
  ``Cls._value2member_map_``;
- ``repr`` is ``<Cls.NAME: 1>``, ``str`` and ``format`` are the number's
  (as IntEnum's on 3.11); members pickle and copy as themselves.

Members are found by value with a dict, so lookups are faster than enum's.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Dict, Iterator, Tuple, Type, TypeVar

if TYPE_CHECKING:  # annotations only; a string bound costs the process its first compile() (~1 ms)
    E = TypeVar("E", bound="_LightIntEnum")


class _IntEnumMeta(type):
    _member_map_: Dict[str, Any]
    _value2member_map_: Dict[int, Any]
    _members_: Tuple[Any, ...]

    def __new__(mcs, name: str, bases: Tuple[type, ...], ns: Dict[str, Any]) -> "_IntEnumMeta":
        values = {k: v for k, v in ns.items() if not k.startswith("_") and type(v) is int}
        for k in values:
            del ns[k]
        cls = super().__new__(mcs, name, bases, ns)
        by_value: Dict[int, Any] = {}
        by_name: Dict[str, Any] = {}
        for k, v in values.items():
            m = by_value.get(v)
            if m is None:
                m = by_value[v] = int.__new__(cls, v)  # type: ignore[arg-type]
                m._name_ = k  # type: ignore[assignment]
            by_name[k] = m
            type.__setattr__(cls, k, m)
        type.__setattr__(cls, "_member_map_", by_name)
        type.__setattr__(cls, "_value2member_map_", by_value)
        type.__setattr__(cls, "_members_", tuple(by_value.values()))
        return cls

    def __call__(cls: Type[E], value: Any) -> E:  # type: ignore[misc]
        try:
            return cls._value2member_map_[value]  # type: ignore[attr-defined,no-any-return]
        except (KeyError, TypeError):
            if isinstance(value, cls):
                return value
            raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

    def __getitem__(cls, name: str) -> Any:
        return cls._member_map_[name]

    def __iter__(cls) -> Iterator[Any]:
        return iter(cls._members_)

    def __reversed__(cls) -> Iterator[Any]:
        return reversed(cls._members_)

    def __len__(cls) -> int:
        return len(cls._members_)

    def __contains__(cls, x: object) -> bool:
        return x in cls._value2member_map_ if isinstance(x, int) else False

    @property
    def __members__(cls) -> "MappingProxyType[str, Any]":
        return MappingProxyType(cls._member_map_)

    def __setattr__(cls, name: str, value: Any) -> None:
        if name in cls.__dict__.get("_member_map_", {}):
            raise AttributeError(f"cannot reassign member {name!r}")
        super().__setattr__(name, value)

    def __repr__(cls) -> str:
        return f"<enum {cls.__name__!r}>"


class _LightIntEnum(int, metaclass=_IntEnumMeta):
    """Base of the light int enums (see the module docstring)."""

    _name_: str

    @property
    def name(self) -> str:
        return self._name_

    @property
    def value(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self._name_}: {int(self)}>"

    __str__ = int.__repr__
    __format__ = int.__format__

    def __reduce_ex__(self, proto: Any) -> Tuple[Any, Tuple[int]]:
        return type(self), (int(self),)

    def __copy__(self) -> "_LightIntEnum":
        return self

    def __deepcopy__(self, memo: Any) -> "_LightIntEnum":
        return self


if TYPE_CHECKING:  # type checkers know enum.IntEnum's members; at run time, the light one
    from enum import IntEnum as IntEnum
else:
    IntEnum = _LightIntEnum

__all__ = ["IntEnum"]
