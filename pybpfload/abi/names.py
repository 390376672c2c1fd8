"""Short lower-case names of the kernel's enum values, as libbpf's
``libbpf_bpf_*_type_str`` spell them ("xdp", "hash"); the number when the
value is one this table does not know."""

from __future__ import annotations

from typing import Any

from .uapi import MapType, ProgType

__all__ = ["short_name", "prog_type_name", "map_type_name"]


def short_name(enum_cls: Any, prefix: str, value: int) -> str:
    try:
        return str(enum_cls(value).name[len(prefix) :].lower())
    except ValueError:
        return str(value)


def prog_type_name(value: int) -> str:
    return short_name(ProgType, "BPF_PROG_TYPE_", value)


def map_type_name(value: int) -> str:
    return short_name(MapType, "BPF_MAP_TYPE_", value)
