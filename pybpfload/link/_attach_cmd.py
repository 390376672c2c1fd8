"""The bpf(2) commands of attaching: PROG_ATTACH / PROG_DETACH / PROG_QUERY and LINK_CREATE.

LINK_CREATE is split in two so that the attributes can be checked without a
kernel: :func:`link_create_attr` builds ``union bpf_attr``'s link_create
member, :func:`link_create` issues it.  Failures that mean "the kernel lacks
this" become :class:`~pybpfload.errors.NotSupportedError` naming the feature.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any, Optional, Tuple

from ..errors import NotSupportedError, SyscallError
from ..abi import uapi as t
from ..syscall._raw import bpf
from ..syscall.commands import fill
from ..syscall.fd import Fd

__all__ = [
    "prog_attach",
    "prog_detach",
    "prog_query",
    "link_create_attr",
    "link_create",
    "kernel_at_least",
    "ENOTSUPP",
    "BPF_F_ALLOW_OVERRIDE",
    "BPF_F_ALLOW_MULTI",
    "BPF_F_REPLACE",
    "BPF_F_BEFORE",
    "BPF_F_AFTER",
    "BPF_F_ID",
    "BPF_F_LINK",
]

ENOTSUPP = 524  # the kernel-internal "operation not supported" that leaks to user space

# attach flags (PROG_ATTACH, LINK_CREATE)
BPF_F_ALLOW_OVERRIDE = 1 << 0
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2
BPF_F_BEFORE = 1 << 3
BPF_F_AFTER = 1 << 4
BPF_F_ID = 1 << 5
BPF_F_LINK = 1 << 13

_UNSUPPORTED = (errno.EOPNOTSUPP, ENOTSUPP, errno.ENOSYS)


def kernel_at_least(version: Tuple[int, int]) -> bool:
    """Whether the running kernel's release is at least (major, minor)."""
    rel = os.uname().release
    nums = []
    for part in rel.split(".")[:2]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        nums.append(int(digits or 0))
    while len(nums) < 2:
        nums.append(0)
    return (nums[0], nums[1]) >= version


def link_create_attr(prog_fd: int, target: int, attach_type: int, flags: int = 0, **fields: Any) -> t.LinkCreateAttr:
    """``link_create`` of union bpf_attr; ``target`` is an fd or an ifindex; extra ``fields``
    (nested dicts for ``tracing``, ``perf_event``, ``netfilter``, ``tcx``...) fill the union."""
    attr = t.LinkCreateAttr(prog_fd=prog_fd, target_fd=target, attach_type=int(attach_type), flags=flags)
    fill(attr, fields)
    return attr


def link_create(attr: t.LinkCreateAttr, *, what: str, feature: Optional[str] = None, since: Optional[Tuple[int, int]] = None) -> Fd:
    """BPF_LINK_CREATE with ``attr``; the new link's fd.

    ``what`` names the attachment in errors.  When the kernel answers "not
    supported" — or EINVAL on a kernel older than ``since``, where the attach
    type does not exist yet — :class:`NotSupportedError` names ``feature``.
    """
    try:
        return Fd(bpf(t.Cmd.BPF_LINK_CREATE, attr, what=f"BPF_LINK_CREATE ({what})"))
    except SyscallError as e:
        raise unsupported(e, feature, since) from None


def unsupported(e: SyscallError, feature: Optional[str], since: Optional[Tuple[int, int]] = None) -> Exception:
    """``e`` turned into a NotSupportedError naming ``feature`` when it means the kernel lacks it."""
    if feature is None:
        return e
    err = e.errno or 0
    too_old = since is not None and not kernel_at_least(since)
    if err in _UNSUPPORTED or (too_old and err in (errno.EINVAL, errno.EPERM)):
        need = f"; it needs Linux {since[0]}.{since[1]}+" if since is not None else ""
        return NotSupportedError(feature, f"{e}{need}")
    return e


def prog_attach(
    prog_fd: int,
    target: int,
    attach_type: int,
    flags: int = 0,
    *,
    replace_fd: int = 0,
    relative_fd: int = 0,
    expected_revision: int = 0,
    what: str = "",
) -> None:
    """BPF_PROG_ATTACH: attach ``prog_fd`` to ``target`` (an fd or ifindex) without a link."""
    attr = t.ProgAttachAttr(
        target_fd=target,
        attach_bpf_fd=prog_fd,
        attach_type=int(attach_type),
        attach_flags=flags,
        replace_bpf_fd=replace_fd,
        relative_fd=relative_fd,
        expected_revision=expected_revision,
    )
    bpf(t.Cmd.BPF_PROG_ATTACH, attr, what=f"BPF_PROG_ATTACH ({what})" if what else None)


def prog_detach(prog_fd: int, target: int, attach_type: int, *, what: str = "") -> None:
    """BPF_PROG_DETACH of ``prog_fd`` (0: whatever is attached) from ``target``."""
    attr = t.ProgAttachAttr(target_fd=target, attach_bpf_fd=prog_fd, attach_type=int(attach_type))
    bpf(t.Cmd.BPF_PROG_DETACH, attr, what=f"BPF_PROG_DETACH ({what})" if what else None)


def prog_query(target: int, attach_type: int, *, max_progs: int = 64, query_flags: int = 0) -> Tuple[int, Tuple[int, ...]]:
    """BPF_PROG_QUERY: (attach flags, ids of the programs attached to ``target``)."""
    ids = (ctypes.c_uint32 * max_progs)()
    attr = t.ProgQueryAttr(
        target_fd=target, attach_type=int(attach_type), query_flags=query_flags, prog_ids=ctypes.addressof(ids), prog_cnt=max_progs
    )
    bpf(t.Cmd.BPF_PROG_QUERY, attr)
    return attr.attach_flags, tuple(ids[: min(attr.prog_cnt, max_progs)])
