"""BTF objects in the kernel: :class:`BtfHandle` owns the fd of one.

Loading (BPF_BTF_LOAD) keeps the kernel's log; reading back by id
(``BTF_GET_FD_BY_ID`` and ``OBJ_GET_INFO_BY_FD``) gives the raw BTF of any
loaded object, including that of programs and maps (their info's ``btf_id``).
The decoding itself is :mod:`pybpfload.btf`'s (pure); this module is the
part that talks to the kernel.
"""

from __future__ import annotations

import ctypes
import errno
from ..abi.record import Record, _set
from typing import Iterator, Optional, Union

from ..btf.spec import Spec
from ..btf.vmlinux import vmlinux_spec
from ..errors import BTFError, StateError, SyscallError
from .fd import Fd, FdOwner

__all__ = ["BtfInfo", "BtfHandle", "iter_kernel_btf"]


class BtfInfo(Record):
    """struct bpf_btf_info, decoded."""

    __slots__ = _fields = ("id", "name", "kernel_btf", "size")
    id: int
    name: str  # "vmlinux" or the module name for kernel BTF; "" otherwise
    kernel_btf: bool
    size: int

    def __init__(self, id: int, name: str, kernel_btf: bool, size: int) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "kernel_btf", kernel_btf)
        _set(self, "size", size)


class BtfHandle(FdOwner):
    """A BTF object loaded in the kernel; owns its fd (closed by close() or ``with``)."""

    def __init__(self, fd: "Fd", log: str = "") -> None:
        self._fd = fd
        self.log = log

    # -- construction -------------------------------------------------------------------
    @classmethod
    def load(cls, btf: Union[Spec, bytes], *, log_level: int = 0, log_size: int = 64 * 1024, token_fd: int = 0) -> "BtfHandle":
        """BPF_BTF_LOAD a Spec or a raw blob.

        A rejection raises :class:`~pybpfload.errors.VerifierError` whose
        ``log`` is the kernel's BTF log.  With ``log_level`` > 0 the log of a
        success is kept in :attr:`log`.  ``token_fd``: a BPF token to load through.
        """
        from . import commands

        data = btf.raw if isinstance(btf, Spec) else bytes(btf)
        fd, log = commands.btf_load(data, log_level=log_level, log_size=log_size, token_fd=token_fd)
        return cls(fd, log)

    @classmethod
    def from_id(cls, btf_id: int) -> "BtfHandle":
        """Open the loaded BTF object with this id (BPF_BTF_GET_FD_BY_ID)."""
        from . import commands

        return cls(commands.get_fd_by_id("btf", btf_id))

    # -- queries ---------------------------------------------------------------------------
    def info(self) -> BtfInfo:
        """Id, name, kernel_btf and size of this BTF object."""
        from ..abi import uapi as _types
        from . import commands

        if self._fd.closed:
            raise StateError("BTF handle is closed")
        name = ctypes.create_string_buffer(256)
        info = _types.BtfInfo(name=ctypes.addressof(name), name_len=ctypes.sizeof(name))
        try:
            commands.obj_get_info_by_fd(self.fd, info, name="BTF")
        except SyscallError as e:
            if e.errno != errno.E2BIG:
                raise
            # Linux < 5.11: struct bpf_btf_info ends at ``id`` (no name, no
            # kernel_btf) and the kernel refuses a non-zero field beyond it.
            info = _types.BtfInfo()
            commands.obj_get_info_by_fd(self.fd, info, name="BTF")
            name.value = b""
        return BtfInfo(info.id, name.value.decode("utf-8", "replace"), bool(info.kernel_btf), info.btf_size)

    @property
    def id(self) -> int:
        return self.info().id

    def raw(self) -> bytes:
        """The raw BTF blob the kernel holds for this object."""
        from ..abi import uapi as _types
        from . import commands

        if self._fd.closed:
            raise StateError("BTF handle is closed")
        size = self.info().size
        for _ in range(4):  # the size cannot change, but be safe against a short first guess
            buf = ctypes.create_string_buffer(max(size, 1))
            info = _types.BtfInfo(btf=ctypes.addressof(buf), btf_size=size)
            commands.obj_get_info_by_fd(self.fd, info, name="BTF")
            if info.btf_size <= size:
                return buf.raw[: info.btf_size]
            size = info.btf_size
        raise BTFError("BTF size kept changing while reading it back")  # pragma: no cover

    def spec(self, base: Optional[Spec] = None) -> Spec:
        """Decode this object's BTF.  Kernel module BTF is split on vmlinux BTF,
        which is used as base unless ``base`` is given."""
        info = self.info()
        data = self.raw()
        if base is None and info.kernel_btf and info.name != "vmlinux":
            base = vmlinux_spec()
        return Spec.from_bytes(data, base)

    def __repr__(self) -> str:
        return f"BtfHandle(fd={self._fd.raw})"



def iter_kernel_btf() -> Iterator[BtfHandle]:
    """A handle on every BTF object loaded in the kernel (the caller closes them)."""
    from . import commands

    for btf_id in commands.iter_ids("btf"):
        try:
            yield BtfHandle.from_id(btf_id)
        except SyscallError:  # gone in the meantime
            continue
