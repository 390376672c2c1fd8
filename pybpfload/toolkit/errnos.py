"""errno names and numbers, including the kernel-internal codes Python's :mod:`errno` lacks.

BPF programs and the kernel hand back codes such as ENOTSUPP (524) that never
reach libc's table (include/linux/errno.h: "should never be seen by user
programs" — but bpf(2) and helpers' return values do show them)::

    >>> errno_name(524), errno_number("EBADCOOKIE"), errno_name(-2)
    ('ENOTSUPP', 523, 'ENOENT')

The user-visible codes are those of Python's :mod:`errno` module (the
asm-generic numbering, shared by x86-64 and arm64).
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Dict, Optional, Tuple

from ..errors import UnknownNameError

__all__ = ["errno_name", "errno_number", "errno_description", "KERNEL_ERRNOS"]

# include/linux/errno.h: (number, name, description)
KERNEL_ERRNOS: Dict[int, Tuple[str, str]] = {
    512: ("ERESTARTSYS", "restart the system call (signal pending)"),
    513: ("ERESTARTNOINTR", "restart the system call, not interruptible"),
    514: ("ERESTARTNOHAND", "restart if no signal handler"),
    515: ("ENOIOCTLCMD", "no ioctl command"),
    516: ("ERESTART_RESTARTBLOCK", "restart by calling sys_restart_syscall"),
    517: ("EPROBE_DEFER", "driver requests probe retry"),
    518: ("EOPENSTALE", "open found a stale dentry"),
    519: ("ENOPARAM", "parameter not supported"),
    521: ("EBADHANDLE", "illegal NFS file handle"),
    522: ("ENOTSYNC", "update synchronization mismatch"),
    523: ("EBADCOOKIE", "cookie is stale"),
    524: ("ENOTSUPP", "operation is not supported"),
    525: ("ETOOSMALL", "buffer or request is too small"),
    526: ("ESERVERFAULT", "an untranslatable error occurred"),
    527: ("EBADTYPE", "type not supported by server"),
    528: ("EJUKEBOX", "request initiated, but will not complete before timeout"),
    529: ("EIOCBQUEUED", "iocb queued, will get completion event"),
    530: ("ERECALLCONFLICT", "conflict with recalled state"),
    531: ("ENOGRACE", "NFS file lock reclaim refused"),
}

_BY_NAME: Optional[Dict[str, int]] = None


def errno_name(err: int) -> str:
    """``"ENOENT"`` for 2 (or -2, as the kernel returns it); ``"errno 999"`` for a number no table has."""
    n = abs(err)
    name = _errno.errorcode.get(n)
    if name is None:
        k = KERNEL_ERRNOS.get(n)
        return k[0] if k is not None else f"errno {n}"
    return name


def errno_number(name: str) -> int:
    """The number of ``name`` (aliases such as EWOULDBLOCK and ENOTSUP too); UnknownNameError otherwise."""
    global _BY_NAME
    if _BY_NAME is None:
        table = {n: getattr(_errno, n) for n in dir(_errno) if n.startswith("E") and isinstance(getattr(_errno, n), int)}
        table.update({v[0]: k for k, v in KERNEL_ERRNOS.items()})
        _BY_NAME = table
    nr = _BY_NAME.get(name.upper())
    if nr is None:
        import difflib

        close = difflib.get_close_matches(name.upper(), list(_BY_NAME), n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(f"no errno named {name!r}{hint}")
    return nr


def errno_description(err: int) -> str:
    """What ``err`` (or -err) means: strerror for the user-visible codes, include/linux/errno.h's comment for the kernel's."""
    n = abs(err)
    k = KERNEL_ERRNOS.get(n)
    if k is not None and n not in _errno.errorcode:
        return k[1]
    return os.strerror(n)
