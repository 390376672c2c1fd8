"""btf.h: ``struct btf`` and the ``btf__*`` functions (libbpf's names; see
:mod:`pybpfload.libbpf`)."""

from __future__ import annotations

import errno as _errno
from typing import Any, Callable, Optional

from ..errors import BPFError
from ..object import Object
from ..syscall import commands
from ._common import _fail, _int_api, _null, _ptr_api, _set_out


# ---------------------------------------------------------------------------- btf.h
class Btf:
    """struct btf: decoded BTF (:attr:`spec`) and its fd in the kernel (-1 when not loaded)."""

    def __init__(self, spec: Any, *, fd_source: Optional[Callable[[], int]] = None) -> None:
        self.spec = spec
        self._fd_source = fd_source
        self._own_fd: Any = None  # an Fd from btf__load_into_kernel

    @property
    def fd(self) -> int:
        if self._own_fd is not None and not self._own_fd.closed:
            return int(self._own_fd.raw)
        return self._fd_source() if self._fd_source is not None else -1

    def close(self) -> None:
        if self._own_fd is not None:
            self._own_fd.close()

    def __repr__(self) -> str:
        return f"<Btf types={len(self.spec)} fd={self.fd}>"


@_ptr_api
def btf__parse(path: str, btf_ext: Any = None) -> Optional[Btf]:
    """BTF of a raw BTF file or of an ELF object's .BTF section."""
    from ..btf import Spec
    from ..errors import BTFError

    if btf_ext is not None:
        _set_out(btf_ext, None)  # type: ignore[arg-type]
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        return _null(e.errno or _errno.EIO)
    if head == b"\x7fELF":
        return btf__parse_elf(path, None)
    try:
        return Btf(Spec.from_file(path))
    except BTFError:
        return _null(_errno.EPROTO)


@_ptr_api
def btf__parse_raw(path: str) -> Optional[Btf]:
    from ..btf import Spec

    return Btf(Spec.from_file(path))


@_ptr_api
def btf__parse_elf(path: str, btf_ext: Any = None) -> Optional[Btf]:
    from ..btf import Spec

    with open(path, "rb") as f:
        data = f.read()
    obj = Object.open_mem(data, object_name="btf")
    if obj.model.btf_raw is None:
        return _null(_errno.ENOENT)
    return Btf(Spec.from_bytes(obj.model.btf_raw))


@_ptr_api
def btf__new(data: Any, size: Optional[int] = None) -> Optional[Btf]:
    from ..btf import Spec

    raw = bytes(memoryview(data).cast("B"))
    return Btf(Spec.from_bytes(raw if size is None else raw[:size]))


@_ptr_api
def btf__load_vmlinux_btf() -> Optional[Btf]:
    """The running kernel's BTF (/sys/kernel/btf/vmlinux)."""
    from ..btf import vmlinux_spec

    return Btf(vmlinux_spec())


def btf__free(btf: Optional[Btf]) -> None:
    if btf is not None:
        btf.close()


@_int_api
def btf__load_into_kernel(btf: Btf) -> int:
    """Load the BTF into the kernel; -EEXIST if it already has an fd."""
    if btf.fd >= 0:
        return -_errno.EEXIST
    fd, _ = commands.btf_load(btf.spec.raw)
    btf._own_fd = fd
    return 0


def btf__fd(btf: Btf) -> int:
    return btf.fd


def btf__type_cnt(btf: Btf) -> int:
    """Number of type ids, void included."""
    return len(btf.spec)


def btf__base_btf(btf: Btf) -> Optional[Btf]:
    base = btf.spec.base
    return Btf(base) if base is not None else None


def btf__type_by_id(btf: Btf, type_id: int) -> Any:
    """The type with id ``type_id`` (a :mod:`pybpfload.btf.types` dataclass); None + EINVAL out of range."""
    if not 0 <= type_id < len(btf.spec):
        return _null(_errno.EINVAL)
    try:
        return btf.spec.type(type_id)
    except BPFError:
        return _null(_errno.EINVAL)


def btf__str_by_offset(btf: Btf, offset: int) -> Optional[str]:
    try:
        return str(btf.spec.string(offset))
    except BPFError:
        return _null(_errno.EINVAL)


def btf__name_by_offset(btf: Btf, offset: int) -> Optional[str]:
    return btf__str_by_offset(btf, offset)


def btf__find_by_name(btf: Btf, type_name: str) -> int:
    if type_name == "void":
        return 0
    ids = btf.spec.find_ids(type_name)
    return ids[0] if ids else _fail(-_errno.ENOENT)


def btf__find_by_name_kind(btf: Btf, type_name: str, kind: int) -> int:
    """Id of the first type called ``type_name`` of BTF_KIND ``kind``; -ENOENT when none."""
    if kind == 0 or type_name == "void":
        return 0
    for tid in btf.spec.find_ids(type_name):
        if btf.spec.kind_of(tid) == kind:
            return int(tid)
    return _fail(-_errno.ENOENT)


@_int_api
def btf__resolve_size(btf: Btf, type_id: int) -> int:
    return int(btf.spec.size(type_id))


@_int_api
def btf__resolve_type(btf: Btf, type_id: int) -> int:
    """The id behind typedefs, modifiers and vars; -EINVAL for void."""
    spec = btf.spec
    from ..btf import types as T

    chain = (T.Kind.TYPEDEF, T.Kind.VOLATILE, T.Kind.CONST, T.Kind.RESTRICT, T.Kind.TYPE_TAG, T.Kind.VAR)
    for _ in range(32):
        if type_id == 0 or type_id >= len(spec) or spec.kind_of(type_id) == T.Kind.FWD:
            return -_errno.EINVAL  # void, out of range, or a forward declaration (void to libbpf)
        if spec.kind_of(type_id) not in chain:
            return type_id
        type_id = spec.type(type_id).type
    return -_errno.EINVAL


@_int_api
def btf__align_of(btf: Btf, id: int) -> int:
    return int(btf.spec.align(id))


def btf__raw_data(btf: Btf, size: Any = None) -> bytes:
    raw = btf.spec.raw
    _set_out(size, len(raw))
    return raw
