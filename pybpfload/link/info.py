"""LinkInfo: what the kernel reports about a link (BPF_OBJ_GET_INFO_BY_FD)."""

from __future__ import annotations

import ctypes
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple

from ..abi import uapi as t
from ..abi.record import Record, _set
from ..syscall import commands

__all__ = ["LinkInfo", "link_info", "PERF_EVENT_TYPES"]

LinkType = t.LinkType

# enum bpf_perf_event_type
PERF_EVENT_TYPES = {1: "uprobe", 2: "uretprobe", 3: "kprobe", 4: "kretprobe", 5: "tracepoint", 6: "event"}

_NAME_MAX = 4096


class LinkInfo(Record):
    """A link as the kernel describes it.

    ``type`` is a :class:`~pybpfload.syscall.LinkType` value; ``target`` holds
    the fields of the type's member of ``struct bpf_link_info`` (``tp_name``,
    ``ifindex``, ``cgroup_id``, ``target_name``...), strings decoded.
    Attachments that are not kernel links (socket filters, PROG_ATTACH,
    netlink tc filters, perf events attached by ioctl) report type 0 and id 0.

    An immutable record (:mod:`pybpfload.abi.record`), not a dataclass: ``==``,
    hash and repr field by field; ``_asdict()`` gives the fields as a dict and
    ``pybpfload.abi.record.replace(info, ...)`` a copy with changes.
    """

    __slots__ = _fields = ("type", "id", "prog_id", "attach_type", "target")
    type: int
    id: int
    prog_id: int
    attach_type: Optional[int]
    target: Mapping[str, Any]

    def __init__(
        self,
        type: int,
        id: int,
        prog_id: int,
        attach_type: Optional[int] = None,
        target: Optional[Mapping[str, Any]] = None,
    ) -> None:
        _set(self, "type", type)
        _set(self, "id", id)
        _set(self, "prog_id", prog_id)
        _set(self, "attach_type", attach_type)
        _set(self, "target", {} if target is None else target)

    @property
    def type_name(self) -> str:
        """``"raw_tracepoint"``, ``"xdp"``... as bpftool prints it; the number when unknown."""
        try:
            return LinkType(self.type).name[len("BPF_LINK_TYPE_") :].lower()
        except ValueError:
            return str(self.type)


def _fields(s: ctypes.Structure, skip: tuple = ()) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for f in s._fields_:  # type: ignore[attr-defined]
        name = f[0]  # (name, type[, bits])
        if name.startswith("_") or name in skip:
            continue
        out[name] = getattr(s, name)
    return out


def _multi_arrays(lt: int, first: Any, addr: int, size: int) -> Tuple[Any, Dict[str, Any]]:
    """A LinkInfo asking for a multi link's arrays (sized by the first answer's count), and the arrays."""
    info = t.LinkInfo()
    uprobe = lt == LinkType.BPF_LINK_TYPE_UPROBE_MULTI
    member = info.uprobe_multi if uprobe else info.kprobe_multi
    count = (first.uprobe_multi if uprobe else first.kprobe_multi).count
    names = ("offsets", "ref_ctr_offsets", "cookies") if uprobe else ("addrs", "cookies")
    arrays: Dict[str, Any] = {}
    if count:
        for n in names:
            arrays[n] = (ctypes.c_uint64 * count)()
            setattr(member, n, ctypes.addressof(arrays[n]))
        member.count = count
    if uprobe:
        member.path, member.path_size = addr, size
    return info, arrays


def link_info(fd: int, name: Optional[str] = None) -> LinkInfo:
    """Query ``fd`` twice: once for the type, once with buffers for its names."""
    first = commands.obj_get_info_by_fd(fd, t.LinkInfo(), name=name)
    lt = first.type
    info = t.LinkInfo()
    buf = ctypes.create_string_buffer(_NAME_MAX)
    addr, size = ctypes.addressof(buf), ctypes.sizeof(buf)
    arrays: Dict[str, Any] = {}  # a multi link's per-probe arrays, kept alive until read
    if lt == LinkType.BPF_LINK_TYPE_RAW_TRACEPOINT:
        info.raw_tracepoint.tp_name, info.raw_tracepoint.tp_name_len = addr, size
    elif lt == LinkType.BPF_LINK_TYPE_ITER:
        info.iter.target_name, info.iter.target_name_len = addr, size
    elif lt == LinkType.BPF_LINK_TYPE_PERF_EVENT:
        # uprobe.file_name, kprobe.func_name and tracepoint.tp_name share their place
        info.perf_event.uprobe.file_name, info.perf_event.uprobe.name_len = addr, size
    elif lt in (LinkType.BPF_LINK_TYPE_UPROBE_MULTI, LinkType.BPF_LINK_TYPE_KPROBE_MULTI):
        info, arrays = _multi_arrays(lt, first, addr, size)
    else:
        info = first
    if info is not first:
        commands.obj_get_info_by_fd(fd, info, name=name)
    text = buf.value.decode("utf-8", "replace")
    target: Dict[str, Any] = {}
    attach_type: Optional[int] = None
    u = info
    if lt == LinkType.BPF_LINK_TYPE_RAW_TRACEPOINT:
        target = {"tp_name": text, "cookie": u.raw_tracepoint.cookie}
    elif lt == LinkType.BPF_LINK_TYPE_TRACING:
        target = _fields(u.tracing)
        attach_type = u.tracing.attach_type
    elif lt == LinkType.BPF_LINK_TYPE_CGROUP:
        target = _fields(u.cgroup)
        attach_type = u.cgroup.attach_type
    elif lt == LinkType.BPF_LINK_TYPE_ITER:
        target = {"target_name": text, "map_id": u.iter.map.map_id, "tid": u.iter.task.tid, "pid": u.iter.task.pid}
        attach_type = int(t.AttachType.BPF_TRACE_ITER)
    elif lt == LinkType.BPF_LINK_TYPE_NETNS:
        target = _fields(u.netns)
        attach_type = u.netns.attach_type
    elif lt == LinkType.BPF_LINK_TYPE_XDP:
        target = _fields(u.xdp)
        attach_type = int(t.AttachType.BPF_XDP)
    elif lt == LinkType.BPF_LINK_TYPE_STRUCT_OPS:
        target = _fields(u.struct_ops)
    elif lt == LinkType.BPF_LINK_TYPE_NETFILTER:
        target = _fields(u.netfilter)
        attach_type = int(t.AttachType.BPF_NETFILTER)
    elif lt == LinkType.BPF_LINK_TYPE_KPROBE_MULTI:
        target = {k: v for k, v in _fields(u.kprobe_multi).items() if k not in ("addrs", "cookies")}
        target.update({k: tuple(a) for k, a in arrays.items()})
    elif lt == LinkType.BPF_LINK_TYPE_UPROBE_MULTI:
        target = {k: v for k, v in _fields(u.uprobe_multi).items() if k in ("count", "flags", "pid")}
        target.update({k: tuple(a) for k, a in arrays.items()}, path=text)
    elif lt == LinkType.BPF_LINK_TYPE_PERF_EVENT:
        pe = u.perf_event
        kind = PERF_EVENT_TYPES.get(pe.type, str(pe.type))
        target = {"perf_event_type": kind}
        if kind in ("uprobe", "uretprobe"):
            target.update(file_name=text, offset=pe.uprobe.offset, cookie=pe.uprobe.cookie)
        elif kind in ("kprobe", "kretprobe"):
            target.update(func_name=text, offset=pe.kprobe.offset, addr=pe.kprobe.addr, cookie=pe.kprobe.cookie)
        elif kind == "tracepoint":
            target.update(tp_name=text, cookie=pe.tracepoint.cookie)
        elif kind == "event":
            target.update(config=pe.event.config, type=pe.event.type, cookie=pe.event.cookie)
        attach_type = int(t.AttachType.BPF_PERF_EVENT)
    elif lt in (LinkType.BPF_LINK_TYPE_TCX, LinkType.BPF_LINK_TYPE_NETKIT):
        target = _fields(u.tcx)
        attach_type = u.tcx.attach_type
    elif lt == LinkType.BPF_LINK_TYPE_SOCKMAP:
        target = _fields(u.sockmap)
        attach_type = u.sockmap.attach_type
    return LinkInfo(lt, info.id, info.prog_id, attach_type, MappingProxyType(target))
