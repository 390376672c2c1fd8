"""Pinning objects on bpffs: path checks, pin, open, unpin."""

from __future__ import annotations

import ctypes
import errno
import os

from typing import TYPE_CHECKING

from ..elf.pinpath import PATH_MAX, join_pin_path, pin_name  # noqa: F401  (pure, re-exported)
from ..errors import PinError

if TYPE_CHECKING:  # pragma: no cover
    from .fd import Fd

BPF_FS_MAGIC = 0xCAFE4A11


class _Statfs(ctypes.Structure):
    # Only f_type matters; it is the first field (a long) on every Linux ABI we
    # run on.  The rest is a generous buffer for the kernel to fill.
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 256)]


_libc = ctypes.CDLL(None, use_errno=True)
_statfs = _libc.statfs
_statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]


def fs_magic(path: str) -> int:
    """The statfs f_type of the filesystem holding ``path``."""
    buf = _Statfs()
    if _statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise PinError(err, "statfs", path)
    return buf.f_type & 0xFFFFFFFF


def is_bpffs(path: str) -> bool:
    try:
        return fs_magic(path) == BPF_FS_MAGIC
    except PinError:
        return False


def check_pin_path(path: str) -> str:
    """Check ``path`` can hold a pin (its directory is on bpffs); return it normalised.

    Raises PinError naming the path otherwise (libbpf's check_path: EINVAL).
    """
    if not path:
        raise PinError(errno.EINVAL, "empty pin path", path)
    if len(path.encode()) >= PATH_MAX:
        raise PinError(errno.ENAMETOOLONG, "pin path too long", path)
    parent = os.path.dirname(os.path.abspath(path)) or "/"
    try:
        magic = fs_magic(parent)
    except PinError as e:
        raise PinError(e.errno or errno.ENOENT, "pin directory unusable", path) from None
    if magic != BPF_FS_MAGIC:
        raise PinError(errno.EINVAL, f"not on bpffs (directory {parent!r} has fs magic {magic:#x})", path)
    return path


def make_parent_dir(path: str) -> None:
    """Create the directory holding ``path`` (one level, mode 0700), as libbpf's make_parent_dir."""
    parent = os.path.dirname(path)
    if not parent:
        return
    try:
        os.mkdir(parent, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise PinError(e.errno or errno.EIO, "cannot create pin directory", parent) from None


def pin_fd(fd: int, path: str) -> None:
    """Pin a bpf fd at ``path`` (the directory must be on bpffs)."""
    from . import commands

    check_pin_path(path)
    try:
        commands.obj_pin(fd, path)
    except OSError as e:
        raise PinError(e.errno or errno.EIO, "cannot pin", path) from None


def open_pinned(path: str, flags: int = 0) -> "Fd":
    """A new fd for the object pinned at ``path``."""
    from . import commands

    try:
        return commands.obj_get(path, flags)
    except OSError as e:
        raise PinError(e.errno or errno.EIO, "cannot open pinned object", path) from None


def unpin(path: str) -> None:
    """Remove the pin at ``path`` (refusing anything not on bpffs)."""
    check_pin_path(path)
    try:
        os.unlink(path)
    except OSError as e:
        raise PinError(e.errno or errno.EIO, "cannot unpin", path) from None
