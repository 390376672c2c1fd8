"""Fd: the single owner of one file descriptor."""

from __future__ import annotations

import fcntl
import os
import warnings
from types import TracebackType
from typing import Optional, Type, TypeVar

from ..errors import StateError


class Fd:
    """Owns a file descriptor: closes it exactly once.

    Usable as a context manager; ``fileno()`` makes it work with selectors.
    Like libbpf, fds 0-2 are never handed out: a kernel fd that lands there
    (because the process closed stdin, say) is moved above 2.  An Fd that is
    garbage-collected while still open is closed with a ResourceWarning.
    """

    __slots__ = ("_fd", "__weakref__")

    def __init__(self, fd: int) -> None:
        if fd < 0:
            raise ValueError(f"invalid fd {fd}")
        if fd < 3:
            try:
                new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            finally:
                os.close(fd)
            fd = new
        self._fd = fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        fd = self._fd
        if fd < 0:
            raise StateError("file descriptor is closed")
        return fd

    @property
    def raw(self) -> int:
        """The fd number, or -1 once closed."""
        return self._fd

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def detach(self) -> int:
        """Give up ownership: return the fd number without closing it."""
        fd = self.fileno()
        self._fd = -1
        return fd

    def dup(self) -> "Fd":
        return Fd(fcntl.fcntl(self.fileno(), fcntl.F_DUPFD_CLOEXEC, 3))

    def __enter__(self) -> "Fd":
        return self

    def __exit__(
        self, et: Optional[Type[BaseException]], ev: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            try:
                self.close()
            except OSError:  # pragma: no cover
                pass
            warnings.warn(f"unclosed bpf fd {fd}", ResourceWarning, stacklevel=2)

    def __int__(self) -> int:
        return self.fileno()

    def __repr__(self) -> str:
        return f"Fd({self._fd})" if self._fd >= 0 else "Fd(closed)"


class FdOwner:
    """Base of the small owners of one :class:`Fd` in ``self._fd`` (a BTF handle, a BPF token):
    ``fd`` / ``fileno()``, ``closed``, ``close()`` and the context manager."""

    _fd: Fd

    @property
    def fd(self) -> int:
        """The fd number; StateError once closed."""
        return self._fd.fileno()

    def fileno(self) -> int:
        return self._fd.fileno()

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def close(self) -> None:
        self._fd.close()

    def __enter__(self: "_O") -> "_O":
        return self

    def __exit__(self, et: Optional[Type[BaseException]], ev: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()


_O = TypeVar("_O", bound=FdOwner)
