"""Auto-attach from the section name, as libbpf's skeleton attach does.

``attach_program(prog)`` reads the program's SEC() name: tracepoints,
raw tracepoints, kprobes / ksyscalls, uprobes with their targets in the
name, and tp_btf / fentry / fexit / fmod_ret / lsm / freplace / iter
programs (whose target came with load) are attached; sections that carry no
target (``xdp``, ``tc``, ``cgroup_skb/...``, a bare ``kprobe`` or
``uprobe``...) give None, as libbpf skips them; so do struct_ops programs,
whose maps ``attach_all`` registers after the programs.  ``attach_all(obj)``
attaches every loaded program of an object and returns the links.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Protocol, Union

from .. import log
from ..errors import BPFError, NotSupportedError, StateError

from .base import MapLike, ProgramLike

if TYPE_CHECKING:  # pragma: no cover
    from ..elf.sections import SectionInfo
    from .base import Link


class ObjectLike(Protocol):
    """What attaching every program needs of an object (a loaded :class:`pybpfload.Object` is one)."""

    name: str

    @property
    def loaded(self) -> bool: ...

    @property
    def programs(self) -> Mapping[str, ProgramLike]: ...

    @property
    def maps(self) -> Mapping[str, MapLike]: ...

__all__ = ["attach_program", "attach_all", "auto_attach_kind"]

_TRACEPOINT = {"tracepoint", "tp", "tracepoint.s", "tp.s"}
_RAW_TP = {"raw_tracepoint", "raw_tp", "raw_tracepoint.s", "raw_tp.s", "raw_tracepoint.w", "raw_tp.w"}
_TRACING = {"tp_btf", "tp_btf.s", "fentry", "fexit", "fmod_ret", "fentry.s", "fexit.s", "fmod_ret.s", "lsm", "lsm.s", "freplace"}
_ITER = {"iter", "iter.s"}
_KPROBE = {"kprobe": False, "kretprobe": True}
_KSYSCALL = {"ksyscall": False, "kretsyscall": True}
_UPROBE = {"uprobe": False, "uretprobe": True, "uprobe.s": False, "uretprobe.s": True}
_KPROBE_MULTI = {"kprobe.multi", "kretprobe.multi", "kprobe.session"}
_UPROBE_MULTI = {"uprobe.multi", "uretprobe.multi", "uprobe.session", "uprobe.multi.s", "uretprobe.multi.s", "uprobe.session.s"}
_USDT = {"usdt", "usdt.s"}
_UNSUPPORTED: "frozenset[str]" = frozenset()  # struct_ops programs: skipped, their maps are attached (libbpf)


def _section(prog: "ProgramLike", section: Union["SectionInfo", str, None]) -> "SectionInfo":
    from ..elf.sections import SectionInfo, parse_section

    if isinstance(section, SectionInfo):
        return section
    return parse_section(section if section is not None else prog.section_name)


def auto_attach_kind(section: Union["SectionInfo", str]) -> Optional[str]:
    """The attach function auto-attach would use for a section name, None when it skips it."""
    from ..elf.sections import SectionInfo, parse_section

    info = section if isinstance(section, SectionInfo) else parse_section(section)
    if info.sec_def is None:
        return None
    base, target = info.sec_def.name, info.attach_target
    if base in _TRACING:
        return "trace"
    if base in _ITER:
        return "iter"
    if not target:
        return None
    if base in _USDT:
        return "usdt"
    for names, kind in ((_TRACEPOINT, "tracepoint"), (_RAW_TP, "raw_tracepoint"), (_KPROBE, "kprobe"),
                        (_KSYSCALL, "ksyscall"), (_UPROBE, "uprobe"), (_KPROBE_MULTI, "kprobe_multi"),
                        (_UPROBE_MULTI, "uprobe_multi"), (_UNSUPPORTED, "unsupported")):
        if base in names:
            return kind
    return None


def _kprobe_target(target: str) -> tuple:
    m = re.fullmatch(r"([^+]+)(?:\+(0x[0-9a-fA-F]+|\d+))?", target)
    if m is None:
        raise BPFError(f"kprobe target must be 'function[+offset]', got {target!r}")
    return m.group(1), int(m.group(2), 0) if m.group(2) else 0


def attach_program(prog: "ProgramLike", section: Union["SectionInfo", str, None] = None, **opts: Any) -> Optional["Link"]:
    """Attach ``prog`` as its section name says; None when the section carries no target.

    ``section`` defaults to the program's own; ``opts`` go to the attach
    function (``cookie``, ``pid`` for uprobes, ``map`` for iterators...).
    """
    from .. import link as L

    if prog.fd < 0:
        raise StateError(f"cannot attach program {prog.name!r}: it is not loaded")
    info = _section(prog, section)
    kind = auto_attach_kind(info)
    if kind is None:
        return None
    base = info.sec_def.name if info.sec_def is not None else ""
    target = info.attach_target or ""
    if kind == "trace":
        if not (prog.attach_btf_id or prog.attach_prog_fd):
            return None  # no target at load: nothing to attach to
        return L.attach_trace(prog, **opts)
    if kind == "iter":
        return L.attach_iter(prog, **opts)
    if kind == "tracepoint":
        return L.attach_tracepoint(prog, target, **opts)
    if kind == "raw_tracepoint":
        return L.attach_raw_tracepoint(prog, target, **opts)
    if kind == "kprobe":
        func, off = _kprobe_target(target)
        return L.attach_kprobe(prog, func, off, retprobe=_KPROBE[base], **opts)
    if kind == "ksyscall":
        return L.attach_ksyscall(prog, target, retprobe=_KSYSCALL[base], **opts)
    if kind == "uprobe":
        from .uprobe import parse_uprobe_target

        binary, func, off = parse_uprobe_target(target)
        return L.attach_uprobe(prog, binary, func, off, retprobe=_UPROBE[base], **opts)
    if kind == "kprobe_multi":
        from .multi import parse_kprobe_multi_section

        return L.attach_kprobe_multi(prog, **{**parse_kprobe_multi_section(base, target), **opts})
    if kind == "uprobe_multi":
        from .multi import parse_uprobe_multi_section

        return L.attach_uprobe_multi(prog, **{**parse_uprobe_multi_section(base, target), **opts})
    if kind == "usdt":
        from .usdt import parse_usdt_target

        path, provider, name = parse_usdt_target(target)
        return L.attach_usdt(prog, path, provider, name, **opts)
    raise NotSupportedError(f"auto-attach of SEC({info.name!r})", "pybpfload cannot attach this kind yet")


def attach_all(obj: ObjectLike, *, skip_unsupported: bool = False) -> List["Link"]:
    """Attach every loaded program of ``obj`` whose section names a target (libbpf's skeleton attach).

    All or nothing: when one attach fails the links made so far are closed
    and the error propagates — unless ``skip_unsupported`` and the error is
    a NotSupportedError, which is logged and skipped.
    """
    if not obj.loaded:
        raise StateError(f"object {obj.name!r} is not loaded")
    links: List["Link"] = []
    try:
        for prog in obj.programs.values():
            if not prog.autoload or prog.fd < 0:
                continue
            try:
                link = attach_program(prog)
            except NotSupportedError as e:
                if not skip_unsupported:
                    raise
                log.warn("prog '%s': not attached: %s", prog.name, e)
                continue
            if link is not None:
                links.append(link)
        links += _attach_struct_ops_maps(obj)
    except BaseException:
        for link in links:
            link.close()
        raise
    return links


def _attach_struct_ops_maps(obj: ObjectLike) -> List["Link"]:
    """Register every created struct_ops map of ``obj``, after the programs (libbpf's skeleton attach)."""
    from ..abi.uapi import MapType

    links: List["Link"] = []
    try:
        for m in obj.maps.values():
            if m.type == MapType.BPF_MAP_TYPE_STRUCT_OPS and m.fd >= 0:
                from .struct_ops import attach_struct_ops  # only with struct_ops maps

                links.append(attach_struct_ops(m))
    except BaseException:
        for link in links:
            link.close()
        raise
    return links
