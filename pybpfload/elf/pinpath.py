"""Pin paths of an object's maps and programs: names as libbpf pins them,
checked to stay inside their directory.  Pure (no syscalls): the object model
computes pin paths at open; :mod:`pybpfload.syscall.pinning` pins.
"""

from __future__ import annotations

import errno
import os

from ..errors import PinError

__all__ = ["PATH_MAX", "pin_name", "join_pin_path"]

PATH_MAX = 4096


def pin_name(name: str) -> str:
    """The file name an object called ``name`` is pinned under.

    As libbpf, periods become underscores (``.rodata`` pins as ``_rodata``).
    Names come from object files, which may be hostile: a name that could
    leave the pin directory (a ``/``, NUL, or nothing left) is refused.
    """
    if not name or "/" in name or "\0" in name:
        raise PinError(errno.EINVAL, f"object name {name!r} cannot be a pin name", name)
    return name.replace(".", "_")


def join_pin_path(directory: str, name: str) -> str:
    """``directory/pin_name(name)``, checked to stay inside ``directory``."""
    path = os.path.join(directory, pin_name(name))
    if len(path.encode()) >= PATH_MAX:
        raise PinError(errno.ENAMETOOLONG, "pin path too long", path)
    if os.path.dirname(os.path.normpath(path)) != os.path.normpath(directory):
        raise PinError(errno.EINVAL, "pin path escapes its directory", path)
    return path
