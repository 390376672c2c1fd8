"""Which BTF kinds the running kernel accepts, found by loading tiny BTF blobs
(the probes behind :class:`~pybpfload.btf.fixup.BtfFeatures`).

Each probe builds a few types with :class:`~.encode.Builder` and tries
BPF_BTF_LOAD; the answers are cached for the life of the process, or on the
BPF token the blobs were loaded through (as libbpf probes with an object's
token).  The result is a :class:`BtfFeatures`, the input of :func:`.fixup.sanitize`.
"""

from __future__ import annotations

import _thread  # allocate_lock is threading.Lock, without importing threading (~1 ms)
from typing import TYPE_CHECKING, Callable, Dict, Optional

from ..btf import types as T
from ..btf.encode import Builder
from ..btf.fixup import BtfFeatures

if TYPE_CHECKING:  # pragma: no cover
    from .token import Token


def _int(b: Builder, name: str = "int") -> int:
    return b.add(T.Int(0, name, 4, T.INT_SIGNED, 0, 32))


def _blob_btf() -> bytes:
    b = Builder()
    _int(b)
    return b.encode()


def _blob_func(linkage: int) -> Callable[[], bytes]:
    def make() -> bytes:
        b = Builder()
        i = _int(b)
        proto = b.add(T.FuncProto(0, "", 0, (T.Param("a", i),)))
        b.add(T.Func(0, "x", proto, linkage))
        return b.encode()

    return make


def _blob_datasec(section: str) -> Callable[[], bytes]:
    def make() -> bytes:
        b = Builder()
        i = b.add(T.Int(0, "", 4, T.INT_SIGNED, 0, 32))
        v = b.add(T.Var(0, "x", i, T.LINKAGE_STATIC))
        b.add(T.Datasec(0, section, 4, (T.VarSecinfo(v, 0, 4),)))
        return b.encode()

    return make


def _blob_float() -> bytes:
    b = Builder()
    b.add(T.Float(0, "float", 4))
    return b.encode()


def _blob_decl_tag() -> bytes:
    b = Builder()
    i = b.add(T.Int(0, "", 4, T.INT_SIGNED, 0, 32))
    v = b.add(T.Var(0, "tag", i, T.LINKAGE_STATIC))
    b.add(T.DeclTag(0, "tag", v, -1))
    return b.encode()


def _blob_type_tag() -> bytes:
    b = Builder()
    i = b.add(T.Int(0, "", 4, T.INT_SIGNED, 0, 32))
    tag = b.add(T.TypeTag(0, "tag", i))
    b.add(T.Pointer(0, "", tag))
    return b.encode()


def _blob_enum64() -> bytes:
    b = Builder()
    b.add(T.Enum64(0, "enum64", 8, (), False))
    return b.encode()


PROBES: Dict[str, Callable[[], bytes]] = {
    "btf": _blob_btf,
    "func": _blob_func(T.LINKAGE_STATIC),
    "func_global": _blob_func(T.LINKAGE_GLOBAL),
    "datasec": _blob_datasec(".data"),
    "qmark_datasec": _blob_datasec("?.data"),
    "float": _blob_float,
    "decl_tag": _blob_decl_tag,
    "type_tag": _blob_type_tag,
    "enum64": _blob_enum64,
}

_lock = _thread.allocate_lock()
_cached: Optional[BtfFeatures] = None


def _accepted(blob: bytes, token_fd: int = 0) -> bool:
    from ..errors import SyscallError
    from . import commands

    try:
        fd, _ = commands.btf_load(blob, token_fd=token_fd)
    except SyscallError:
        return False
    fd.close()
    return True


def probe(refresh: bool = False, *, token: "Optional[Token]" = None) -> BtfFeatures:
    """Probe the running kernel (once per process unless ``refresh``).

    With a ``token`` the blobs are loaded through it and the answer is cached on it.
    """
    global _cached
    with _lock:
        if token is not None:
            hit = token._features.get(("btf_features",))
            if hit is None or refresh:
                hit = BtfFeatures(**{name: _accepted(make(), token.fd) for name, make in PROBES.items()})
                token._features[("btf_features",)] = hit
            return hit  # type: ignore[no-any-return]
        if _cached is None or refresh:
            _cached = BtfFeatures(**{name: _accepted(make()) for name, make in PROBES.items()})
        return _cached


__all__ = ["PROBES", "probe"]
