"""USDT probes: one uprobe per call site, specs in usdt.bpf.h's maps (libbpf's bpf_program__attach_usdt).

The program must come from an object that includes ``<bpf/usdt.bpf.h>``:
its two maps (``__bpf_usdt_specs``, array of ``struct __bpf_usdt_spec`` by
spec id; ``__bpf_usdt_ip_to_spec_id``, hash of absolute IP -> spec id) are
found among the maps the loaded program uses, by the names the kernel keeps
(15 characters: ``__bpf_usdt_spec``, ``__bpf_usdt_ip_t``).  Spec ids are
allocated per spec map, which is per object, as libbpf's usdt_manager is.

For each call site of ``provider:name`` (:func:`pybpfload.link.usdt_spec.collect_targets`)
a uprobe is opened through the uprobe PMU at the call site's file offset,
with the semaphore's file offset as ``ref_ctr_offset`` (the kernel then
increments the semaphore in every traced process while the probe exists)
and the spec id as BPF cookie; kernels without BPF cookies (< 5.15) get
the IP -> spec id entries instead, which for shared libraries and PIE
needs a pid.  The :class:`UsdtLink` owns every uprobe; closing it closes
them, removes its IP entries, clears its specs and frees its spec ids.

Differences from libbpf, on purpose: libbpf >= 1.3 attaches through one
uprobe_multi link when the kernel has them (6.6+), which needs the program
loaded with expected_attach_type BPF_TRACE_UPROBE_MULTI; pybpfload loads
usdt programs as plain kprobe programs (as libbpf 1.1 does) and uses one
perf-event uprobe per call site, as libbpf 1.1 does — the probes, specs and
cookies are the same.  The spec layout follows the object's usdt.bpf.h
(see :mod:`pybpfload.link.usdt_spec`).
"""

from __future__ import annotations

import errno
import os
import platform
import sys
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

from ..syscall import features
from .. import log
from ..errors import BPFError, BPFOSError, NotSupportedError, SyscallError
from ..abi.uapi import MapType
from ..abi import uapi as t
from ..syscall import commands
from ..syscall.fd import Fd
from .base import DetachOnClose, hook, prog_fd_of
from .elfsym import find_binary
from .perf_event import PerfEventLink
from .uprobe import attach_uprobe

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike
    from .usdt_spec import UsdtTarget

__all__ = ["UsdtLink", "attach_usdt", "parse_usdt_target", "SPECS_MAP", "IP_MAP"]

SPECS_MAP = "__bpf_usdt_specs"
IP_MAP = "__bpf_usdt_ip_to_spec_id"
_KNAME_LEN = 15  # BPF_OBJ_NAME_LEN - 1: what the kernel keeps of a map name
_BPF_NOEXIST = 1
_REF_CTR_FORMAT = "/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset"


def parse_usdt_target(target: str) -> Tuple[str, str, str]:
    """``PATH:PROVIDER:NAME`` (the part after SEC("usdt/")) -> (path, provider, name); no part may hold ':'."""
    parts = target.split(":")
    if len(parts) != 3 or not all(parts):
        raise BPFOSError(errno.EINVAL, f"invalid section 'usdt/{target}', expected SEC(\"usdt/<path>:<provider>:<name>\")")
    return parts[0], parts[1], parts[2]


class _SupportMap:
    """One of usdt.bpf.h's maps, opened by id: its fd, info and the element writes
    an attachment makes (a Map would do, but attaching stays below the kernel
    objects: :mod:`pybpfload.link` imports nothing of :mod:`pybpfload.kernel`)."""

    def __init__(self, map_id: int) -> None:
        self.fd: Fd = commands.get_fd_by_id("map", map_id)
        try:
            info = commands.obj_get_info_by_fd(self.fd.fileno(), t.MapInfo())
        except BaseException:
            self.fd.close()
            raise
        self.id = int(info.id)
        self.name = bytes(info.name).split(b"\0", 1)[0].decode("utf-8", "replace")
        self.type = int(info.type)
        self.key_size = int(info.key_size)
        self.value_size = int(info.value_size)
        self.max_entries = int(info.max_entries)

    def _elem(self, cmd: int, key: int, value: Any = None, flags: int = 0) -> None:
        import ctypes

        kbuf = ctypes.create_string_buffer(key.to_bytes(self.key_size, sys.byteorder), self.key_size)
        if value is None:
            commands.map_elem(cmd, self.fd.fileno(), ctypes.addressof(kbuf), 0, flags, name=self.name)
            return
        raw = value if isinstance(value, bytes) else int(value).to_bytes(self.value_size, sys.byteorder)
        vbuf = ctypes.create_string_buffer(raw, self.value_size)
        commands.map_elem(cmd, self.fd.fileno(), ctypes.addressof(kbuf), ctypes.addressof(vbuf), flags, name=self.name)

    def update(self, key: int, value: Any, flags: int = 0) -> None:
        self._elem(t.Cmd.BPF_MAP_UPDATE_ELEM, key, value, flags)

    def delete(self, key: int) -> None:
        self._elem(t.Cmd.BPF_MAP_DELETE_ELEM, key)

    def close(self) -> None:
        self.fd.close()


class _Manager:
    """Spec id state of one object (keyed by its spec map's kernel id)."""

    def __init__(self, specs_id: int, max_entries: int, layout: int) -> None:
        from .usdt_spec import SpecIdAllocator

        self.specs_id = specs_id
        self.layout = layout
        self.ids = SpecIdAllocator(max_entries)
        self.links = 0


_managers: Dict[int, _Manager] = {}
_lock = threading.Lock()


def _find_maps(prog: "ProgramLike") -> Tuple[_SupportMap, _SupportMap]:
    """The program's usdt.bpf.h maps, each on a new fd (the caller closes them)."""
    found: Dict[str, _SupportMap] = {}
    want = {SPECS_MAP[:_KNAME_LEN]: (SPECS_MAP, MapType.BPF_MAP_TYPE_ARRAY), IP_MAP[:_KNAME_LEN]: (IP_MAP, MapType.BPF_MAP_TYPE_HASH)}
    try:
        for map_id in prog.info().map_ids:
            try:
                m = _SupportMap(map_id)
            except SyscallError as e:
                if e.errno == errno.ENOENT:
                    continue
                raise
            hit = want.get(m.name)
            if hit is None or hit[0] in found or m.type != hit[1]:
                m.close()
                continue
            found[hit[0]] = m
        if len(found) != 2:
            raise BPFOSError(
                errno.ESRCH,
                f"usdt: program {prog.name!r} uses no USDT support maps ({SPECS_MAP}, {IP_MAP}); did you forget to include bpf/usdt.bpf.h?",
            )
        return found[SPECS_MAP], found[IP_MAP]
    except BaseException:
        for m in found.values():
            m.close()
        raise


def _manager(specs: _SupportMap) -> _Manager:
    from .usdt_spec import spec_layout

    with _lock:
        man = _managers.get(specs.id)
        if man is None:
            _prune()
            man = _managers[specs.id] = _Manager(specs.id, specs.max_entries, spec_layout(specs.value_size))
        return man


def _prune() -> None:
    """Forget managers of spec maps that no longer exist (their objects are gone); called with _lock held."""
    for map_id, man in list(_managers.items()):
        if man.links:
            continue
        try:
            commands.get_fd_by_id("map", map_id).close()
        except SyscallError:
            del _managers[map_id]


def _proc_maps(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/maps") as f:
            return f.read()
    except OSError as e:
        raise BPFOSError(e.errno or errno.ESRCH, f"usdt: cannot read the memory map of PID {pid}") from None


def _code_reader(path: str) -> Any:
    def code_at(off: int) -> bytes:
        with open(path, "rb") as f:
            f.seek(off)
            return f.read(6)

    return code_at


class UsdtLink(DetachOnClose):
    """One USDT attachment: every uprobe of its call sites, and its spec ids.

    Not a kernel link (libbpf's USDT link is not one either): it cannot be
    pinned.  ``uprobes`` are the underlying perf-event links, ``spec_ids``
    the ids each call site uses (in call-site order), ``targets`` the call
    sites.
    """

    _what_pin = "pinning a USDT attachment"

    def __init__(
        self,
        program: "ProgramLike",
        *,
        target: str,
        manager: _Manager,
        specs: _SupportMap,
        ip_map: _SupportMap,
        use_cookie: bool,
    ) -> None:
        super().__init__(None, program, kind="usdt", target=target)
        self._manager = manager
        self._specs = specs
        self._ip_map = ip_map
        self.use_cookie = use_cookie
        self._uprobes: List[PerfEventLink] = []
        self._ips: List[int] = []  # ip-to-spec-id entries this link added
        self._own_ids: List[int] = []  # spec ids allocated for this link
        self.spec_ids: Tuple[int, ...] = ()
        self.targets: Tuple["UsdtTarget", ...] = ()
        manager.links += 1

    @property
    def uprobes(self) -> Tuple[PerfEventLink, ...]:
        return tuple(self._uprobes)

    def _detach(self) -> None:
        errors: List[BaseException] = []
        for up in self._uprobes:
            try:
                up.close()
            except BPFError as e:  # keep going: every probe must go
                errors.append(e)
        self._uprobes = []
        for ip in self._ips:
            try:
                self._ip_map.delete(ip)
            except BPFError as e:  # as libbpf: nothing more to do about it
                log.warn("usdt: failed to remove IP %#x from %s: %s", ip, IP_MAP, e)
        self._ips = []
        # Unlike libbpf, which leaves them to be overwritten by later
        # attachments, the specs of freed ids are cleared: a dump of the spec
        # map then shows only live specs (the ids are free either way).
        for sid in self._own_ids:
            try:
                self._specs.update(sid, bytes(self._specs.value_size))
            except BPFError as e:
                log.warn("usdt: failed to clear spec #%d: %s", sid, e)
        man = self._manager
        with _lock:
            man.ids.release(self._own_ids)
            man.links -= 1
        self._own_ids = []
        self._specs.close()
        self._ip_map.close()
        if errors:
            raise errors[0]

    def _info_target(self) -> Any:
        return {"target": self.target, "uprobes": len(self._uprobes), "spec_ids": self.spec_ids}


@hook("usdt", t.ProgType.BPF_PROG_TYPE_KPROBE)
def attach_usdt(
    prog: "ProgramLike",
    binary: str,
    provider: str,
    name: str,
    *,
    pid: int = -1,
    usdt_cookie: int = 0,
) -> UsdtLink:
    """Attach ``prog`` to every call site of USDT ``provider:name`` in ``binary`` (libbpf's bpf_program__attach_usdt).

    ``binary``: a path, or a library (``libfoo.so``) / program name looked
    up as libbpf does.  ``pid`` -1 traces every process, 0 this process,
    else that one.  ``usdt_cookie`` is what ``bpf_usdt_cookie()`` returns
    in the program.  Errors: ENOENT when the binary has no such probe,
    ESRCH when the program has no usdt.bpf.h maps, E2BIG when the spec map
    is full.
    """
    prog_fd_of(prog)
    machine = platform.machine()
    if machine != "x86_64":
        raise NotSupportedError(f"USDT on {machine}", "pybpfload parses x86-64 USDT argument specs only")
    from .usdt_spec import collect_targets, read_elf

    path = find_binary(binary)
    pid = -1 if pid < 0 else (os.getpid() if pid == 0 else pid)
    use_cookie = features.has_bpf_cookie()
    specs, ip_map = _find_maps(prog)  # first, as libbpf looks for the maps before the binary
    try:
        man = _manager(specs)
        targets = collect_targets(
            read_elf(path),
            provider,
            name,
            usdt_cookie=usdt_cookie,
            pid=pid,
            has_bpf_cookie=use_cookie,
            has_sema_refcnt=os.path.exists(_REF_CTR_FORMAT),
            proc_maps=_proc_maps,
            code_at=_code_reader(path) if features.has_uprobe_syscall() else None,
        )
    except BaseException:
        specs.close()
        ip_map.close()
        raise
    what = f"{path}:{provider}:{name}"
    link = UsdtLink(prog, target=what, manager=man, specs=specs, ip_map=ip_map, use_cookie=use_cookie)
    try:
        with _lock:
            ids, new = man.ids.allocate(t.spec_str for t in targets)
        link._own_ids = new
        link.spec_ids = tuple(ids)
        link.targets = tuple(targets)
        written = set()
        for i, (t, sid) in enumerate(zip(targets, ids)):
            if sid not in written:
                specs.update(sid, t.spec.pack(man.layout))
                written.add(sid)
            if not use_cookie:
                try:
                    ip_map.update(t.abs_ip, sid, _BPF_NOEXIST)
                except SyscallError as e:
                    if e.errno == errno.EEXIST:
                        raise BPFOSError(errno.EEXIST, f"usdt: IP collision at {t.abs_ip:#x} for spec #{sid} of {what}") from None
                    raise
                link._ips.append(t.abs_ip)
            up = attach_uprobe(prog, path, None, t.rel_ip, pid=pid, cookie=sid if use_cookie else 0, ref_ctr_offset=t.sema_off)
            link._uprobes.append(up)
            log.debug("usdt: uprobe #%d for %s at offset %#x (ip %#x), spec #%d '%s'", i, what, t.rel_ip, t.abs_ip, sid, t.spec_str)
    except BaseException:
        link.close()
        raise
    return link
