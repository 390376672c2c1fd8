"""Registering struct_ops maps (libbpf's bpf_map__attach_struct_ops, bpf_link__update_map).

Writing a struct_ops map's value (the kernel struct with program fds, made
at load) registers it with its kernel subsystem — a TCP congestion control,
a sched_ext scheduler...  Two forms, as libbpf:

- a map from ``.struct_ops``: the update registers it, and it stays
  registered (even with every fd closed) until its element is deleted;
  :class:`StructOpsAttachment` owns a duplicate of the map fd and deletes the
  element when closed or detached;
- a map from ``.struct_ops.link`` (created with BPF_F_LINK): the update only
  fills it and BPF_LINK_CREATE(BPF_STRUCT_OPS) registers it;
  :class:`StructOpsLink` is that bpf_link (pinnable), and
  :meth:`StructOpsLink.update_map` swaps in another map atomically.
"""

from __future__ import annotations

import errno
import fcntl
from typing import TYPE_CHECKING, Any

from ..errors import NotSupportedError, StateError, SyscallError
from ..syscall import commands
from ..abi.uapi import AttachType, Cmd, MapType
from ..syscall.fd import Fd
from .base import DetachOnClose, Link

if TYPE_CHECKING:  # pragma: no cover
    from .base import MapLike

__all__ = ["attach_struct_ops", "StructOpsLink", "StructOpsAttachment", "BPF_F_LINK"]

BPF_F_LINK = 1 << 13


def _check(map: "MapLike", what: str) -> bytes:
    if map.type != MapType.BPF_MAP_TYPE_STRUCT_OPS:
        raise StateError(f"map {map.name!r}: can't {what} non-struct_ops map")
    if map.fd < 0:
        raise StateError(f"map {map.name!r}: can't {what} BPF map without FD (was it created?)")
    value = map.struct_ops_value
    if value is None:
        raise StateError(f"map {map.name!r}: no struct_ops value: the map was not made by an object's load")
    return value


def _write_value(map: "MapLike", value: bytes, *, busy_ok: bool) -> None:
    """BPF_MAP_UPDATE_ELEM(key 0); EBUSY is fine for a BPF_F_LINK map already used by a link (libbpf)."""
    key = (0).to_bytes(4, "little")
    kaddr, kkeep = commands.addr(key)
    vaddr, vkeep = commands.addr(value)
    try:
        commands.map_elem(Cmd.BPF_MAP_UPDATE_ELEM, map.fd, kaddr, vaddr, 0, name=map.name)
    except SyscallError as e:
        if not (busy_ok and e.errno == errno.EBUSY):
            raise
    del kkeep, vkeep


class StructOpsAttachment(DetachOnClose):
    """A registered ``.struct_ops`` map (no kernel link): closing or detaching deletes its element."""

    _what_pin = "pinning a struct_ops registration without BPF_F_LINK"

    def __init__(self, fd: Fd, map: "MapLike") -> None:
        super().__init__(fd, None, kind="struct_ops", target=map.name)
        self.map = map
        self.name = map.name

    def _detach(self) -> None:
        fd = self._fd
        if fd is None or fd.closed:
            return
        key = (0).to_bytes(4, "little")
        kaddr, keep = commands.addr(key)
        commands.map_elem(Cmd.BPF_MAP_DELETE_ELEM, fd.fileno(), kaddr, name=self.map.name)
        del keep

    def _info_target(self) -> Any:
        return {"map_id": self.map.info().id if self.map.fd >= 0 else 0}

    def update_map(self, map: "MapLike") -> None:
        raise StateError(f"struct_ops map {self.map.name!r} is not registered through a link (it has no BPF_F_LINK)")


class StructOpsLink(Link):
    """A bpf_link of a ``.struct_ops.link`` map: closing its last fd (unpinned) unregisters it."""

    def __init__(self, fd: Fd, map: "MapLike") -> None:
        super().__init__(fd, None, kind="struct_ops", target=map.name)
        self.map = map
        self.name = map.name

    def update_map(self, map: "MapLike") -> None:
        """Replace the registered struct_ops with ``map``'s, atomically (bpf_link__update_map)."""
        value = _check(map, "use")
        if not map.flags & BPF_F_LINK:
            raise StateError(f"map {map.name!r}: not a .struct_ops.link map (no BPF_F_LINK)")
        link_fd = self._live().fileno()
        _write_value(map, value, busy_ok=True)
        try:
            # new_map_fd shares new_prog_fd's place in bpf_attr.link_update
            commands.link_update(link_fd, map.fd)
        except SyscallError as e:
            if e.errno in (errno.EOPNOTSUPP, 524):
                raise NotSupportedError("updating struct_ops links", str(e)) from None
            raise
        self.map = map
        self.name = map.name
        self.target = map.name

    def update_program(self, program: Any, *, old: Any = None) -> None:
        raise NotSupportedError("updating the program of a struct_ops link", "use update_map()")


def attach_struct_ops(map: "MapLike") -> Link:
    """Register a loaded struct_ops map (bpf_map__attach_struct_ops).

    A ``.struct_ops`` map is registered by writing its value; a
    ``.struct_ops.link`` map (BPF_F_LINK) by BPF_LINK_CREATE after the
    value is written.  Returns :class:`StructOpsAttachment` or :class:`StructOpsLink`.
    """
    value = _check(map, "attach")
    is_link = bool(map.flags & BPF_F_LINK)
    _write_value(map, value, busy_ok=is_link)
    if not is_link:
        dup = Fd(fcntl.fcntl(map.fd, fcntl.F_DUPFD_CLOEXEC, 3))
        try:
            return StructOpsAttachment(dup, map)
        except BaseException:
            dup.close()
            raise
    fd = commands.link_create(map.fd, 0, AttachType.BPF_STRUCT_OPS)  # prog_fd's place holds map_fd
    return StructOpsLink(fd, map)
