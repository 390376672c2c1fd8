"""One thin function per bpf(2) command.

Arguments are plain Python values or raw buffer addresses; results are
:class:`Fd` objects for new fds and ints otherwise.  Failures raise
:class:`~pybpfload.errors.SyscallError` naming the command and the object.
Nothing here keeps state: the object model (maps, programs) sits above.
"""

from __future__ import annotations

import ctypes
import errno
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple, TypeVar

from ..errors import SyscallError, VerifierError
from ..abi import uapi as t
from ._raw import bpf
from .fd import Fd

Cmd = t.Cmd
OBJ_NAME_LEN = 16
BPF_F_NUMA_NODE = 1 << 2
BPF_F_VTYPE_BTF_OBJ_FD = 1 << 15
# map_flags / prog_flags / btf_flags / open_flags: the command's token fd field is set (6.9+)
BPF_F_TOKEN_FD = 1 << 16  # uapi.MapFlag.BPF_F_TOKEN_FD (tests/test_syscall_types.py checks them)

# Verifier log: first size tried, and the largest we will grow to (libbpf: UINT_MAX >> 2).
LOG_SIZE_START = 64 * 1024
LOG_SIZE_MAX = 0xFFFFFFFF >> 2
# PROG_LOAD and BTF_LOAD may fail with EAGAIN transiently (libbpf retries 5 times).
EAGAIN_RETRIES = 5

S = TypeVar("S", bound=ctypes.Structure)


def obj_name(name: Optional[str]) -> bytes:
    """A name as the kernel takes it: at most 15 bytes."""
    if not name:
        return b""
    return name.encode()[: OBJ_NAME_LEN - 1]


def fill(attr: Any, fields: Dict[str, Any]) -> None:
    """Set fields of a ctypes structure; a dict value fills a nested structure."""
    for key, value in fields.items():
        if isinstance(value, dict):
            fill(getattr(attr, key), value)
        else:
            setattr(attr, key, value)


class Buffer:
    """A buffer handed to the kernel: its address and the object keeping it alive."""

    __slots__ = ("obj", "address", "size")

    def __init__(self, data: Any, writable: bool = False) -> None:
        if isinstance(data, bytes) and not writable:
            self.obj: Any = data
            self.address = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
            self.size = len(data)
            return
        if isinstance(data, ctypes.Array) or isinstance(data, ctypes.Structure):
            self.obj = data
        else:
            mv = memoryview(data)
            if mv.readonly:
                data = bytearray(mv)
                mv = memoryview(data)
            self.obj = (ctypes.c_char * mv.nbytes).from_buffer(data)
        self.address = ctypes.addressof(self.obj)
        self.size = ctypes.sizeof(self.obj)


def addr(data: Any) -> Tuple[int, Any]:
    """(address, keep-alive) of bytes, bytearray, memoryview or ctypes buffer."""
    b = Buffer(data)
    return b.address, b


# ---------------------------------------------------------------- maps
def map_create(
    map_type: int,
    key_size: int,
    value_size: int,
    max_entries: int,
    *,
    name: str = "",
    flags: int = 0,
    inner_map_fd: int = 0,
    numa_node: Optional[int] = None,
    ifindex: int = 0,
    btf_fd: int = 0,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
    btf_vmlinux_value_type_id: int = 0,
    value_type_btf_obj_fd: int = 0,
    map_extra: int = 0,
    token_fd: int = 0,
) -> Fd:
    """BPF_MAP_CREATE; ``token_fd`` (a BPF token, 6.9+) is passed with BPF_F_TOKEN_FD when non-zero."""
    attr = t.MapCreateAttr(
        map_type=map_type,
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_flags=flags,
        inner_map_fd=inner_map_fd,
        map_name=obj_name(name),
        map_ifindex=ifindex,
        btf_fd=btf_fd,
        btf_key_type_id=btf_key_type_id,
        btf_value_type_id=btf_value_type_id,
        btf_vmlinux_value_type_id=btf_vmlinux_value_type_id,
        map_extra=map_extra,
    )
    if numa_node is not None:
        attr.map_flags |= BPF_F_NUMA_NODE
        attr.numa_node = numa_node
    if value_type_btf_obj_fd:  # a struct_ops value type in a module's BTF (6.9+)
        if not hasattr(attr, "value_type_btf_obj_fd"):
            from ..errors import NotSupportedError

            raise NotSupportedError("struct_ops value types in module BTF", "bpf_attr has no value_type_btf_obj_fd")
        attr.value_type_btf_obj_fd = value_type_btf_obj_fd
        attr.map_flags |= BPF_F_VTYPE_BTF_OBJ_FD
    if token_fd:
        attr.map_token_fd = token_fd
        attr.map_flags |= BPF_F_TOKEN_FD
    return Fd(bpf(Cmd.BPF_MAP_CREATE, attr, name=name or None))


def map_elem(cmd: int, map_fd: int, key: int, value: int = 0, flags: int = 0, *, name: Optional[str] = None) -> int:
    """LOOKUP/UPDATE/DELETE/GET_NEXT_KEY/LOOKUP_AND_DELETE with raw addresses."""
    attr = t.MapElemAttr(map_fd=map_fd, key=key, value=value, flags=flags)
    return bpf(cmd, attr, name=name)


def map_batch(
    cmd: int,
    map_fd: int,
    *,
    in_batch: int = 0,
    out_batch: int = 0,
    keys: int = 0,
    values: int = 0,
    count: int,
    elem_flags: int = 0,
    flags: int = 0,
    name: Optional[str] = None,
) -> Tuple[int, bool]:
    """A MAP_*_BATCH command; returns (count processed, reached the end)."""
    attr = t.MapBatchAttr(
        in_batch=in_batch,
        out_batch=out_batch,
        keys=keys,
        values=values,
        count=count,
        map_fd=map_fd,
        elem_flags=elem_flags,
        flags=flags,
    )
    try:
        bpf(cmd, attr, name=name)
    except SyscallError as e:
        if e.errno == errno.ENOENT:
            return attr.count, True
        raise
    return attr.count, False


def map_freeze(map_fd: int, *, name: Optional[str] = None) -> None:
    bpf(Cmd.BPF_MAP_FREEZE, t.MapElemAttr(map_fd=map_fd), name=name)


# ---------------------------------------------------------------- programs
def _with_log(
    cmd: int, attr: Any, name: Optional[str], log_level: int, log_size: int, fields: Tuple[str, str, str, str]
) -> Tuple[int, str]:
    """Run PROG_LOAD / BTF_LOAD, growing the log buffer until the whole log fits.

    ``fields`` names (log_buf, log_size, log_level, log_true_size) in ``attr``.
    With log_level 0 a failure is retried once at level 1 to fetch the log.
    Returns (fd, log text).
    """
    f_buf, f_size, f_level, f_true = fields
    level = log_level
    size = max(log_size, 1024) if level else 0
    buf: Optional[ctypes.Array] = None
    retries = 0
    while True:
        if level:
            if buf is None or ctypes.sizeof(buf) < size:
                buf = ctypes.create_string_buffer(size)
            else:
                ctypes.memset(buf, 0, ctypes.sizeof(buf))
            setattr(attr, f_buf, ctypes.addressof(buf))
            setattr(attr, f_size, ctypes.sizeof(buf))
        else:
            setattr(attr, f_buf, 0)
            setattr(attr, f_size, 0)
        setattr(attr, f_level, level)
        if f_true:
            setattr(attr, f_true, 0)
        try:
            fd = bpf(cmd, attr, name=name)
        except SyscallError as e:
            err = e.errno or 0
            if err == errno.EAGAIN and retries < EAGAIN_RETRIES:
                retries += 1
                continue
            if level == 0:
                level = 1
                size = LOG_SIZE_START
                continue
            true_size = getattr(attr, f_true, 0) if f_true else 0
            if err == errno.ENOSPC and size < LOG_SIZE_MAX:
                size = min(LOG_SIZE_MAX, max(true_size, size * 4))
                continue
            log = buf.value.decode("utf-8", "replace") if buf is not None else ""
            if cmd == Cmd.BPF_PROG_LOAD or log:
                raise VerifierError(err, e.command, name, log) from None
            raise
        log = buf.value.decode("utf-8", "replace") if (buf is not None and log_level) else ""
        return fd, log


def prog_load(
    prog_type: int,
    insns: bytes,
    license: str = "GPL",
    *,
    name: str = "",
    expected_attach_type: int = 0,
    flags: int = 0,
    kern_version: int = 0,
    log_level: int = 0,
    log_size: int = LOG_SIZE_START,
    prog_btf_fd: int = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 0,
    line_info: bytes = b"",
    line_info_rec_size: int = 0,
    attach_btf_id: int = 0,
    attach_btf_obj_fd: int = 0,
    attach_prog_fd: int = 0,
    fd_array: Sequence[int] = (),
    ifindex: int = 0,
    token_fd: int = 0,
) -> Tuple[Fd, str]:
    """BPF_PROG_LOAD; returns (fd, verifier log — empty unless log_level > 0).

    A rejection raises :class:`VerifierError` with the whole log.  A non-zero
    ``token_fd`` (a BPF token, 6.9+) is passed with BPF_F_TOKEN_FD.
    """
    if len(insns) % 8:
        raise ValueError(f"instructions are {len(insns)} bytes, not a multiple of 8")
    insns_a, keep1 = addr(bytes(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = t.ProgLoadAttr(
        prog_type=prog_type,
        insn_cnt=len(insns) // 8,
        insns=insns_a,
        license=ctypes.addressof(lic),
        kern_version=kern_version,
        prog_flags=flags,
        prog_name=obj_name(name),
        prog_ifindex=ifindex,
        expected_attach_type=expected_attach_type,
        prog_btf_fd=prog_btf_fd,
        attach_btf_id=attach_btf_id,
    )
    keep = [keep1, lic]
    if func_info:
        a, k = addr(bytes(func_info))
        attr.func_info, attr.func_info_rec_size = a, func_info_rec_size
        attr.func_info_cnt = len(func_info) // func_info_rec_size
        keep.append(k)
    if line_info:
        a, k = addr(bytes(line_info))
        attr.line_info, attr.line_info_rec_size = a, line_info_rec_size
        attr.line_info_cnt = len(line_info) // line_info_rec_size
        keep.append(k)
    if attach_prog_fd:
        attr.attach_prog_fd = attach_prog_fd
    elif attach_btf_obj_fd:
        attr.attach_btf_obj_fd = attach_btf_obj_fd
    if fd_array:
        arr = (ctypes.c_int32 * len(fd_array))(*fd_array)
        attr.fd_array = ctypes.addressof(arr)
        keep.append(arr)
    if token_fd:
        attr.prog_token_fd = token_fd
        attr.prog_flags |= BPF_F_TOKEN_FD
    fd, log = _with_log(
        Cmd.BPF_PROG_LOAD, attr, name or None, log_level, log_size, ("log_buf", "log_size", "log_level", "log_true_size")
    )
    del keep
    return Fd(fd), log


def prog_test_run(
    prog_fd: int,
    *,
    data_in: bytes = b"",
    data_size_out: int = 0,
    ctx_in: bytes = b"",
    ctx_size_out: int = 0,
    repeat: int = 0,
    flags: int = 0,
    cpu: int = 0,
    batch_size: int = 0,
    name: Optional[str] = None,
) -> Tuple[int, int, bytes, bytes]:
    """BPF_PROG_TEST_RUN; returns (retval, duration ns, data out, ctx out)."""
    din = ctypes.create_string_buffer(bytes(data_in), len(data_in)) if data_in else None
    dout = ctypes.create_string_buffer(data_size_out) if data_size_out else None
    cin = ctypes.create_string_buffer(bytes(ctx_in), len(ctx_in)) if ctx_in else None
    cout = ctypes.create_string_buffer(ctx_size_out) if ctx_size_out else None
    attr = t.ProgTestRunAttr(
        prog_fd=prog_fd,
        data_size_in=len(data_in),
        data_size_out=data_size_out,
        data_in=ctypes.addressof(din) if din is not None else 0,
        data_out=ctypes.addressof(dout) if dout is not None else 0,
        repeat=repeat,
        ctx_size_in=len(ctx_in),
        ctx_size_out=ctx_size_out,
        ctx_in=ctypes.addressof(cin) if cin is not None else 0,
        ctx_out=ctypes.addressof(cout) if cout is not None else 0,
        flags=flags,
        cpu=cpu,
        batch_size=batch_size,
    )
    bpf(Cmd.BPF_PROG_TEST_RUN, attr, name=name)
    data_out = dout.raw[: attr.data_size_out] if dout is not None else b""
    ctx_out = cout.raw[: attr.ctx_size_out] if cout is not None else b""
    return attr.retval, attr.duration, data_out, ctx_out


def prog_bind_map(prog_fd: int, map_fd: int, flags: int = 0) -> None:
    bpf(Cmd.BPF_PROG_BIND_MAP, t.ProgBindMapAttr(prog_fd=prog_fd, map_fd=map_fd, flags=flags))


# ---------------------------------------------------------------- objects
def obj_pin(fd: int, path: str, flags: int = 0) -> None:
    p = ctypes.create_string_buffer(path.encode())
    attr = t.ObjAttr(pathname=ctypes.addressof(p), bpf_fd=fd, file_flags=flags)
    bpf(Cmd.BPF_OBJ_PIN, attr, name=path)


def obj_get(path: str, flags: int = 0) -> Fd:
    p = ctypes.create_string_buffer(path.encode())
    attr = t.ObjAttr(pathname=ctypes.addressof(p), file_flags=flags)
    return Fd(bpf(Cmd.BPF_OBJ_GET, attr, name=path))


_NEXT_ID = {
    "prog": Cmd.BPF_PROG_GET_NEXT_ID,
    "map": Cmd.BPF_MAP_GET_NEXT_ID,
    "btf": Cmd.BPF_BTF_GET_NEXT_ID,
    "link": Cmd.BPF_LINK_GET_NEXT_ID,
}
_FD_BY_ID = {
    "prog": Cmd.BPF_PROG_GET_FD_BY_ID,
    "map": Cmd.BPF_MAP_GET_FD_BY_ID,
    "btf": Cmd.BPF_BTF_GET_FD_BY_ID,
    "link": Cmd.BPF_LINK_GET_FD_BY_ID,
}


def get_next_id(kind: str, start_id: int) -> Optional[int]:
    """The next id of a "prog", "map", "btf" or "link" after start_id; None at the end."""
    attr = t.GetIdAttr(start_id=start_id)
    try:
        bpf(_NEXT_ID[kind], attr)
    except SyscallError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return attr.next_id


def iter_ids(kind: str) -> Iterable[int]:
    """Every id of a kind in the system, in increasing order."""
    cur = 0
    while True:
        nxt = get_next_id(kind, cur)
        if nxt is None:
            return
        yield nxt
        cur = nxt


def get_fd_by_id(kind: str, obj_id: int, open_flags: int = 0, *, token_fd: int = 0) -> Fd:
    """An fd of the "prog", "map", "btf" or "link" with this id.

    ``token_fd``: a BPF token, passed with BPF_F_TOKEN_FD in open_flags (the
    kernel takes one for BTF from 6.15 on; libbpf passes it for BTF only).
    """
    attr = t.GetIdAttr(start_id=obj_id, open_flags=open_flags)
    if token_fd:
        attr.fd_by_id_token_fd = token_fd
        attr.open_flags |= BPF_F_TOKEN_FD
    return Fd(bpf(_FD_BY_ID[kind], attr, name=f"{kind} id {obj_id}"))


def obj_get_info_by_fd(fd: int, info: S, *, name: Optional[str] = None) -> S:
    """Fill ``info`` (a ProgInfo / MapInfo / BtfInfo / LinkInfo) for ``fd``."""
    attr = t.ObjGetInfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    bpf(Cmd.BPF_OBJ_GET_INFO_BY_FD, attr, name=name)
    return info


# ---------------------------------------------------------------- BTF
def btf_load(data: bytes, *, log_level: int = 0, log_size: int = LOG_SIZE_START, token_fd: int = 0) -> Tuple[Fd, str]:
    """BPF_BTF_LOAD; returns (fd, log). A rejection raises VerifierError with the log.

    A non-zero ``token_fd`` (a BPF token, 6.9+) is passed with BPF_F_TOKEN_FD.
    """
    a, keep = addr(bytes(data))
    attr = t.BtfLoadAttr(btf=a, btf_size=len(data))
    if token_fd:
        attr.btf_token_fd = token_fd
        attr.btf_flags |= BPF_F_TOKEN_FD
    fd, log = _with_log(
        Cmd.BPF_BTF_LOAD, attr, "BTF", log_level, log_size, ("btf_log_buf", "btf_log_size", "btf_log_level", "btf_log_true_size")
    )
    del keep
    return Fd(fd), log


# ---------------------------------------------------------------- tokens
def token_create(bpffs_fd: int, flags: int = 0, *, name: Optional[str] = None) -> Fd:
    """BPF_TOKEN_CREATE (6.9+): a BPF token derived from the bpffs whose root ``bpffs_fd`` opens.

    The token carries the commands, map, program and attach types that bpffs
    instance delegates (its delegate_* mount options); ``name`` (the bpffs path)
    names it in errors.  See :mod:`pybpfload.syscall.token` for the errors' meaning.
    """
    return Fd(bpf(Cmd.BPF_TOKEN_CREATE, t.TokenCreateAttr(flags=flags, bpffs_fd=bpffs_fd), name=name))


# ---------------------------------------------------------------- links
def link_create(prog_fd: int, target: int, attach_type: int, flags: int = 0, **fields: Any) -> Fd:
    """BPF_LINK_CREATE; ``target`` is an fd or ifindex, extra ``fields`` fill the union."""
    attr = t.LinkCreateAttr(prog_fd=prog_fd, target_fd=target, attach_type=attach_type, flags=flags)
    fill(attr, fields)
    return Fd(bpf(Cmd.BPF_LINK_CREATE, attr))


def link_update(link_fd: int, new_prog_fd: int, *, flags: int = 0, old_prog_fd: int = 0) -> None:
    attr = t.LinkUpdateAttr(link_fd=link_fd, new_prog_fd=new_prog_fd, flags=flags, old_prog_fd=old_prog_fd)
    bpf(Cmd.BPF_LINK_UPDATE, attr)


def link_detach(link_fd: int) -> None:
    bpf(Cmd.BPF_LINK_DETACH, t.LinkDetachAttr(link_fd=link_fd))


def raw_tracepoint_open(name: Optional[str], prog_fd: int, cookie: int = 0) -> Fd:
    n = ctypes.create_string_buffer(name.encode()) if name else None
    attr = t.RawTracepointOpenAttr(name=ctypes.addressof(n) if n is not None else 0, prog_fd=prog_fd)
    if cookie:
        attr.cookie = cookie
    return Fd(bpf(Cmd.BPF_RAW_TRACEPOINT_OPEN, attr, name=name))


def iter_create(link_fd: int, flags: int = 0) -> Fd:
    return Fd(bpf(Cmd.BPF_ITER_CREATE, t.IterCreateAttr(link_fd=link_fd, flags=flags)))


def enable_stats(stats_type: int = 0) -> Fd:
    """BPF_ENABLE_STATS: stats stay on while the returned fd is open."""
    return Fd(bpf(Cmd.BPF_ENABLE_STATS, t.EnableStatsAttr(type=stats_type)))
