"""SEC() names: libbpf's section table and the rules for reading a section name.

:data:`SECTION_DEFS` holds every entry of libbpf 1.x's ``section_defs``
table, in libbpf's order (the first match wins).  An entry matches as libbpf
matches it:

- ``"name+"``: exactly ``name``, or ``name/<target>``;
- ``"name/"``: ``name/<anything>``;
- otherwise the whole section name.

A leading ``?`` turns autoload off and is not part of the section name.
A name that no entry matches leaves the program type unspecified, as libbpf
does at open time; loading such a program fails unless a type is set.

Pure data and string handling: no syscalls.
"""

from __future__ import annotations

import enum
from functools import lru_cache
from typing import ClassVar, Dict, Optional, Tuple

from ..abi.record import Record, _set
from ..errors import ParseError
from ..abi.uapi import AttachType, ProgType

__all__ = [
    "SecFlag",
    "SecDef",
    "SectionInfo",
    "SECTION_DEFS",
    "find_sec_def",
    "parse_section",
    "prog_type_by_name",
    "attach_type_value",
    "supported_names",
    "unknown_section_message",
    "BPF_F_SLEEPABLE",
    "BPF_F_XDP_HAS_FRAGS",
]

# prog_flags of BPF_PROG_LOAD
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5

# Attach types newer than the kernel headers pybpfload.syscall was generated from.
_EXTRA_ATTACH_TYPES: Dict[str, int] = {
    "TRACE_FSESSION": 58,
    "TRACE_FENTRY_MULTI": 59,
    "TRACE_FEXIT_MULTI": 60,
    "TRACE_FSESSION_MULTI": 61,
}


class SecFlag(enum.IntFlag):
    """Per-entry flags of the section table (libbpf's ``enum sec_def_flags``)."""

    NONE = 0
    EXP_ATTACH_OPT = 1  # expected_attach_type may be dropped on old kernels
    ATTACHABLE = 2  # legacy marker of BPF_PROG_ATTACH-able types
    ATTACHABLE_OPT = 3
    ATTACH_BTF = 4  # attach target is a BTF id (fentry, lsm, iter, ...)
    SLEEPABLE = 8  # loaded with BPF_F_SLEEPABLE
    XDP_FRAGS = 16  # loaded with BPF_F_XDP_HAS_FRAGS
    USDT = 32  # usdt: uprobe_multi attach type when the kernel has it


F = SecFlag

# (section prefix, BPF_PROG_TYPE_<...>, BPF_<attach type> or "", flags), in libbpf's order.
_TABLE: Tuple[Tuple[str, str, str, SecFlag], ...] = (
    ("socket", "SOCKET_FILTER", "", F.NONE),
    ("sk_reuseport/migrate", "SK_REUSEPORT", "SK_REUSEPORT_SELECT_OR_MIGRATE", F.ATTACHABLE),
    ("sk_reuseport", "SK_REUSEPORT", "SK_REUSEPORT_SELECT", F.ATTACHABLE),
    ("kprobe+", "KPROBE", "", F.NONE),
    ("uprobe+", "KPROBE", "", F.NONE),
    ("uprobe.s+", "KPROBE", "", F.SLEEPABLE),
    ("kretprobe+", "KPROBE", "", F.NONE),
    ("uretprobe+", "KPROBE", "", F.NONE),
    ("uretprobe.s+", "KPROBE", "", F.SLEEPABLE),
    ("kprobe.multi+", "KPROBE", "TRACE_KPROBE_MULTI", F.NONE),
    ("kretprobe.multi+", "KPROBE", "TRACE_KPROBE_MULTI", F.NONE),
    ("kprobe.session+", "KPROBE", "TRACE_KPROBE_SESSION", F.NONE),
    ("uprobe.multi+", "KPROBE", "TRACE_UPROBE_MULTI", F.NONE),
    ("uretprobe.multi+", "KPROBE", "TRACE_UPROBE_MULTI", F.NONE),
    ("uprobe.session+", "KPROBE", "TRACE_UPROBE_SESSION", F.NONE),
    ("uprobe.multi.s+", "KPROBE", "TRACE_UPROBE_MULTI", F.SLEEPABLE),
    ("uretprobe.multi.s+", "KPROBE", "TRACE_UPROBE_MULTI", F.SLEEPABLE),
    ("uprobe.session.s+", "KPROBE", "TRACE_UPROBE_SESSION", F.SLEEPABLE),
    ("ksyscall+", "KPROBE", "", F.NONE),
    ("kretsyscall+", "KPROBE", "", F.NONE),
    ("usdt+", "KPROBE", "", F.USDT),
    ("usdt.s+", "KPROBE", "", F.USDT | F.SLEEPABLE),
    ("tc/ingress", "SCHED_CLS", "TCX_INGRESS", F.NONE),
    ("tc/egress", "SCHED_CLS", "TCX_EGRESS", F.NONE),
    ("tcx/ingress", "SCHED_CLS", "TCX_INGRESS", F.NONE),
    ("tcx/egress", "SCHED_CLS", "TCX_EGRESS", F.NONE),
    ("tc", "SCHED_CLS", "", F.NONE),
    ("classifier", "SCHED_CLS", "", F.NONE),
    ("action", "SCHED_ACT", "", F.NONE),
    ("netkit/primary", "SCHED_CLS", "NETKIT_PRIMARY", F.NONE),
    ("netkit/peer", "SCHED_CLS", "NETKIT_PEER", F.NONE),
    ("tracepoint+", "TRACEPOINT", "", F.NONE),
    ("tp+", "TRACEPOINT", "", F.NONE),
    ("tracepoint.s+", "TRACEPOINT", "", F.SLEEPABLE),
    ("tp.s+", "TRACEPOINT", "", F.SLEEPABLE),
    ("raw_tracepoint+", "RAW_TRACEPOINT", "", F.NONE),
    ("raw_tp+", "RAW_TRACEPOINT", "", F.NONE),
    ("raw_tracepoint.s+", "RAW_TRACEPOINT", "", F.SLEEPABLE),
    ("raw_tp.s+", "RAW_TRACEPOINT", "", F.SLEEPABLE),
    ("raw_tracepoint.w+", "RAW_TRACEPOINT_WRITABLE", "", F.NONE),
    ("raw_tp.w+", "RAW_TRACEPOINT_WRITABLE", "", F.NONE),
    ("tp_btf+", "TRACING", "TRACE_RAW_TP", F.ATTACH_BTF),
    ("tp_btf.s+", "TRACING", "TRACE_RAW_TP", F.ATTACH_BTF | F.SLEEPABLE),
    ("fentry+", "TRACING", "TRACE_FENTRY", F.ATTACH_BTF),
    ("fmod_ret+", "TRACING", "MODIFY_RETURN", F.ATTACH_BTF),
    ("fexit+", "TRACING", "TRACE_FEXIT", F.ATTACH_BTF),
    ("fentry.s+", "TRACING", "TRACE_FENTRY", F.ATTACH_BTF | F.SLEEPABLE),
    ("fmod_ret.s+", "TRACING", "MODIFY_RETURN", F.ATTACH_BTF | F.SLEEPABLE),
    ("fexit.s+", "TRACING", "TRACE_FEXIT", F.ATTACH_BTF | F.SLEEPABLE),
    ("fsession+", "TRACING", "TRACE_FSESSION", F.ATTACH_BTF),
    ("fsession.s+", "TRACING", "TRACE_FSESSION", F.ATTACH_BTF | F.SLEEPABLE),
    ("fsession.multi+", "TRACING", "TRACE_FSESSION_MULTI", F.NONE),
    ("fsession.multi.s+", "TRACING", "TRACE_FSESSION_MULTI", F.SLEEPABLE),
    ("fentry.multi+", "TRACING", "TRACE_FENTRY_MULTI", F.NONE),
    ("fexit.multi+", "TRACING", "TRACE_FEXIT_MULTI", F.NONE),
    ("fentry.multi.s+", "TRACING", "TRACE_FENTRY_MULTI", F.SLEEPABLE),
    ("fexit.multi.s+", "TRACING", "TRACE_FEXIT_MULTI", F.SLEEPABLE),
    ("freplace+", "EXT", "", F.ATTACH_BTF),
    ("lsm+", "LSM", "LSM_MAC", F.ATTACH_BTF),
    ("lsm.s+", "LSM", "LSM_MAC", F.ATTACH_BTF | F.SLEEPABLE),
    ("lsm_cgroup+", "LSM", "LSM_CGROUP", F.ATTACH_BTF),
    ("iter+", "TRACING", "TRACE_ITER", F.ATTACH_BTF),
    ("iter.s+", "TRACING", "TRACE_ITER", F.ATTACH_BTF | F.SLEEPABLE),
    ("syscall", "SYSCALL", "", F.SLEEPABLE),
    ("xdp.frags/devmap", "XDP", "XDP_DEVMAP", F.XDP_FRAGS),
    ("xdp/devmap", "XDP", "XDP_DEVMAP", F.ATTACHABLE),
    ("xdp.frags/cpumap", "XDP", "XDP_CPUMAP", F.XDP_FRAGS),
    ("xdp/cpumap", "XDP", "XDP_CPUMAP", F.ATTACHABLE),
    ("xdp.frags", "XDP", "XDP", F.XDP_FRAGS),
    ("xdp", "XDP", "XDP", F.ATTACHABLE_OPT),
    ("perf_event", "PERF_EVENT", "", F.NONE),
    ("lwt_in", "LWT_IN", "", F.NONE),
    ("lwt_out", "LWT_OUT", "", F.NONE),
    ("lwt_xmit", "LWT_XMIT", "", F.NONE),
    ("lwt_seg6local", "LWT_SEG6LOCAL", "", F.NONE),
    ("sockops", "SOCK_OPS", "CGROUP_SOCK_OPS", F.ATTACHABLE_OPT),
    ("sk_skb/stream_parser", "SK_SKB", "SK_SKB_STREAM_PARSER", F.ATTACHABLE_OPT),
    ("sk_skb/stream_verdict", "SK_SKB", "SK_SKB_STREAM_VERDICT", F.ATTACHABLE_OPT),
    ("sk_skb/verdict", "SK_SKB", "SK_SKB_VERDICT", F.ATTACHABLE_OPT),
    ("sk_skb", "SK_SKB", "", F.NONE),
    ("sk_msg", "SK_MSG", "SK_MSG_VERDICT", F.ATTACHABLE_OPT),
    ("lirc_mode2", "LIRC_MODE2", "LIRC_MODE2", F.ATTACHABLE_OPT),
    ("flow_dissector", "FLOW_DISSECTOR", "FLOW_DISSECTOR", F.ATTACHABLE_OPT),
    ("cgroup_skb/ingress", "CGROUP_SKB", "CGROUP_INET_INGRESS", F.ATTACHABLE_OPT),
    ("cgroup_skb/egress", "CGROUP_SKB", "CGROUP_INET_EGRESS", F.ATTACHABLE_OPT),
    ("cgroup/skb", "CGROUP_SKB", "", F.NONE),
    ("cgroup/sock_create", "CGROUP_SOCK", "CGROUP_INET_SOCK_CREATE", F.ATTACHABLE),
    ("cgroup/sock_release", "CGROUP_SOCK", "CGROUP_INET_SOCK_RELEASE", F.ATTACHABLE),
    ("cgroup/sock", "CGROUP_SOCK", "CGROUP_INET_SOCK_CREATE", F.ATTACHABLE_OPT),
    ("cgroup/post_bind4", "CGROUP_SOCK", "CGROUP_INET4_POST_BIND", F.ATTACHABLE),
    ("cgroup/post_bind6", "CGROUP_SOCK", "CGROUP_INET6_POST_BIND", F.ATTACHABLE),
    ("cgroup/bind4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_BIND", F.ATTACHABLE),
    ("cgroup/bind6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_BIND", F.ATTACHABLE),
    ("cgroup/connect4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_CONNECT", F.ATTACHABLE),
    ("cgroup/connect6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_CONNECT", F.ATTACHABLE),
    ("cgroup/connect_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_CONNECT", F.ATTACHABLE),
    ("cgroup/sendmsg4", "CGROUP_SOCK_ADDR", "CGROUP_UDP4_SENDMSG", F.ATTACHABLE),
    ("cgroup/sendmsg6", "CGROUP_SOCK_ADDR", "CGROUP_UDP6_SENDMSG", F.ATTACHABLE),
    ("cgroup/sendmsg_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_SENDMSG", F.ATTACHABLE),
    ("cgroup/recvmsg4", "CGROUP_SOCK_ADDR", "CGROUP_UDP4_RECVMSG", F.ATTACHABLE),
    ("cgroup/recvmsg6", "CGROUP_SOCK_ADDR", "CGROUP_UDP6_RECVMSG", F.ATTACHABLE),
    ("cgroup/recvmsg_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_RECVMSG", F.ATTACHABLE),
    ("cgroup/getpeername4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_GETPEERNAME", F.ATTACHABLE),
    ("cgroup/getpeername6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_GETPEERNAME", F.ATTACHABLE),
    ("cgroup/getpeername_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_GETPEERNAME", F.ATTACHABLE),
    ("cgroup/getsockname4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_GETSOCKNAME", F.ATTACHABLE),
    ("cgroup/getsockname6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_GETSOCKNAME", F.ATTACHABLE),
    ("cgroup/getsockname_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_GETSOCKNAME", F.ATTACHABLE),
    ("cgroup/sysctl", "CGROUP_SYSCTL", "CGROUP_SYSCTL", F.ATTACHABLE),
    ("cgroup/getsockopt", "CGROUP_SOCKOPT", "CGROUP_GETSOCKOPT", F.ATTACHABLE),
    ("cgroup/setsockopt", "CGROUP_SOCKOPT", "CGROUP_SETSOCKOPT", F.ATTACHABLE),
    ("cgroup/dev", "CGROUP_DEVICE", "CGROUP_DEVICE", F.ATTACHABLE_OPT),
    ("struct_ops+", "STRUCT_OPS", "", F.NONE),
    ("struct_ops.s+", "STRUCT_OPS", "", F.SLEEPABLE),
    ("sk_lookup", "SK_LOOKUP", "SK_LOOKUP", F.ATTACHABLE),
    ("netfilter", "NETFILTER", "NETFILTER", F.NONE),
)


def attach_type_value(name: str) -> int:
    """The number of attach type ``name`` (``"XDP"`` or ``"BPF_XDP"``)."""
    key = name[4:] if name.startswith("BPF_") else name
    try:
        return int(AttachType["BPF_" + key])
    except KeyError:
        pass
    try:
        return _EXTRA_ATTACH_TYPES[key]
    except KeyError:
        raise ParseError(f"unknown attach type {name!r}") from None


class SecDef(Record):
    """One entry of the section table."""

    __slots__ = ("prefix", "prog_type", "expected_attach_type", "flags")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    prefix: str  # as written in libbpf's table: "kprobe+", "xdp", "sk_skb/stream_parser"
    prog_type: int
    expected_attach_type: int
    flags: SecFlag

    def __init__(self, prefix: str, prog_type: int, expected_attach_type: int, flags: SecFlag) -> None:
        _set(self, "prefix", prefix)
        _set(self, "prog_type", prog_type)
        _set(self, "expected_attach_type", expected_attach_type)
        _set(self, "flags", flags)

    @property
    def name(self) -> str:
        """The prefix without its trailing ``+``."""
        return self.prefix[:-1] if self.prefix.endswith("+") else self.prefix

    @property
    def sleepable(self) -> bool:
        return bool(self.flags & SecFlag.SLEEPABLE)

    @property
    def attach_btf(self) -> bool:
        """The attach target is found by name in BTF at load time."""
        return bool(self.flags & SecFlag.ATTACH_BTF)

    @property
    def prog_flags(self) -> int:
        """BPF_PROG_LOAD prog_flags this entry asks for (sleepable, XDP frags)."""
        f = 0
        if self.flags & SecFlag.SLEEPABLE:
            f |= BPF_F_SLEEPABLE
        if self.flags & SecFlag.XDP_FRAGS and self.prog_type == ProgType.BPF_PROG_TYPE_XDP:
            f |= BPF_F_XDP_HAS_FRAGS
        return f

    def matches(self, sec_name: str) -> bool:
        """Whether ``sec_name`` (without any ``?``) selects this entry."""
        p = self.prefix
        if p.endswith("/"):
            return sec_name.startswith(p)
        if p.endswith("+"):
            base = p[:-1]
            if not sec_name.startswith(base):
                return False
            rest = sec_name[len(base) :]
            return rest == "" or rest.startswith("/")
        return sec_name == p

    def attach_target(self, sec_name: str) -> Optional[str]:
        """What follows ``<prefix>/`` in the section name, for ``+`` and ``/`` entries."""
        p = self.prefix
        if p.endswith("+"):
            base = p[:-1]
            if len(sec_name) > len(base) and sec_name[len(base)] == "/":
                return sec_name[len(base) + 1 :]
            return None
        if p.endswith("/"):
            return sec_name[len(p) :]
        return None


def _build() -> Tuple[SecDef, ...]:
    out = []
    for prefix, ptype, atype, flags in _TABLE:
        pt = int(ProgType["BPF_PROG_TYPE_" + ptype])
        at = attach_type_value(atype) if atype else 0
        out.append(SecDef(prefix, pt, at, flags))
    return tuple(out)


SECTION_DEFS: Tuple[SecDef, ...] = _build()


@lru_cache(maxsize=4096)
def find_sec_def(sec_name: str) -> Optional[SecDef]:
    """The first table entry matching ``sec_name`` (no leading ``?``), or None."""
    for d in SECTION_DEFS:
        if d.matches(sec_name):
            return d
    return None


class SectionInfo(Record):
    """What a program's ELF section name says about it."""

    __slots__ = ("elf_name", "name", "autoload", "sec_def", "prog_type", "expected_attach_type", "prog_flags", "attach_target")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    elf_name: str  # the ELF section name as written, '?' included
    name: str  # without the '?': what bpf_program__section_name returns
    autoload: bool
    sec_def: Optional[SecDef]
    prog_type: int
    expected_attach_type: int
    prog_flags: int
    attach_target: Optional[str]

    def __init__(
        self,
        elf_name: str,
        name: str,
        autoload: bool,
        sec_def: Optional[SecDef],
        prog_type: int,
        expected_attach_type: int,
        prog_flags: int,
        attach_target: Optional[str],
    ) -> None:
        _set(self, "elf_name", elf_name)
        _set(self, "name", name)
        _set(self, "autoload", autoload)
        _set(self, "sec_def", sec_def)
        _set(self, "prog_type", prog_type)
        _set(self, "expected_attach_type", expected_attach_type)
        _set(self, "prog_flags", prog_flags)
        _set(self, "attach_target", attach_target)

    @property
    def known(self) -> bool:
        return self.sec_def is not None

    @property
    def sleepable(self) -> bool:
        return self.sec_def is not None and self.sec_def.sleepable


def parse_section(elf_name: str) -> SectionInfo:
    """Read an executable section's name as libbpf does at open time.

    Unknown names give BPF_PROG_TYPE_UNSPEC and no error: the program type
    can still be set before load (libbpf only logs "unrecognized ELF section
    name" at open).
    """
    autoload = not elf_name.startswith("?")
    name = elf_name if autoload else elf_name[1:]
    d = find_sec_def(name)
    if d is None:
        return SectionInfo(elf_name, name, autoload, None, int(ProgType.BPF_PROG_TYPE_UNSPEC), 0, 0, None)
    return SectionInfo(elf_name, name, autoload, d, d.prog_type, d.expected_attach_type, d.prog_flags, d.attach_target(name))


def supported_names() -> str:
    """Every entry of the table, space-separated, as libbpf lists them."""
    return " ".join(d.prefix for d in SECTION_DEFS)


def unknown_section_message(prog_name: str, sec_name: str) -> str:
    """The message for a program whose section name no table entry matches."""
    return (
        f"prog {prog_name!r}: unrecognized ELF section name {sec_name!r}; "
        f"set the program type before load, or use a known section name: {supported_names()}"
    )


def prog_type_by_name(sec_name: str) -> Tuple[int, int]:
    """(program type, expected attach type) for a section name (libbpf_prog_type_by_name).

    Raises :class:`ParseError` naming the supported sections when nothing matches.
    """
    d = find_sec_def(sec_name)
    if d is None:
        raise ParseError(f"cannot guess a program type from section name {sec_name!r}; supported: {supported_names()}")
    return d.prog_type, d.expected_attach_type
