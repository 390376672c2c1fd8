"""What maps, programs and links share: one owned fd, close, pin / unpin."""

from __future__ import annotations

from typing import Any, Optional

from .syscall import pinning
from .errors import BPFError, StateError
from .syscall.fd import Fd


class FdObject:
    """Base of kernel objects that own one fd once created."""

    _KIND = "object"
    _NOT_READY = "not created yet"
    _DONE = "created"

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_fd", None)
        self.name = name
        self._pinned_at: Optional[str] = None
        self._closed = False

    _fd: Optional[Fd]
    name: str

    @property
    def fd(self) -> int:
        """The fd, or -1 when not created / loaded (as libbpf's bpf_map__fd, bpf_program__fd)."""
        f = self._fd
        return f.raw if f is not None else -1

    def fileno(self) -> int:
        return self._live().fileno()

    def _live(self) -> Fd:
        f = self._fd
        if f is None or f.closed:
            state = "closed" if self._closed else self._NOT_READY
            raise StateError(f"{self._KIND} {self.name!r} is {state}")
        return f

    def _own(self, fd: Fd) -> None:
        object.__setattr__(self, "_fd", fd)

    def _check_definable(self) -> None:
        if self._closed:
            raise StateError(f"{self._KIND} {self.name!r} is closed")
        if self._fd is not None:
            raise StateError(f"{self._KIND} {self.name!r} is already {self._DONE}")

    def close(self) -> None:
        """Close the fd; the kernel object lives on while pinned or referenced."""
        self._closed = True
        if self._fd is not None:
            self._fd.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ pinning
    def pin(self, path: str) -> None:
        """Pin at ``path`` on bpffs; pinning again at the same path is a no-op."""
        if self._pinned_at == path:
            return
        if self._pinned_at is not None:
            raise BPFError(f"{self._KIND} {self.name!r} is already pinned at {self._pinned_at!r}")
        pinning.pin_fd(self._live().fileno(), path)
        self._pinned_at = path

    def unpin(self, path: Optional[str] = None) -> None:
        """Remove the pin at ``path`` (default: where this object was pinned)."""
        path = path or self._pinned_at
        if not path:
            raise BPFError(f"{self._KIND} {self.name!r}: no pin path to unpin")
        pinning.unpin(path)
        if path == self._pinned_at:
            self._pinned_at = None

    @property
    def pinned_at(self) -> Optional[str]:
        return self._pinned_at
