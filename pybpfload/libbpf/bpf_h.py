"""bpf.h: the low-level API, one function per bpf(2) command: maps, programs,
objects and ids, links (libbpf's names; see :mod:`pybpfload.libbpf`)."""

from __future__ import annotations

import errno as _errno
import ctypes
import dataclasses
import os
from typing import Any, List, Optional, Tuple

from .. import log as _log
from ..abi.uapi import AttachType, Cmd
from ..errors import BPFError, VerifierError
from ..syscall import commands
from ._common import BpfMapCreateOpts, BpfProgLoadOpts, BpfTestRunOpts, _PERCPU, _code, _fail, _fill_log, _first, _insns_from, _int_api, _opts, _set_out


# ---------------------------------------------------------------------------- bpf.h: maps
class _BadBuffer(BPFError):
    pass


def _sizes(fd: int) -> Tuple[int, int]:
    """(key size, value size as the kernel copies it) of map ``fd``."""
    from ..kernel.maps import possible_cpus
    from ..abi.uapi import MapInfo

    info = commands.obj_get_info_by_fd(fd, MapInfo())
    vs = info.value_size
    if info.type in _PERCPU:
        vs = ((vs + 7) & ~7) * possible_cpus()
    return info.key_size, vs


def _in(data: Any, size: int, what: str) -> Tuple[int, Any]:
    """(address, keep-alive) of the first ``size`` bytes of ``data`` (0 for None or size 0)."""
    if data is None or size == 0:
        return 0, None
    mv = memoryview(data).cast("B")
    if len(mv) < size:
        raise _BadBuffer(f"{what} buffer of {len(mv)} bytes, the map needs {size}")
    buf = ctypes.create_string_buffer(mv[:size].tobytes(), size)
    return ctypes.addressof(buf), buf


def _out(data: Any, size: int, what: str) -> Tuple[int, Any, Any]:
    """(address, scratch buffer, writable view) for an output of ``size`` bytes."""
    if data is None:
        raise _BadBuffer(f"{what}: NULL output buffer")
    mv = memoryview(data).cast("B")
    if mv.readonly:
        raise _BadBuffer(f"{what}: read-only output buffer ({type(data).__name__})")
    if len(mv) < size:
        raise _BadBuffer(f"{what} buffer of {len(mv)} bytes, the map needs {size}")
    buf = ctypes.create_string_buffer(max(size, 1))
    return ctypes.addressof(buf), buf, mv


def _elem(cmd: int, fd: int, key: Any, value: Any, flags: int, value_out: bool, key_out: Any = None) -> int:
    try:
        ks, vs = _sizes(fd)
        ka, kkeep = _in(key, ks, "key")
        if key_out is not None:  # GET_NEXT_KEY: "value" is the next key
            va, vbuf, vmv = _out(key_out, ks, "next key")
            vs = ks
        elif value_out:
            va, vbuf, vmv = _out(value, vs, "value")
        else:
            va, vbuf = _in(value, vs, "value")
            vmv = None
        commands.map_elem(cmd, fd, ka, va, flags)
        if vmv is not None and vs:
            vmv[:vs] = vbuf.raw[:vs]
    except _BadBuffer as e:
        _log.warn("%s", e)
        return _fail(-_errno.EINVAL)
    except BPFError as e:
        return _fail(-_code(e))
    return 0


def bpf_map_lookup_elem(fd: int, key: Any, value: Any) -> int:
    """Copy the value of ``key`` into the writable buffer ``value``; 0 or -errno (-ENOENT: no such key)."""
    return _elem(Cmd.BPF_MAP_LOOKUP_ELEM, fd, key, value, 0, True)


def bpf_map_lookup_elem_flags(fd: int, key: Any, value: Any, flags: int) -> int:
    return _elem(Cmd.BPF_MAP_LOOKUP_ELEM, fd, key, value, flags, True)


def bpf_map_update_elem(fd: int, key: Any, value: Any, flags: int) -> int:
    """Set ``key`` to ``value`` (BPF_ANY / BPF_NOEXIST / BPF_EXIST / BPF_F_LOCK)."""
    return _elem(Cmd.BPF_MAP_UPDATE_ELEM, fd, key, value, flags, False)


def bpf_map_delete_elem(fd: int, key: Any) -> int:
    return _elem(Cmd.BPF_MAP_DELETE_ELEM, fd, key, None, 0, False)


def bpf_map_delete_elem_flags(fd: int, key: Any, flags: int) -> int:
    return _elem(Cmd.BPF_MAP_DELETE_ELEM, fd, key, None, flags, False)


def bpf_map_lookup_and_delete_elem(fd: int, key: Any, value: Any) -> int:
    """Pop: for queue / stack maps ``key`` is None."""
    return _elem(Cmd.BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, key, value, 0, True)


def bpf_map_lookup_and_delete_elem_flags(fd: int, key: Any, value: Any, flags: int) -> int:
    return _elem(Cmd.BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, key, value, flags, True)


def bpf_map_get_next_key(fd: int, key: Any, next_key: Any) -> int:
    """The key after ``key`` (the first for None) into ``next_key``; -ENOENT after the last."""
    return _elem(Cmd.BPF_MAP_GET_NEXT_KEY, fd, key, None, 0, False, key_out=next_key)


@_int_api
def bpf_map_freeze(fd: int) -> int:
    commands.map_freeze(fd)
    return 0


@_int_api
def bpf_map_create(
    map_type: int, map_name: Optional[str], key_size: int, value_size: int, max_entries: int, opts: Any = None
) -> int:
    """Create a map; returns its fd (the caller's to close) or -errno."""
    o = _opts(BpfMapCreateOpts, opts)
    fd = commands.map_create(
        map_type,
        key_size,
        value_size,
        max_entries,
        name=map_name or "",
        flags=o.map_flags,
        inner_map_fd=o.inner_map_fd,
        numa_node=o.numa_node if o.numa_node else None,
        ifindex=o.map_ifindex,
        btf_fd=o.btf_fd,
        btf_key_type_id=o.btf_key_type_id,
        btf_value_type_id=o.btf_value_type_id,
        btf_vmlinux_value_type_id=o.btf_vmlinux_value_type_id,
        map_extra=o.map_extra,
    )
    return fd.detach()


# ---------------------------------------------------------------------------- bpf.h: programs
def bpf_prog_load(
    prog_type: int, prog_name: Optional[str], license: str, insns: Any, insn_cnt: Optional[int] = None, opts: Any = None
) -> int:
    """Load a program; returns its fd (the caller's to close) or -errno."""
    o = _opts(BpfProgLoadOpts, opts)
    try:
        code = _insns_from(insns, insn_cnt)
    except (BPFError, ValueError):
        return _fail(-_errno.EINVAL)
    level = o.log_level
    try:
        fd, text = commands.prog_load(
            prog_type,
            code,
            license,
            name=prog_name or "",
            expected_attach_type=o.expected_attach_type,
            flags=o.prog_flags,
            kern_version=o.kern_version,
            log_level=level,
            prog_btf_fd=o.prog_btf_fd,
            attach_btf_id=o.attach_btf_id,
            attach_btf_obj_fd=o.attach_btf_obj_fd,
            attach_prog_fd=o.attach_prog_fd,
            fd_array=tuple(o.fd_array),
            ifindex=o.prog_ifindex,
        )
    except VerifierError as e:
        o.log_true_size = len(e.log) + 1 if e.log else 0
        _fill_log(o.log_buf, o.log_size, e.log)
        return _fail(-_code(e))
    except BPFError as e:
        return _fail(-_code(e))
    o.log_true_size = len(text) + 1 if text else 0
    if level:
        _fill_log(o.log_buf, o.log_size, text)
    return fd.detach()


def bpf_prog_test_run_opts(prog_fd: int, opts: BpfTestRunOpts) -> int:
    """Run a program with BPF_PROG_TEST_RUN; fills ``opts``' outputs; 0 or -errno."""
    if opts is None:
        return _fail(-_errno.EINVAL)

    def raw(buf: Any, size: Optional[int]) -> bytes:
        if buf is None:
            return b""
        b = bytes(memoryview(buf).cast("B"))
        return b if size is None else b[:size]

    data_out_size = opts.data_size_out
    if data_out_size is None:
        data_out_size = len(memoryview(opts.data_out).cast("B")) if opts.data_out is not None else 0
    ctx_out_size = opts.ctx_size_out
    if ctx_out_size is None:
        ctx_out_size = len(memoryview(opts.ctx_out).cast("B")) if opts.ctx_out is not None else 0
    try:
        retval, duration, dout, cout = commands.prog_test_run(
            prog_fd,
            data_in=raw(opts.data_in, opts.data_size_in),
            data_size_out=data_out_size if opts.data_out is not None else 0,
            ctx_in=raw(opts.ctx_in, opts.ctx_size_in),
            ctx_size_out=ctx_out_size if opts.ctx_out is not None else 0,
            repeat=opts.repeat,
            flags=opts.flags,
            cpu=opts.cpu,
            batch_size=opts.batch_size,
        )
    except BPFError as e:
        return _fail(-_code(e))
    opts.retval, opts.duration = retval, duration
    if opts.data_out is not None:
        memoryview(opts.data_out).cast("B")[: len(dout)] = dout
        opts.data_size_out = len(dout)
    if opts.ctx_out is not None:
        memoryview(opts.ctx_out).cast("B")[: len(cout)] = cout
        opts.ctx_size_out = len(cout)
    return 0


@_int_api
def bpf_prog_bind_map(prog_fd: int, map_fd: int, opts: Any = None) -> int:
    commands.prog_bind_map(prog_fd, map_fd, int((opts or {}).get("flags", 0)) if isinstance(opts, dict) else 0)
    return 0


# ---------------------------------------------------------------------------- bpf.h: objects and ids
@_int_api
def bpf_obj_pin(fd: int, pathname: str) -> int:
    commands.obj_pin(fd, pathname)
    return 0


@_int_api
def bpf_obj_get(pathname: str) -> int:
    """An fd for the object pinned at ``pathname`` (the caller's to close)."""
    return commands.obj_get(pathname).detach()


def _next_id(kind: str, start_id: int, next_id: Any) -> int:
    try:
        nxt = commands.get_next_id(kind, start_id)
    except BPFError as e:
        return _fail(-_code(e))
    if nxt is None:
        return _fail(-_errno.ENOENT)
    _set_out(next_id, nxt)
    return 0


def bpf_prog_get_next_id(start_id: int, next_id: Any) -> int:
    """The next program id after ``start_id`` into ``next_id.value``; -ENOENT at the end."""
    return _next_id("prog", start_id, next_id)


def bpf_map_get_next_id(start_id: int, next_id: Any) -> int:
    return _next_id("map", start_id, next_id)


def bpf_btf_get_next_id(start_id: int, next_id: Any) -> int:
    return _next_id("btf", start_id, next_id)


def bpf_link_get_next_id(start_id: int, next_id: Any) -> int:
    return _next_id("link", start_id, next_id)


@_int_api
def bpf_prog_get_fd_by_id(id: int) -> int:
    return commands.get_fd_by_id("prog", id).detach()


@_int_api
def bpf_map_get_fd_by_id(id: int) -> int:
    return commands.get_fd_by_id("map", id).detach()


@_int_api
def bpf_btf_get_fd_by_id(id: int) -> int:
    return commands.get_fd_by_id("btf", id).detach()


@_int_api
def bpf_link_get_fd_by_id(id: int) -> int:
    return commands.get_fd_by_id("link", id).detach()


def bpf_obj_get_info_by_fd(bpf_fd: int, info: Any, info_len: Any) -> int:
    """Fill ``info`` (a ProgInfo / MapInfo / BtfInfo / LinkInfo ctypes struct from
    :mod:`pybpfload.abi.uapi`); ``info_len.value`` is its size in and the kernel's out."""
    from ..syscall._raw import bpf
    from ..abi.uapi import ObjGetInfoAttr

    n = getattr(info_len, "value", None)
    size = ctypes.sizeof(info) if n is None else min(int(n), ctypes.sizeof(info))
    attr = ObjGetInfoAttr(bpf_fd=bpf_fd, info_len=size, info=ctypes.addressof(info))
    try:
        bpf(Cmd.BPF_OBJ_GET_INFO_BY_FD, attr)
    except BPFError as e:
        return _fail(-_code(e))
    _set_out(info_len, attr.info_len)
    return 0


@_int_api
def bpf_enable_stats(type: int) -> int:
    return commands.enable_stats(type).detach()


@_int_api
def bpf_btf_load(btf_data: Any, btf_size: Optional[int] = None, opts: Any = None) -> int:
    data = bytes(memoryview(btf_data).cast("B"))
    if btf_size is not None:
        data = data[:btf_size]
    fd, _ = commands.btf_load(data)
    return fd.detach()



# ---------------------------------------------------------------------------- bpf.h: links
@dataclasses.dataclass
class BpfLinkCreateOpts:
    """struct bpf_link_create_opts: ``flags``, ``iter_info`` (bytes / ctypes) and ``iter_info_len``,
    ``target_btf_id``, and per attach type a dict: ``perf_event`` {bpf_cookie}, ``kprobe_multi``
    {flags, cnt, syms, addrs, cookies}, ``uprobe_multi`` {path, offsets, ref_ctr_offsets, cookies,
    cnt, flags, pid}, ``tracing`` {cookie}."""

    flags: int = 0
    iter_info: Any = None
    iter_info_len: int = 0
    target_btf_id: int = 0
    perf_event: Optional[dict] = None
    kprobe_multi: Optional[dict] = None
    uprobe_multi: Optional[dict] = None
    tracing: Optional[dict] = None


@dataclasses.dataclass
class BpfLinkUpdateOpts:
    """struct bpf_link_update_opts: ``flags`` (BPF_F_REPLACE) and ``old_prog_fd``."""

    flags: int = 0
    old_prog_fd: int = 0


_TRACING_COOKIE = (AttachType.BPF_TRACE_FENTRY, AttachType.BPF_TRACE_FEXIT, AttachType.BPF_MODIFY_RETURN)


@_int_api
def bpf_link_create(prog_fd: int, target_fd: int, attach_type: int, opts: Any = None) -> int:
    """BPF_LINK_CREATE; the link fd (the caller's to close) or a negative errno.

    As libbpf 1.1: the per-type options are used for their attach type
    only (others must be empty: -EINVAL); ``iter_info_len`` and
    ``target_btf_id`` exclude each other.  The multi-probe arrays are
    Python sequences here.
    """
    from ..link._attach_cmd import link_create, link_create_attr
    from ..link.multi import kprobe_multi_attr, uprobe_multi_attr

    o = _opts(BpfLinkCreateOpts, opts)
    at = int(attach_type)
    if o.iter_info_len and o.target_btf_id:
        return -_errno.EINVAL
    keep: List[Any] = []
    if at in (AttachType.BPF_TRACE_KPROBE_MULTI, AttachType.BPF_TRACE_KPROBE_SESSION):
        k = dict(o.kprobe_multi or {})
        cnt = int(k.get("cnt", 0))
        if not cnt:
            return -_errno.EINVAL
        try:
            ma = kprobe_multi_attr(
                prog_fd, syms=_first(k.get("syms"), cnt), addrs=_first(k.get("addrs"), cnt), cookies=_first(k.get("cookies"), cnt),
                session=at == AttachType.BPF_TRACE_KPROBE_SESSION,
            )
        except ValueError:
            return -_errno.EINVAL
        ma.attr.kprobe_multi.flags = int(k.get("flags", 0))
        attr, keep = ma.attr, ma.keep
    elif at in (AttachType.BPF_TRACE_UPROBE_MULTI, AttachType.BPF_TRACE_UPROBE_SESSION):
        u = dict(o.uprobe_multi or {})
        cnt = int(u.get("cnt", 0))
        if not u.get("path") or not cnt or u.get("offsets") is None:
            return -_errno.EINVAL
        pid = int(u.get("pid", 0))
        ma = uprobe_multi_attr(
            prog_fd, os.fsdecode(u["path"]), _first(u["offsets"], cnt) or [], ref_ctr_offsets=_first(u.get("ref_ctr_offsets"), cnt),
            cookies=_first(u.get("cookies"), cnt), session=at == AttachType.BPF_TRACE_UPROBE_SESSION, pid=pid if pid > 0 else -1,
        )
        ma.attr.uprobe_multi.flags = int(u.get("flags", 0))
        attr, keep = ma.attr, ma.keep
    else:
        fields: dict = {}
        if at == AttachType.BPF_PERF_EVENT:
            fields["perf_event"] = {"bpf_cookie": int((o.perf_event or {}).get("bpf_cookie", 0))}
        elif at in _TRACING_COOKIE and o.tracing:
            fields["tracing"] = {"target_btf_id": o.target_btf_id, "cookie": int(o.tracing.get("cookie", 0))}
        elif o.perf_event or o.kprobe_multi or o.uprobe_multi or o.tracing:
            return -_errno.EINVAL
        if o.iter_info is not None and o.iter_info_len:
            buf = commands.Buffer(o.iter_info)
            keep.append(buf)
            fields.update(iter_info=buf.address, iter_info_len=o.iter_info_len)
        elif o.target_btf_id and "tracing" not in fields:
            fields["target_btf_id"] = o.target_btf_id
        attr = link_create_attr(prog_fd, target_fd, at, o.flags, **fields)
    if at not in (AttachType.BPF_TRACE_KPROBE_MULTI, AttachType.BPF_TRACE_KPROBE_SESSION, AttachType.BPF_TRACE_UPROBE_MULTI,
                  AttachType.BPF_TRACE_UPROBE_SESSION):
        attr.flags = o.flags
    fd = link_create(attr, what=f"bpf_link_create attach type {at}")
    del keep
    return fd.detach()


@_int_api
def bpf_link_update(link_fd: int, new_prog_fd: int, opts: Any = None) -> int:
    """BPF_LINK_UPDATE: swap the program of ``link_fd`` (with BPF_F_REPLACE only if ``old_prog_fd`` is attached)."""
    o = _opts(BpfLinkUpdateOpts, opts)
    commands.link_update(link_fd, new_prog_fd, flags=o.flags, old_prog_fd=o.old_prog_fd)
    return 0


@_int_api
def bpf_link_detach(link_fd: int) -> int:
    """BPF_LINK_DETACH: detach the link now (its fd stays open, defunct)."""
    commands.link_detach(link_fd)
    return 0


def bpf_link_get_info_by_fd(link_fd: int, info: Any, info_len: Any) -> int:
    """libbpf 1.2's name: :func:`bpf_obj_get_info_by_fd` for a link (``info`` a ``_types.LinkInfo``)."""
    return bpf_obj_get_info_by_fd(link_fd, info, info_len)
