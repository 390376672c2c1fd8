"""Classic tc: a cls_bpf filter (direct action) on a clsact qdisc, through rtnetlink.

For kernels before tcx (Linux 6.6).  :func:`attach_tc` adds the clsact
qdisc when the device has none, then the filter; closing the returned link
deletes the filter (the qdisc stays: :func:`remove_clsact` removes it).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import TYPE_CHECKING, Any, Dict, List, Union

from ..errors import BPFError, SyscallError
from ..abi import uapi as t
from .base import DetachOnClose, hook, prog_fd_of
from .netlink import NLM_F_CREATE, NLM_F_EXCL, RtNetlink, attr, nested, parse_attrs
from .xdp import ifindex_of

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["TcLink", "attach_tc", "ensure_clsact", "remove_clsact", "list_tc_filters", "tc_parent"]

RTM_NEWQDISC, RTM_DELQDISC = 36, 37
RTM_NEWTFILTER, RTM_DELTFILTER, RTM_GETTFILTER = 44, 45, 46
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_BPF_FD, TCA_BPF_NAME, TCA_BPF_FLAGS, TCA_BPF_ID = 6, 7, 8, 11
TCA_BPF_FLAG_ACT_DIRECT = 1
TC_H_CLSACT = 0xFFFFFFF1
TC_H_MIN_INGRESS = 0xFFF2
TC_H_MIN_EGRESS = 0xFFF3
ETH_P_ALL = 0x0003
_TCMSG = struct.Struct("=BxxxiIII")  # struct tcmsg: family, ifindex, handle, parent, info


def tc_parent(direction: str) -> int:
    """The parent handle of clsact's ingress or egress hook."""
    minor = {"ingress": TC_H_MIN_INGRESS, "egress": TC_H_MIN_EGRESS}.get(direction)
    if minor is None:
        raise BPFError(f"tc direction must be 'ingress' or 'egress', got {direction!r}")
    return (TC_H_CLSACT & 0xFFFF0000) | minor


def _tcmsg(ifindex: int, handle: int, parent: int, info: int) -> bytes:
    return _TCMSG.pack(socket.AF_UNSPEC, ifindex, handle, parent, info)


def ensure_clsact(ifindex: int, nl: RtNetlink) -> bool:
    """Add a clsact qdisc to the device; False when it already has one."""
    msg = _tcmsg(ifindex, TC_H_CLSACT & 0xFFFF0000, TC_H_CLSACT, 0) + attr(TCA_KIND, "clsact")
    try:
        nl.request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, msg, f"add clsact qdisc on ifindex {ifindex}")
    except SyscallError as e:
        if e.errno == errno.EEXIST:
            return False
        raise
    return True


def remove_clsact(dev: Union[int, str]) -> None:
    """Delete the device's clsact qdisc and every filter on it."""
    ifindex = ifindex_of(dev)
    with RtNetlink() as nl:
        msg = _tcmsg(ifindex, TC_H_CLSACT & 0xFFFF0000, TC_H_CLSACT, 0) + attr(TCA_KIND, "clsact")
        nl.request(RTM_DELQDISC, 0, msg, f"delete clsact qdisc on ifindex {ifindex}")


class TcLink(DetachOnClose):
    """A cls_bpf filter; closing (or detaching) deletes it."""

    def __init__(self, program: "ProgramLike", ifindex: int, direction: str, handle: int, priority: int, dev: str, nl: RtNetlink) -> None:
        super().__init__(None, program, kind="tc", target=f"{dev}:{direction}")
        self._nl = nl  # bound to the device's network namespace: the filter is deleted there
        self.ifindex = ifindex
        self.direction = direction
        self.handle = handle
        self.priority = priority

    def _detach(self) -> None:
        info = (self.priority << 16) | socket.htons(ETH_P_ALL)
        msg = _tcmsg(self.ifindex, self.handle, tc_parent(self.direction), info) + attr(TCA_KIND, "bpf")
        with self._nl as nl:
            try:
                nl.request(RTM_DELTFILTER, 0, msg, f"delete tc filter on ifindex {self.ifindex}")
            except SyscallError as e:
                if e.errno not in (errno.ENODEV, errno.ENOENT):  # the device or the filter is gone already
                    raise

    def _info_target(self) -> Any:
        return {"ifindex": self.ifindex, "direction": self.direction, "handle": self.handle, "priority": self.priority}


@hook("tc", t.ProgType.BPF_PROG_TYPE_SCHED_CLS, t.ProgType.BPF_PROG_TYPE_SCHED_ACT)
def attach_tc(
    prog: "ProgramLike",
    dev: Union[int, str],
    direction: str = "ingress",
    *,
    handle: int = 1,
    priority: int = 1,
    direct_action: bool = True,
    name: str = "",
) -> TcLink:
    """Attach a tc program as a cls_bpf filter on ``dev``'s clsact ``direction`` hook (libbpf's bpf_tc_attach)."""
    prog_fd = prog_fd_of(prog)
    ifindex = ifindex_of(dev)
    if not 0 < handle <= 0xFFFFFFFF or not 0 < priority <= 0xFFFF:
        raise BPFError(f"tc handle must be 1..2^32-1 and priority 1..65535, got {handle} and {priority}")
    info = (priority << 16) | socket.htons(ETH_P_ALL)
    options = nested(
        TCA_OPTIONS,
        attr(TCA_BPF_FD, prog_fd),
        attr(TCA_BPF_NAME, name or f"{prog.name}"),
        attr(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT if direct_action else 0),
    )
    msg = _tcmsg(ifindex, handle, tc_parent(direction), info) + attr(TCA_KIND, "bpf") + options
    nl = RtNetlink()
    try:
        ensure_clsact(ifindex, nl)
        nl.request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, msg, f"add tc filter on ifindex {ifindex} {direction}")
    except BaseException:
        nl.close()
        raise
    return TcLink(prog, ifindex, direction, handle, priority, str(dev), nl)


def list_tc_filters(dev: Union[int, str], direction: str = "ingress") -> List[Dict[str, Any]]:
    """The cls_bpf filters on a hook: handle, priority, program id and name of each."""
    ifindex = ifindex_of(dev)
    out: List[Dict[str, Any]] = []
    with RtNetlink() as nl:
        replies = nl.dump(RTM_GETTFILTER, _tcmsg(ifindex, 0, tc_parent(direction), 0), f"list tc filters on ifindex {ifindex}")
    for body in replies:
        if len(body) < _TCMSG.size:
            continue
        _, _, handle, _, info = _TCMSG.unpack_from(body)
        attrs = parse_attrs(body[_TCMSG.size :])
        if attrs.get(TCA_KIND, b"").rstrip(b"\0") != b"bpf" or TCA_OPTIONS not in attrs:
            continue
        opts = parse_attrs(attrs[TCA_OPTIONS])
        if TCA_BPF_ID not in opts:
            continue
        out.append(
            {
                "handle": handle,
                "priority": info >> 16,
                "prog_id": struct.unpack("=I", opts[TCA_BPF_ID][:4])[0],
                "name": opts.get(TCA_BPF_NAME, b"").rstrip(b"\0").decode("utf-8", "replace"),
                "direct_action": bool(struct.unpack("=I", opts.get(TCA_BPF_FLAGS, b"\0\0\0\0")[:4])[0] & TCA_BPF_FLAG_ACT_DIRECT),
            }
        )
    return out
