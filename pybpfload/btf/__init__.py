"""BTF: decode, query, encode, load into the kernel and dump as C.

* :class:`Spec` — a lazily decoded BTF blob (``Spec.from_file``,
  ``Spec.from_bytes``, split BTF with ``base=``); :mod:`.types` is its model.
* :mod:`.query` — sizes, alignment, member offsets, C spellings.
* :class:`Builder` / :class:`StringTable` — editing and encoding.
* :func:`parse_ext` — .BTF.ext func_info, line_info and CO-RE records.
* :mod:`.fixup` / :mod:`.features` — libbpf's pre-load fix-ups and probes.
* :class:`BtfHandle`, :func:`vmlinux_spec` — BTF in the kernel.
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
    "BtfHandle": "kernel",
    "BtfInfo": "kernel",
    "vmlinux_spec": "kernel",
    "module_spec": "kernel",
    "BtfFeatures": "features",
    "probe_features": "features",
    "dump_c": "cdump",
    "CDumper": "cdump",
}

__all__ = ["Spec", "types", "BTF_MAGIC", "TypeNotFoundError", *_LAZY]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'pybpfload.btf' has no attribute {name!r}")
    attr = "probe" if name == "probe_features" else name
    value = getattr(importlib.import_module(f".{mod}", __name__), attr)
    globals()[name] = value
    return value
