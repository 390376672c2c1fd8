"""BPF iterators: an iter link (LINK_CREATE), read through ITER_CREATE fds as Python files."""

from __future__ import annotations

import ctypes
import errno
import io
import os
from typing import TYPE_CHECKING, Any, Iterator, Optional, Union

from ..errors import NotSupportedError, SyscallError
from ..syscall import commands
from ..abi.uapi import AttachType
from ..syscall.fd import Fd
from ._attach_cmd import link_create, link_create_attr
from ..abi import uapi as t
from .base import Link, hook, prog_fd_of

if TYPE_CHECKING:  # pragma: no cover
    from .base import MapLike
    from .base import ProgramLike

__all__ = ["IterLink", "attach_iter", "iter_link_info", "IterLinkInfo"]

# enum bpf_cgroup_iter_order
CGROUP_ITER_ORDERS = {"self_only": 1, "descendants_pre": 2, "descendants_post": 3, "ancestors_up": 4}


class _IterMap(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32)]


class _IterCgroup(ctypes.Structure):
    _fields_ = [("order", ctypes.c_uint32), ("cgroup_fd", ctypes.c_uint32), ("cgroup_id", ctypes.c_uint64)]


class _IterTask(ctypes.Structure):
    _fields_ = [("tid", ctypes.c_uint32), ("pid", ctypes.c_uint32), ("pid_fd", ctypes.c_uint32)]


class IterLinkInfo(ctypes.Union):
    """union bpf_iter_link_info: what an iterator walks (a map, a cgroup, a task)."""

    _fields_ = [("map", _IterMap), ("cgroup", _IterCgroup), ("task", _IterTask)]


def iter_link_info(
    *, map_fd: int = 0, tid: int = 0, pid: int = 0, pid_fd: int = 0, cgroup_fd: int = 0, cgroup_id: int = 0, order: int = 0
) -> Optional[IterLinkInfo]:
    """The iter_info of LINK_CREATE; None when nothing narrows the iterator."""
    if not (map_fd or tid or pid or pid_fd or cgroup_fd or cgroup_id or order):
        return None
    info = IterLinkInfo()
    if map_fd:
        info.map.map_fd = map_fd
    elif cgroup_fd or cgroup_id or order:
        info.cgroup.order, info.cgroup.cgroup_fd, info.cgroup.cgroup_id = order, cgroup_fd, cgroup_id
    else:
        info.task.tid, info.task.pid, info.task.pid_fd = tid, pid, pid_fd
    return info


class IterLink(Link):
    """An iterator link; every :meth:`open` starts a new walk."""

    def open(self) -> io.BufferedReader:
        """A new iterator instance (BPF_ITER_CREATE) as a binary file; each read runs the program."""
        fd = commands.iter_create(self._live().fileno())
        return os.fdopen(fd.detach(), "rb")

    def read(self) -> bytes:
        """Everything one walk of the iterator prints."""
        with self.open() as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read().decode(encoding, "replace")

    def lines(self) -> Iterator[str]:
        """The output of one walk, line by line, read as the program produces it."""
        with io.TextIOWrapper(self.open(), encoding="utf-8", errors="replace") as text:
            for line in text:
                yield line.rstrip("\n")


@hook("iter", t.ProgType.BPF_PROG_TYPE_TRACING)
def attach_iter(
    prog: "ProgramLike",
    *,
    map: Optional[Union["MapLike", int]] = None,
    pid: int = 0,
    tid: int = 0,
    pid_fd: int = 0,
    cgroup: Optional[Union[str, int]] = None,
    cgroup_id: int = 0,
    order: Union[int, str] = 0,
) -> IterLink:
    """Attach an iterator program (libbpf's bpf_program__attach_iter).

    ``map`` narrows map-element iterators; ``pid`` / ``tid`` / ``pid_fd``
    task iterators (Linux 6.1); ``cgroup`` (a path or fd) / ``cgroup_id``
    and ``order`` cgroup iterators.
    """
    prog_fd = prog_fd_of(prog)
    map_fd = 0
    if map is not None:
        map_fd = map if isinstance(map, int) else map.fileno()
    if isinstance(order, str):
        order = CGROUP_ITER_ORDERS[order]
    cg_fd: Optional[Fd] = None
    try:
        if isinstance(cgroup, str):
            cg_fd = Fd(os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            cgroup_fd = cg_fd.fileno()
        else:
            cgroup_fd = cgroup or 0
        info = iter_link_info(map_fd=map_fd, tid=tid, pid=pid, pid_fd=pid_fd, cgroup_fd=cgroup_fd, cgroup_id=cgroup_id, order=order)
        fields: Any = {}
        if info is not None:
            fields = {"iter_info": ctypes.addressof(info), "iter_info_len": ctypes.sizeof(info)}
        attr = link_create_attr(prog_fd, 0, AttachType.BPF_TRACE_ITER, **fields)
        try:
            fd = link_create(attr, what=f"iter {prog.attach_target or ''}", feature="BPF iterators", since=(5, 8))
        except SyscallError as e:
            if e.errno != errno.E2BIG or info is None or map_fd:
                raise
            # the kernel's union bpf_iter_link_info is shorter (Linux < 6.1): it refuses the
            # non-zero fields it does not know
            what = "cgroup iterator options" if (cgroup_fd or cgroup_id or order) else "task iterator pid/tid filters"
            raise NotSupportedError(what, f"{e}; they need Linux 6.1+") from None
    finally:
        if cg_fd is not None:
            cg_fd.close()
    return IterLink(fd, prog, kind="iter", target=prog.attach_target or "")
