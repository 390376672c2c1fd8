"""Socket filters: SO_ATTACH_BPF on a socket."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Union

from ..errors import SyscallError
from .base import DetachOnClose, prog_fd_of

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["SocketFilterLink", "attach_socket", "SO_ATTACH_BPF", "SO_DETACH_BPF"]

SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27  # = SO_DETACH_FILTER


class SocketFilterLink(DetachOnClose):
    """A socket filter; closing detaches it (if the socket is still open)."""

    def __init__(self, program: "ProgramLike", sock: socket.socket) -> None:
        super().__init__(None, program, kind="socket", target=f"socket fd {sock.fileno()}")
        self.socket = sock

    def _detach(self) -> None:
        if self.socket.fileno() < 0:
            return
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, SO_DETACH_BPF, 0)
        except OSError as e:
            if e.errno != 2:  # ENOENT: nothing attached any more
                raise SyscallError(e.errno or 0, "setsockopt", self.name, detail="SO_DETACH_BPF") from None

    def _info_target(self) -> Any:
        return {"socket_fd": self.socket.fileno()}


def attach_socket(prog: "ProgramLike", sock: Union[socket.socket, int]) -> SocketFilterLink:
    """Attach a socket filter program to ``sock`` (a socket object or fd) with SO_ATTACH_BPF.

    Given an fd, the link works on its own duplicate of it.
    """
    prog_fd = prog_fd_of(prog)
    s = sock if isinstance(sock, socket.socket) else socket.socket(fileno=_dup(sock))
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog_fd)
    except OSError as e:
        if s is not sock:
            s.close()
        raise SyscallError(e.errno or 0, "setsockopt", prog.name, detail="SO_ATTACH_BPF") from None
    return SocketFilterLink(prog, s)


def _dup(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
