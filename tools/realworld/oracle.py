"""libbpf 1.1 (Debian's libbpf.so.1) through ctypes: the ORACLE's view of an object, opened and loaded."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

View = Dict[str, Any]
Prep = Callable[[str, int, int, int], Dict[str, int]]  # (name, type, max_entries, value_size) -> changes

_SIGS = {
    "bpf_object__open_file": ("p", ["s", "p"]),
    "bpf_object__close": (None, ["p"]),
    "bpf_object__load": ("i", ["p"]),
    "bpf_object__name": ("s", ["p"]),
    "bpf_object__kversion": ("u", ["p"]),
    "bpf_object__next_program": ("p", ["p", "p"]),
    "bpf_object__next_map": ("p", ["p", "p"]),
    "bpf_program__name": ("s", ["p"]),
    "bpf_program__section_name": ("s", ["p"]),
    "bpf_program__type": ("i", ["p"]),
    "bpf_program__expected_attach_type": ("i", ["p"]),
    "bpf_program__insn_cnt": ("z", ["p"]),
    "bpf_program__insns": ("p", ["p"]),
    "bpf_program__autoload": ("b", ["p"]),
    "bpf_program__set_autoload": ("i", ["p", "b"]),
    "bpf_program__fd": ("i", ["p"]),
    "bpf_map__name": ("s", ["p"]),
    "bpf_map__type": ("i", ["p"]),
    "bpf_map__key_size": ("u", ["p"]),
    "bpf_map__value_size": ("u", ["p"]),
    "bpf_map__max_entries": ("u", ["p"]),
    "bpf_map__map_flags": ("u", ["p"]),
    "bpf_map__map_extra": ("q", ["p"]),
    "bpf_map__btf_key_type_id": ("u", ["p"]),
    "bpf_map__btf_value_type_id": ("u", ["p"]),
    "bpf_map__pin_path": ("s", ["p"]),
    "bpf_map__initial_value": ("p", ["p", "zp"]),
    "bpf_map__set_max_entries": ("i", ["p", "u"]),
    "bpf_map__set_value_size": ("i", ["p", "u"]),
    "bpf_map__fd": ("i", ["p"]),
    "libbpf_set_print": ("p", ["p"]),
    "libbpf_prog_type_by_name": ("i", ["s", "ip", "ip"]),
}
_C = {"p": ctypes.c_void_p, "s": ctypes.c_char_p, "i": ctypes.c_int, "u": ctypes.c_uint32, "z": ctypes.c_size_t,
      "b": ctypes.c_bool, "q": ctypes.c_uint64, "zp": ctypes.POINTER(ctypes.c_size_t),
      "ip": ctypes.POINTER(ctypes.c_int), None: None}
_LIB: Optional[ctypes.CDLL] = None


def lib() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        name = ctypes.util.find_library("bpf") or "libbpf.so.1"
        _LIB = ctypes.CDLL(name, use_errno=True)
        for fn, (res, args) in _SIGS.items():
            f = getattr(_LIB, fn)
            f.restype, f.argtypes = _C[res], [_C[a] for a in args]
        if not os.environ.get("REALWORLD_LIBBPF_VERBOSE"):
            _LIB.libbpf_set_print(None)
    return _LIB


def _iter(first: Callable[[Any, Any], Any], obj: int) -> List[int]:
    out, cur = [], first(obj, None)
    while cur:
        out.append(cur)
        cur = first(obj, cur)
    return out


def knows_section(name: str) -> bool:
    """Whether this libbpf's SEC() table knows ``name`` (pybpfload's follows libbpf 1.x's newest one)."""
    t, a = ctypes.c_int(), ctypes.c_int()
    return lib().libbpf_prog_type_by_name(name.encode(), ctypes.byref(t), ctypes.byref(a)) == 0


def open_view(path: Path) -> View:
    """Programs and maps as libbpf reports them after bpf_object__open_file (no kernel involved)."""
    L = lib()
    obj = L.bpf_object__open_file(str(path).encode(), None)
    if not obj:
        return {"error": f"open failed: errno {ctypes.get_errno()}"}
    try:
        progs = []
        for p in _iter(L.bpf_object__next_program, obj):
            n = L.bpf_program__insn_cnt(p)
            progs.append({
                "name": L.bpf_program__name(p).decode(), "section": L.bpf_program__section_name(p).decode(),
                "type": L.bpf_program__type(p), "expected_attach_type": L.bpf_program__expected_attach_type(p),
                "insns": ctypes.string_at(L.bpf_program__insns(p), n * 8), "autoload": L.bpf_program__autoload(p),
            })  # fmt: skip
        maps = []
        for m in _iter(L.bpf_object__next_map, obj):
            size = ctypes.c_size_t(0)
            ptr = L.bpf_map__initial_value(m, ctypes.byref(size))
            maps.append({
                "name": L.bpf_map__name(m).decode(), "type": L.bpf_map__type(m), "key_size": L.bpf_map__key_size(m),
                "value_size": L.bpf_map__value_size(m), "max_entries": L.bpf_map__max_entries(m),
                "flags": L.bpf_map__map_flags(m), "map_extra": L.bpf_map__map_extra(m),
                "pin_path": (L.bpf_map__pin_path(m) or b"").decode() or None,
                "initial_value": ctypes.string_at(ptr, size.value) if ptr else None,
                "btf_key_type_id": L.bpf_map__btf_key_type_id(m), "btf_value_type_id": L.bpf_map__btf_value_type_id(m),
            })  # fmt: skip
        return {"name": L.bpf_object__name(obj).decode(), "kversion": L.bpf_object__kversion(obj),
                "programs": progs, "maps": maps}
    finally:
        L.bpf_object__close(obj)


def load_view(path: Path, autoload: Callable[[str, int], bool], prep: Prep,
              describe: Callable[[int, int], Any]) -> View:
    """Load with libbpf: program tags and the kernel's view of each map (``describe(kind, fd)``)."""
    L = lib()
    obj = L.bpf_object__open_file(str(path).encode(), None)
    if not obj:
        return {"error": f"open failed: errno {ctypes.get_errno()}"}
    try:
        progs = _iter(L.bpf_object__next_program, obj)
        for p in progs:
            L.bpf_program__set_autoload(p, autoload(L.bpf_program__name(p).decode(), L.bpf_program__type(p)))
        maps = _iter(L.bpf_object__next_map, obj)
        for m in maps:
            change = prep(L.bpf_map__name(m).decode(), L.bpf_map__type(m), L.bpf_map__max_entries(m),
                          L.bpf_map__value_size(m))
            if "max_entries" in change:
                L.bpf_map__set_max_entries(m, change["max_entries"])
            if "value_size" in change:
                L.bpf_map__set_value_size(m, change["value_size"])
        rc = L.bpf_object__load(obj)
        if rc:
            return {"error": f"load failed: {os.strerror(-rc) if rc < 0 else rc}"}
        view: View = {"programs": {}, "maps": {}, "insns": {}}
        for p in progs:
            if L.bpf_program__fd(p) >= 0:
                name = L.bpf_program__name(p).decode()
                view["programs"][name] = describe(0, L.bpf_program__fd(p))
                view["insns"][name] = ctypes.string_at(L.bpf_program__insns(p), L.bpf_program__insn_cnt(p) * 8)
        for m in maps:
            if L.bpf_map__fd(m) >= 0:
                view["maps"][L.bpf_map__name(m).decode()] = describe(1, L.bpf_map__fd(m))
        return view
    finally:
        L.bpf_object__close(obj)
