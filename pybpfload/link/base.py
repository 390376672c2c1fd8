"""Link: one attachment of a program, owning what keeps it attached.

A kernel bpf_link (LINK_CREATE, RAW_TRACEPOINT_OPEN, perf links) is an fd:
closing the last fd detaches the program unless the link is pinned.
Attachments that are not kernel links — PROG_ATTACH, socket filters,
netlink tc filters, perf events attached by ioctl — are :class:`Link`
subclasses too, detached when closed; they cannot be pinned.
"""

from __future__ import annotations

import errno
import functools
from typing import Any, Callable, Iterator, Optional, Protocol, TypeVar, Union

from ..syscall import pinning
from .._fdobject import FdObject
from .._strict import Strict
from ..errors import NotSupportedError, StateError, SyscallError
from ..abi import uapi as t
from ..abi.names import prog_type_name as _type_name
from ..syscall import commands
from ..syscall.fd import Fd
from ._attach_cmd import BPF_F_REPLACE, ENOTSUPP
from .info import LinkInfo, link_info

__all__ = ["Link", "prog_fd_of", "hook", "ProgramLike", "MapLike"]


class ProgramLike(Protocol):
    """What attaching needs of a program (a loaded :class:`pybpfload.Program`
    is one): attaching stays below the kernel objects and never imports them."""

    name: str
    type: int
    expected_attach_type: int
    attach_target: Optional[str]
    attach_prog_fd: int
    attach_btf_id: int
    autoload: bool

    @property
    def fd(self) -> int: ...

    @property
    def section_name(self) -> str: ...

    def fileno(self) -> int: ...

    def info(self) -> Any: ...


class MapLike(Protocol):
    """What attaching needs of a map (a created :class:`pybpfload.Map` is one)."""

    name: str
    type: int
    flags: int
    struct_ops_value: Optional[bytes]

    @property
    def fd(self) -> int: ...

    def fileno(self) -> int: ...

    def info(self) -> Any: ...

F = TypeVar("F", bound=Callable[..., Any])



def hook(name: str, *prog_types: int) -> Callable[[F], F]:
    """Mark an attach function (first argument: the program) as the ``name`` hook,
    which takes programs of ``prog_types``.

    When the kernel refuses the attachment and the program is of another type,
    the error says so: which type the program is and which the hook takes
    (the kernel's own answer is a bare EINVAL).  The errno stays the kernel's.
    """

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(prog: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(prog, *args, **kwargs)
            except SyscallError as e:
                pt = getattr(prog, "type", None)
                if pt is None or int(pt) in prog_types:
                    raise
                takes = " or ".join(_type_name(x) for x in prog_types)
                detail = (
                    f"program {getattr(prog, 'name', '?')!r} is a {_type_name(int(pt))} program; "
                    f"the {name} hook takes {takes} programs"
                )
                raise SyscallError(e.errno or errno.EINVAL, e.command, e.name, detail=detail) from None

        return wrapper  # type: ignore[return-value]

    return deco


def prog_fd_of(prog: Union["ProgramLike", int], what: str = "attach") -> int:
    """The fd of a loaded Program (or an fd given as int); StateError when not loaded."""
    if isinstance(prog, int):
        return prog
    fd = prog.fd
    if fd < 0:
        raise StateError(f"cannot {what} program {prog.name!r}: it is not loaded")
    return fd


class Link(Strict, FdObject):
    """An attachment of a program.

    ``close()`` lets go of it: the kernel detaches the program unless the
    link is pinned (or another fd refers to it).  ``detach()`` detaches now,
    pinned or not.  Usable as a context manager.
    """

    _KIND = "link"
    _NOT_READY = "not attached"
    _DONE = "attached"

    def __init__(self, fd: Optional[Fd], program: Optional["ProgramLike"] = None, *, kind: str = "", target: str = "") -> None:
        super().__init__(program.name if program is not None else kind or "link")
        self.program = program
        self.kind = kind
        self.target = target
        if fd is not None:
            self._own(fd)

    # ------------------------------------------------------------ what it is
    @property
    def is_bpf_link(self) -> bool:
        """Whether this is a kernel bpf_link (pinnable, with an id)."""
        return True

    def info(self) -> LinkInfo:
        """Type, id, program id and target, as the kernel reports them."""
        return link_info(self._live().fileno(), self.name)

    @property
    def id(self) -> int:
        return self.info().id

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self.fd}"
        return f"<{type(self).__name__} {self.kind or '?'} {self.target!r} prog={self.name!r} {state}>"

    # ------------------------------------------------------------ lifetime
    def detach(self) -> None:
        """Detach the program now, even if the link is pinned or shared.

        Uses BPF_LINK_DETACH, then removes the pin this Link made or was
        opened from (a detached link's pin would be a dead end).  Link types
        the kernel cannot detach explicitly (tracing, raw tracepoints, perf
        events, iterators) are unpinned and closed, which detaches them
        unless other fds or pins still hold them.
        """
        f = self._fd
        if f is not None and not f.closed:
            try:
                commands.link_detach(f.fileno())
            except SyscallError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, ENOTSUPP):
                    raise
            if self._pinned_at is not None:
                self.unpin()
        self.close()

    # ------------------------------------------------------------ changes
    def update_program(self, program: "ProgramLike", *, old: Optional["ProgramLike"] = None) -> None:
        """Swap the program behind the link (BPF_LINK_UPDATE), atomically.

        With ``old`` the update happens only if ``old`` is still the
        attached program (BPF_F_REPLACE).
        """
        fd = self._live().fileno()
        new_fd = prog_fd_of(program, "attach")
        flags, old_fd = (BPF_F_REPLACE, prog_fd_of(old, "replace")) if old is not None else (0, 0)
        try:
            commands.link_update(fd, new_fd, flags=flags, old_prog_fd=old_fd)
        except SyscallError as e:
            if e.errno in (errno.EOPNOTSUPP, ENOTSUPP):
                raise NotSupportedError(f"updating the program of a {self.kind or 'this'} link", str(e)) from None
            raise
        self.program = program
        self.name = program.name

    # ------------------------------------------------------------ reopening
    @classmethod
    def _from_owned_fd(cls, fd: Fd) -> "Link":
        try:
            info = link_info(fd.fileno())
        except BaseException:
            fd.close()
            raise
        link_cls: type = Link
        if info.type == t.LinkType.BPF_LINK_TYPE_ITER:
            from .iter import IterLink

            link_cls = IterLink
        return link_cls(fd, kind=info.type_name, target=_target_text(info))

    @classmethod
    def from_pin(cls, path: str) -> "Link":
        """Open the link pinned at ``path``.

        Closing it leaves the pin (and the attachment) alone; ``detach()``
        detaches the link and removes this pin.
        """
        link = cls._from_owned_fd(pinning.open_pinned(path))
        link._pinned_at = path
        return link

    @classmethod
    def from_id(cls, link_id: int) -> "Link":
        """Open the link with this id (BPF_LINK_GET_FD_BY_ID)."""
        return cls._from_owned_fd(commands.get_fd_by_id("link", link_id))

    @classmethod
    def from_fd(cls, fd: int) -> "Link":
        """A Link on a duplicate of ``fd`` (the caller keeps its own fd)."""
        import fcntl

        return cls._from_owned_fd(Fd(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)))

    @staticmethod
    def ids() -> Iterator[int]:
        """Ids of every link in the system."""
        return iter(commands.iter_ids("link"))


def _target_text(info: LinkInfo) -> str:
    for key in ("tp_name", "target_name", "file_name", "func_name", "ifindex", "cgroup_id", "map_id"):
        if key in info.target:
            return str(info.target[key])
    return ""


class DetachOnClose(Link):
    """Base of attachments that are not kernel links: closing detaches them, no pinning."""

    _what_pin = "pinning this attachment"

    @property
    def is_bpf_link(self) -> bool:
        return False

    def _detach(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._detach()
        finally:
            if self._fd is not None:
                self._fd.close()

    def detach(self) -> None:
        self.close()

    def pin(self, path: str) -> None:
        raise NotSupportedError(self._what_pin, f"a {self.kind} attachment is not a BPF link")

    def unpin(self, path: Optional[str] = None) -> None:
        raise NotSupportedError(self._what_pin, f"a {self.kind} attachment is not a BPF link")

    def update_program(self, program: "ProgramLike", *, old: Optional["ProgramLike"] = None) -> None:
        raise NotSupportedError(f"updating the program of a {self.kind} attachment", "detach and attach again")

    def _check_open(self) -> None:
        if self._closed:
            raise StateError(f"{self.kind} attachment of {self.name!r} is detached")

    def _program_id(self) -> int:
        p = self.program
        if p is None or p.fd < 0:
            return 0
        return p.info().id

    def info(self) -> LinkInfo:
        """A LinkInfo of type 0 (no kernel link): the program id and what it is attached to."""
        self._check_open()
        return LinkInfo(0, 0, self._program_id(), None, self._info_target())

    def _info_target(self) -> Any:
        return {"target": self.target}
