"""Kernel feature probes, cached per process (libbpf's features.c and libbpf_probes.c).

Each probe creates the smallest object that needs the feature and closes it
at once.  Results are cached: a kernel does not change under a process.
Probes of BTF features live in :mod:`pybpfload.syscall.btf_features` (they load BTF blobs).

The probes take an optional ``token`` (a :class:`~pybpfload.syscall.token.Token`):
the objects they create then go through that token, and their answers are cached
on the token, apart from those made without one — as libbpf probes an object's
features with the object's token, in a cache of that object's own.

Public, as libbpf's: :func:`prog_type_supported`, :func:`map_type_supported`,
:func:`helper_supported` (libbpf_probe_bpf_prog_type / _map_type / _helper).
"""

from __future__ import annotations

import errno
import os
import struct
import _thread  # allocate_lock is threading.Lock, without importing threading (~1 ms)
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, TypeVar

from ..errors import BPFError, BPFOSError, NotSupportedError, SyscallError, VerifierError
from . import commands
from ..abi.uapi import AttachType, FuncId, MapType, ProgType

if TYPE_CHECKING:  # pragma: no cover
    from .token import Token

__all__ = [
    "prog_type_supported",
    "map_type_supported",
    "helper_supported",
    "has_prog_name",
    "has_global_data",
    "has_array_mmap",
    "has_exp_attach_type",
    "has_probe_read_kernel",
    "has_prog_bind_map",
    "has_bpf_cookie",
    "has_uprobe_syscall",
    "has_bpf_token",
    "has_cpu_v4",
    "cpu_v4_supported",
    "has_ldimm64_full_range_off",
    "reset_cache",
    "refusal",
    "running_kernel_version",
]

F = TypeVar("F", bound=Callable[..., bool])
_ENOTSUPP = 524  # the kernel's internal 'not supported'
_cache: Dict[tuple, bool] = {}
_lock = _thread.allocate_lock()


def _cached(fn: F) -> F:
    """Cache ``fn(*args)`` per process, or on ``token`` when one is given (passed on
    to ``fn`` when it takes a ``token``: probes that make no bpf() call do not)."""
    takes_token = "token" in fn.__code__.co_varnames[: fn.__code__.co_argcount + fn.__code__.co_kwonlyargcount]

    def wrapper(*args: int, token: "Optional[Token]" = None) -> bool:
        cache = _cache if token is None else token._features
        key = (fn.__name__, *args)
        hit = cache.get(key)
        if hit is not None:
            return hit
        result = fn(*args, token=token) if takes_token else fn(*args)
        with _lock:
            cache[key] = result
        return result

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


def reset_cache() -> None:
    """Forget every probe result made without a token (for tests)."""
    with _lock:
        _cache.clear()


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


_RET0 = _insn(0xB7, 0, imm=0) + _insn(0x95)  # r0 = 0; exit


def _ldimm64(dst: int, src: int, imm: int, imm2: int = 0) -> bytes:
    return _insn(0x18, dst, src, imm=imm) + _insn(0, imm=imm2)


def _tfd(token: "Optional[Token]") -> int:
    """The token's fd, 0 without one (what the commands' ``token_fd`` takes)."""
    return token.fd if token is not None else 0


def _loads(prog_type: int, insns: bytes, token: "Optional[Token]" = None, **kw: Any) -> bool:
    try:
        fd, _ = commands.prog_load(prog_type, insns, "GPL", token_fd=_tfd(token), **kw)
    except SyscallError:
        return False
    fd.close()
    return True


# Program types that need an expected attach type (or more) to load at all.
_PROG_EXPECTED_ATTACH = {
    ProgType.BPF_PROG_TYPE_CGROUP_SOCK_ADDR: AttachType.BPF_CGROUP_INET4_CONNECT,
    ProgType.BPF_PROG_TYPE_CGROUP_SOCKOPT: AttachType.BPF_CGROUP_GETSOCKOPT,
    ProgType.BPF_PROG_TYPE_SK_LOOKUP: AttachType.BPF_SK_LOOKUP,
    ProgType.BPF_PROG_TYPE_NETFILTER: AttachType.BPF_NETFILTER,
}
# Program types that need an attach target (a BTF id or a program): as libbpf
# 1.x, load with attach_btf_id 1 and expect the kernel's specific complaint
# about that id — which it only makes when it can load such programs at all
# (a kernel without BPF trampolines refuses earlier, with EPERM).
_PROG_TARGET_PROBES = {
    ProgType.BPF_PROG_TYPE_TRACING: (AttachType.BPF_TRACE_FENTRY, "attach_btf_id 1 is not a function"),
    ProgType.BPF_PROG_TYPE_LSM: (AttachType.BPF_LSM_MAC, "attach_btf_id 1 is not a function"),
    ProgType.BPF_PROG_TYPE_EXT: (0, "Cannot replace kernel functions"),
    ProgType.BPF_PROG_TYPE_STRUCT_OPS: (0, "attach_btf_id 1 is not a supported struct"),
}
BPF_F_SLEEPABLE = 1 << 4


@_cached
def prog_type_supported(prog_type: int, *, token: "Optional[Token]" = None) -> bool:
    """Whether the kernel can load programs of ``prog_type`` (libbpf_probe_bpf_prog_type)."""
    target = _PROG_TARGET_PROBES.get(prog_type)  # type: ignore[call-overload]
    if target is not None:
        exp_attach, msg = target
        try:
            fd, _ = commands.prog_load(
                prog_type, _RET0, "GPL", expected_attach_type=int(exp_attach), attach_btf_id=1, log_level=1, token_fd=_tfd(token)
            )
        except VerifierError as e:
            return e.errno in (errno.EINVAL, _ENOTSUPP) and msg in e.log
        except SyscallError:
            return False
        fd.close()
        return True
    exp = _PROG_EXPECTED_ATTACH.get(prog_type, 0)  # type: ignore[call-overload]
    flags = BPF_F_SLEEPABLE if prog_type == ProgType.BPF_PROG_TYPE_SYSCALL else 0
    return _loads(prog_type, _RET0, token, expected_attach_type=int(exp), flags=flags)


_MAP_ARGS: Dict[int, tuple] = {
    MapType.BPF_MAP_TYPE_LPM_TRIE: (8, 8, 1, 1),
    MapType.BPF_MAP_TYPE_QUEUE: (0, 4, 1, 0),
    MapType.BPF_MAP_TYPE_STACK: (0, 4, 1, 0),
    MapType.BPF_MAP_TYPE_BLOOM_FILTER: (0, 4, 1, 0),
    MapType.BPF_MAP_TYPE_RINGBUF: (0, 0, 4096, 0),
    MapType.BPF_MAP_TYPE_USER_RINGBUF: (0, 0, 4096, 0),
    MapType.BPF_MAP_TYPE_STACK_TRACE: (4, 8, 1, 0),
    MapType.BPF_MAP_TYPE_ARENA: (0, 0, 1, 1 << 10),
    MapType.BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED: (16, 8, 0, 0),  # struct bpf_cgroup_storage_key
    MapType.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE_DEPRECATED: (16, 8, 0, 0),
}


def _storage_btf() -> bytes:
    """libbpf's probe BTF: [1] int, [2] struct bpf_spin_lock { int val; }, [3] struct val { int cnt; struct bpf_spin_lock l; }."""
    strs = b"\0bpf_spin_lock\0val\0cnt\0l\0"
    types = struct.pack("<IIII", 0, 1 << 24, 4, (1 << 24) | 32)  # int, signed, 32 bits
    types += struct.pack("<III", 1, (4 << 24) | 1, 4) + struct.pack("<III", 15, 1, 0)
    types += struct.pack("<III", 15, (4 << 24) | 2, 8) + struct.pack("<III", 19, 1, 0) + struct.pack("<III", 23, 2, 32)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strs))
    return hdr + types + strs
_LOCAL_STORAGES = {
    MapType.BPF_MAP_TYPE_SK_STORAGE,
    MapType.BPF_MAP_TYPE_INODE_STORAGE,
    MapType.BPF_MAP_TYPE_TASK_STORAGE,
    MapType.BPF_MAP_TYPE_CGRP_STORAGE,
}


def refusal(e: BPFOSError, kind: str, type_value: int, type_name: str, token: "Optional[Token]" = None) -> BPFError:
    """``e`` (a failed map create or program load) as NotSupportedError when the
    loader's own probe says the kernel lacks ``type_value`` (``kind``: "map" or
    "program"), whatever errno the kernel build answered (EINVAL, EPERM...).

    The error names the type and keeps the kernel's errno.  ``e`` is returned
    unchanged when the type exists, when the probe itself cannot run, and for
    EPERM when even the most basic type is refused (no privilege, not an absent type).
    ``token``: the token the refused call went through (the probes use it too).
    """
    probe, basic = (
        (map_type_supported, MapType.BPF_MAP_TYPE_ARRAY) if kind == "map" else (prog_type_supported, ProgType.BPF_PROG_TYPE_SOCKET_FILTER)
    )
    try:
        if probe(type_value, token=token):
            return e
        # EPERM for the basic type itself (an array, a socket filter): no privilege, never an absent type
        if e.errno == errno.EPERM and (type_value == basic or not probe(basic, token=token)):
            return e
    except BPFError:
        return e
    return NotSupportedError(f"BPF {kind} type {type_name}", str(e), errno=e.errno)


@_cached
def map_type_supported(map_type: int, *, token: "Optional[Token]" = None) -> bool:
    """Whether the kernel can create maps of ``map_type`` (libbpf_probe_bpf_map_type)."""
    ks, vs, n, flags = _MAP_ARGS.get(map_type, (4, 4, 1, 0))
    tfd = _tfd(token)
    if map_type in (MapType.BPF_MAP_TYPE_ARRAY_OF_MAPS, MapType.BPF_MAP_TYPE_HASH_OF_MAPS):
        with commands.map_create(MapType.BPF_MAP_TYPE_ARRAY, 4, 4, 1, token_fd=tfd) as inner:
            try:
                commands.map_create(map_type, 4, 4, 1, inner_map_fd=inner.fileno(), token_fd=tfd).close()
            except SyscallError:
                return False
            return True
    if map_type in _LOCAL_STORAGES:
        try:
            btf, _ = commands.btf_load(_storage_btf(), token_fd=tfd)
        except BPFError:
            return False
        with btf:
            try:
                commands.map_create(
                    map_type, 4, 8, 0, flags=1, btf_fd=btf.fileno(), btf_key_type_id=1, btf_value_type_id=3, token_fd=tfd
                ).close()
            except SyscallError:
                return False
            return True
    try:
        vmlinux_vt = 1 if map_type == MapType.BPF_MAP_TYPE_STRUCT_OPS else 0
        commands.map_create(map_type, ks, vs, n, flags=flags, btf_vmlinux_value_type_id=vmlinux_vt, token_fd=tfd).close()
    except SyscallError as e:
        # struct_ops maps need a real vmlinux value type: the kernel knows the
        # map type when it rejects type id 1 with ENOTSUPP (as libbpf checks)
        return map_type == MapType.BPF_MAP_TYPE_STRUCT_OPS and e.errno == _ENOTSUPP
    return True


@_cached
def helper_supported(prog_type: int, helper_id: int, *, token: "Optional[Token]" = None) -> bool:
    """Whether programs of ``prog_type`` may call helper ``helper_id`` (libbpf_probe_bpf_helper)."""
    exp = _PROG_EXPECTED_ATTACH.get(prog_type, 0)  # type: ignore[call-overload]
    code = _insn(0x85, imm=helper_id) + _RET0
    try:
        fd, _ = commands.prog_load(prog_type, code, "GPL", expected_attach_type=int(exp or 0), log_level=1, token_fd=_tfd(token))
    except VerifierError as e:
        # As libbpf: the verifier says "invalid func" for an id it does not
        # know and "unknown func" for a helper this type may not call; any
        # other complaint (bad arguments...) counts as supported.  Like
        # libbpf, this misses helpers refused with other words (e.g. "cannot
        # use helper"): answers stay identical to libbpf_probe_bpf_helper's.
        log = e.log
        return not ("invalid func " in log or "unknown func " in log)
    except SyscallError:
        return False
    fd.close()
    return True


@_cached
def has_prog_name(*, token: "Optional[Token]" = None) -> bool:
    """Programs and maps accept a name (4.15+)."""
    return _loads(ProgType.BPF_PROG_TYPE_SOCKET_FILTER, _RET0, token, name="test")


@_cached
def has_global_data(*, token: "Optional[Token]" = None) -> bool:
    """ld_imm64 BPF_PSEUDO_MAP_VALUE: global variables in array maps (5.2+)."""
    try:
        m = commands.map_create(MapType.BPF_MAP_TYPE_ARRAY, 4, 32, 1, token_fd=_tfd(token))
    except BPFError:
        return False
    with m:
        code = _ldimm64(1, 2, m.fileno()) + _insn(0x7A, 1, off=0, imm=42) + _RET0  # *(u64 *)(r1 + 0) = 42
        return _loads(ProgType.BPF_PROG_TYPE_SOCKET_FILTER, code, token)


@_cached
def has_array_mmap(*, token: "Optional[Token]" = None) -> bool:
    """BPF_F_MMAPABLE arrays (5.5+)."""
    try:
        commands.map_create(MapType.BPF_MAP_TYPE_ARRAY, 4, 4, 1, flags=1 << 10, token_fd=_tfd(token)).close()
    except BPFError:
        return False
    return True


@_cached
def has_exp_attach_type(*, token: "Optional[Token]" = None) -> bool:
    """expected_attach_type at load for cgroup sock programs (4.17+)."""
    return _loads(
        ProgType.BPF_PROG_TYPE_CGROUP_SOCK,
        _RET0,
        token,
        expected_attach_type=int(AttachType.BPF_CGROUP_INET_SOCK_CREATE),
    )


@_cached
def has_probe_read_kernel(*, token: "Optional[Token]" = None) -> bool:
    """bpf_probe_read_kernel (5.5+); without it libbpf falls back to bpf_probe_read."""
    return helper_supported(ProgType.BPF_PROG_TYPE_KPROBE, FuncId.BPF_FUNC_probe_read_kernel, token=token)


@_cached
def has_prog_bind_map(*, token: "Optional[Token]" = None) -> bool:
    """BPF_PROG_BIND_MAP (5.10+)."""
    try:
        m = commands.map_create(MapType.BPF_MAP_TYPE_ARRAY, 4, 4, 1, token_fd=_tfd(token))
    except BPFError:
        return False
    with m:
        try:
            fd, _ = commands.prog_load(ProgType.BPF_PROG_TYPE_SOCKET_FILTER, _RET0, token_fd=_tfd(token))
        except BPFError:
            return False
        with fd:
            try:
                commands.prog_bind_map(fd.fileno(), m.fileno())
            except SyscallError:
                return False
            return True


@_cached
def has_bpf_cookie(*, token: "Optional[Token]" = None) -> bool:
    """bpf_get_attach_cookie (5.15+)."""
    return helper_supported(ProgType.BPF_PROG_TYPE_KPROBE, FuncId.BPF_FUNC_get_attach_cookie, token=token)


@_cached
def has_ldimm64_full_range_off(*, token: "Optional[Token]" = None) -> bool:
    """Map value offsets of ld_imm64 past 512 MiB get past the verifier's own limit
    (libbpf 1.7's FEAT_LDIMM64_FULL_RANGE_OFF): where they do, libbpf 1.7 places an
    object's arena globals at the end of the arena, else at its start.

    As libbpf: a tracepoint program loads ``&value + 1 GiB`` of a one-byte array and
    must fail; "direct value offset of" in the log is the old limit (False), "invalid
    access to map value pointer" the map's own bounds check (True), anything else False.
    """
    try:
        m = commands.map_create(MapType.BPF_MAP_TYPE_ARRAY, 4, 1, 1, name="arr", token_fd=_tfd(token))
    except BPFError:
        return False
    with m:
        code = _ldimm64(1, 2, m.fileno(), 1 << 30) + _insn(0x95)  # r1 = &value + (1 << 30); exit
        try:
            fd, _ = commands.prog_load(
                ProgType.BPF_PROG_TYPE_TRACEPOINT, code, "GPL", name="global_reloc", log_level=1, token_fd=_tfd(token)
            )
        except VerifierError as e:
            return "direct value offset of" not in e.log and "invalid access to map value pointer" in e.log
        except SyscallError:
            return False
        fd.close()  # loaded: not what any kernel does (libbpf: unexpected, the feature counts as absent)
        return False


# BPF ISA v4 (Linux 6.6), by class (elf.insn.CPU_V4_CLASSES): a program that
# returns 0 through one instruction of the class.  Kernels are not all or
# nothing: Debian's 6.1 (6.1.176) takes gotol and none of the others.
_CPU_V4_PROBES = {
    "ldsx": _insn(0x7A, 10, off=-8, imm=0) + _insn(0x91, 0, 10, off=-8),  # *(u64 *)(r10 - 8) = 0; r0 = *(s8 *)(r10 - 8)
    "movsx": _insn(0xB7, 0, imm=0) + _insn(0xBF, 0, 0, off=8),  # r0 = 0; r0 = (s8)r0
    "sdiv": _insn(0xB7, 0, imm=0) + _insn(0x37, 0, off=1, imm=3) + _insn(0x97, 0, off=1, imm=3),  # r0 s/= 3; r0 s%= 3
    "bswap": _insn(0xB7, 0, imm=0) + _insn(0xD7, 0, imm=16),  # r0 = bswap16 r0
    "gotol": _insn(0xB7, 0, imm=0) + _insn(0x06, imm=0),  # gotol +0
}


@_cached
def cpu_v4_supported(what: str, *, token: "Optional[Token]" = None) -> bool:
    """Whether the kernel takes BPF ISA v4's instructions of class ``what``: "ldsx"
    (sign-extending loads), "movsx", "sdiv" (sdiv and smod), "bswap" or "gotol"."""
    try:
        insns = _CPU_V4_PROBES[what]
    except KeyError:
        raise ValueError(f"no BPF ISA v4 instruction class {what!r} (one of {', '.join(_CPU_V4_PROBES)})") from None
    return _loads(ProgType.BPF_PROG_TYPE_SOCKET_FILTER, insns + _insn(0x95), token)


def has_cpu_v4(*, token: "Optional[Token]" = None) -> bool:
    """BPF ISA v4 (6.6+, clang -mcpu=v4), every class of it: sign-extending loads and
    moves, sdiv/smod, bswap, gotol (bpftool's "ISA extension v4" probes gotol alone)."""
    return all(cpu_v4_supported(what, token=token) for what in _CPU_V4_PROBES)


_NR_UPROBE = {"x86_64": 336}


@_cached
def has_uprobe_syscall() -> bool:
    """The x86-64 uprobe() syscall (6.18+): uprobes on a nop5 can be optimised (libbpf's FEAT_UPROBE_SYSCALL).

    As libbpf: called from outside a uprobe trampoline it fails with ENXIO
    when the kernel has it (ENOSYS otherwise).
    """
    import platform

    from ._raw import get_errno, syscall

    nr = _NR_UPROBE.get(platform.machine())
    if nr is None:
        return False
    return syscall(nr) < 0 and get_errno() == errno.ENXIO


def has_bpf_token() -> bool:
    """BPF tokens: the kernel has BPF_TOKEN_CREATE (6.9+); cached per process.

    Decided by the kernel's answer to the command with fd -1: EBADF from a
    kernel that knows the command, EINVAL (unknown command) from one that does
    not.  Any other answer decides nothing and is raised (a
    :class:`~pybpfload.errors.SyscallError`, not cached): an LSM refusing
    bpf(), or the EPERM kernels before 6.5 give unprivileged callers for every
    command when unprivileged BPF is disabled.
    """
    key = ("has_bpf_token",)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    try:
        commands.token_create(-1).close()  # pragma: no cover - no kernel takes fd -1
        result = True
    except SyscallError as e:
        if e.errno not in (errno.EBADF, errno.EINVAL):
            raise
        result = e.errno == errno.EBADF
    with _lock:
        _cache[key] = result
    return result


# ---------------------------------------------------------------- the kernel release
def running_kernel_version() -> int:
    """KERNEL_VERSION(major, minor, patch) of the running kernel, as current libbpf computes it.

    Ubuntu's /proc/version_signature wins, then Debian's version string
    ("#1 SMP ... Debian 6.1.176-1 (...)": its uname release is the ABI name,
    6.1.0-50-amd64; libbpf after 1.1), then uname's release; the patch level
    saturates at 255.
    """
    try:
        with open("/proc/version_signature") as f:
            parts = f.read().split()
        if len(parts) >= 3:
            return _kv(parts[2])
    except (OSError, ValueError):
        pass
    uname = os.uname()
    at = uname.version.find("Debian ")
    if at >= 0:
        try:
            return _kv(uname.version[at + len("Debian ") :].split()[0])
        except (IndexError, ValueError):
            pass  # libbpf falls back to the release too
    try:
        return _kv(uname.release)
    except ValueError:
        return 0


def _kv(text: str) -> int:
    nums = []
    for part in text.split(".")[:3]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            raise ValueError(text)
        nums.append(int(digits))
        if len(digits) != len(part):
            break
    if len(nums) != 3:
        raise ValueError(text)
    major, minor, patch = nums
    return (major << 16) + (minor << 8) + min(patch, 255)
