"""BTF, pure: decode, query, encode, fix up and dump as C (no syscalls).

* :class:`Spec` — a lazily decoded BTF blob (``Spec.from_file``,
  ``Spec.from_bytes``, split BTF with ``base=``); :mod:`.types` is its model.
* :mod:`.query` — sizes, alignment, member offsets, C spellings.
* :class:`Builder` / :class:`StringTable` — editing and encoding.
* :func:`parse_ext` — .BTF.ext func_info, line_info and CO-RE records.
* :mod:`.fixup` — libbpf's pre-load fix-ups (:class:`BtfFeatures` says what to sanitise).
* :mod:`.relo_core` — the CO-RE engine (libbpf's relo_core.c).
* :func:`vmlinux_spec` — the running kernel's BTF, read from /sys/kernel/btf.
  BTF objects in the kernel (:class:`~pybpfload.syscall.btf_handle.BtfHandle`)
  and the BTF feature probes belong to :mod:`pybpfload.syscall`.
* :func:`dump_c` — C declarations (vmlinux.h).
"""

from __future__ import annotations

import importlib
from typing import Any

from . import types
from .spec import BTF_MAGIC, Spec, TypeNotFoundError

_LAZY = {
    "Builder": "encode",
    "StringTable": "encode",
    "parse_ext": "ext",
    "ExtInfo": "ext",
    "CoreReloKind": "ext",
    "vmlinux_spec": "vmlinux",
    "module_spec": "vmlinux",
    "BtfFeatures": "fixup",
    "dump_c": "cdump",
    "CDumper": "cdump",
}

__all__ = ["Spec", "types", "BTF_MAGIC", "TypeNotFoundError", *_LAZY]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'pybpfload.btf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value
