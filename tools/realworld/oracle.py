"""libbpf through ctypes, the ORACLE's view of an object, opened and loaded: Debian's libbpf.so.1 (1.1) or any other."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

View = Dict[str, Any]
Prep = Callable[[str, int, int, int], Dict[str, int]]  # (name, type, max_entries, value_size) -> changes (and autocreate)

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
    "bpf_map__autocreate": ("b", ["p"]),
    "bpf_map__initial_value": ("p", ["p", "zp"]),
    "bpf_map__set_max_entries": ("i", ["p", "u"]),
    "bpf_map__set_value_size": ("i", ["p", "u"]),
    "bpf_map__set_autocreate": ("i", ["p", "b"]),
    "bpf_map__fd": ("i", ["p"]),
    "libbpf_set_print": ("p", ["p"]),
    "libbpf_prog_type_by_name": ("i", ["s", "ip", "ip"]),
    "libbpf_version_string": ("s", []),
}
_C = {"p": ctypes.c_void_p, "s": ctypes.c_char_p, "i": ctypes.c_int, "u": ctypes.c_uint32, "z": ctypes.c_size_t,
      "b": ctypes.c_bool, "q": ctypes.c_uint64, "zp": ctypes.POINTER(ctypes.c_size_t),
      "ip": ctypes.POINTER(ctypes.c_int), None: None}


class Libbpf:
    """One libbpf shared object through ctypes: Debian's libbpf.so.1 (1.1) by default, or the one at ``path``."""

    def __init__(self, path: Optional[Path] = None, label: str = "libbpf 1.1") -> None:
        self.path = path
        self.label = label
        self._lib: Optional[ctypes.CDLL] = None

    def lib(self) -> ctypes.CDLL:
        if self._lib is None:
            if self.path is None:
                lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
            else:
                lib = ctypes.CDLL(str(self.path), mode=os.RTLD_LOCAL | os.RTLD_NOW, use_errno=True)
            for fn, (res, args) in _SIGS.items():
                f = getattr(lib, fn)
                f.restype, f.argtypes = _C[res], [_C[a] for a in args]
            if not os.environ.get("REALWORLD_LIBBPF_VERBOSE"):
                lib.libbpf_set_print(None)
            self._lib = lib
        return self._lib

    def version(self) -> str:
        """libbpf_version_string(), e.g. "v1.1"."""
        return self.lib().libbpf_version_string().decode()

    def knows_section(self, name: str) -> bool:
        """Whether this libbpf's SEC() table knows ``name``."""
        t, a = ctypes.c_int(), ctypes.c_int()
        return self.lib().libbpf_prog_type_by_name(name.encode(), ctypes.byref(t), ctypes.byref(a)) == 0

    def open_view(self, path: Path) -> View:
        return _open_view(self.lib(), path)

    def load_view(self, path: Path, autoload: Callable[[str, int], bool], prep: Prep,
                  describe: Callable[[int, int], Any]) -> View:  # fmt: skip
        return _load_view(self.lib(), path, autoload, prep, describe)


LIBBPF_1_1 = Libbpf()


def lib() -> ctypes.CDLL:
    """Debian's libbpf 1.1 (the first oracle)."""
    return LIBBPF_1_1.lib()


def _iter(first: Callable[[Any, Any], Any], obj: int) -> List[int]:
    out, cur = [], first(obj, None)
    while cur:
        out.append(cur)
        cur = first(obj, cur)
    return out


def knows_section(name: str) -> bool:
    """Whether libbpf 1.1's SEC() table knows ``name`` (pybpfload's follows libbpf 1.x's newest one)."""
    return LIBBPF_1_1.knows_section(name)


def open_view(path: Path) -> View:
    """libbpf 1.1's view after open (see _open_view)."""
    return LIBBPF_1_1.open_view(path)


def load_view(path: Path, autoload: Callable[[str, int], bool], prep: Prep,
              describe: Callable[[int, int], Any]) -> View:  # fmt: skip
    """libbpf 1.1's view after load (see _load_view)."""
    return LIBBPF_1_1.load_view(path, autoload, prep, describe)


def _open_view(L: ctypes.CDLL, path: Path) -> View:
    """Programs and maps as libbpf reports them after bpf_object__open_file (no kernel involved)."""
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
                "pin_path": (L.bpf_map__pin_path(m) or b"").decode() or None, "autocreate": L.bpf_map__autocreate(m),
                "initial_value": ctypes.string_at(ptr, size.value) if ptr else None,
                "btf_key_type_id": L.bpf_map__btf_key_type_id(m), "btf_value_type_id": L.bpf_map__btf_value_type_id(m),
            })  # fmt: skip
        return {"name": L.bpf_object__name(obj).decode(), "kversion": L.bpf_object__kversion(obj),
                "programs": progs, "maps": maps}
    finally:
        L.bpf_object__close(obj)


def _is_map_fd(fd: int) -> bool:
    """A created map's fd (libbpf 1.3+ gives maps it did not create a placeholder fd, a memfd)."""
    try:
        return fd >= 0 and os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-map"
    except OSError:
        return False


def _load_view(L: ctypes.CDLL, path: Path, autoload: Callable[[str, int], bool], prep: Prep,
               describe: Callable[[int, int], Any]) -> View:  # fmt: skip
    """Load with libbpf: program tags and the kernel's view of each map (``describe(kind, fd)``)."""
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
            if "autocreate" in change:
                L.bpf_map__set_autocreate(m, bool(change["autocreate"]))
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
            if _is_map_fd(L.bpf_map__fd(m)):
                view["maps"][L.bpf_map__name(m).decode()] = describe(1, L.bpf_map__fd(m))
        return view
    finally:
        L.bpf_object__close(obj)
