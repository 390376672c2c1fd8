"""BPF_MAP_TYPE_STACK_TRACE maps: stack ids to addresses, and addresses to text.

A stack map's value is an array of u64 instruction pointers, zero-terminated
(bpf_get_stackid fills ``value_size / 8`` slots); with BPF_F_STACK_BUILD_ID
it is an array of ``struct bpf_stack_build_id {s32 status; u8
build_id[20]; union {u64 offset; u64 ip;}}`` (32 bytes), ending at the first
BPF_STACK_BUILD_ID_EMPTY entry::

    for ip in stack_ips(obj.maps["stacks"], key.user_stack):
        print(sym(ip, pid, show_module=True, show_offset=True))
    print(format_stack(obj.maps["stacks"], key.kernel_stack, kernel=True))

A negative stack id is bpf_get_stackid's error (-EFAULT: no stack, -EEXIST:
a hash collision without BPF_F_REUSE_STACKID...): reading it raises a
:class:`~pybpfload.errors.BPFError` that names the errno.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, NamedTuple, Optional, Sequence, Union

from ..errors import BPFError

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel.maps import Map
    from .symbols import Symbol

__all__ = [
    "StackBuildId",
    "stack_ips",
    "stack_build_ids",
    "stack_frames",
    "walk",
    "symbolize",
    "format_stack",
    "BPF_F_STACK_BUILD_ID",
    "BPF_F_USER_STACK",
    "BPF_STACK_BUILD_ID_EMPTY",
    "BPF_STACK_BUILD_ID_VALID",
    "BPF_STACK_BUILD_ID_IP",
    "MAX_DEPTH",
]

BPF_F_USER_STACK = 1 << 8
BPF_F_STACK_BUILD_ID = 1 << 5
BPF_STACK_BUILD_ID_EMPTY = 0  # no address: the end of the stack
BPF_STACK_BUILD_ID_VALID = 1  # build_id + file offset
BPF_STACK_BUILD_ID_IP = 2  # the build id could not be read: a raw ip
MAX_DEPTH = 127  # bcc's walk() stops there (the kernel's default sysctl perf_event_max_stack)

_BUILD_ID_ENTRY = struct.Struct("=i20sQ")  # 32 bytes


class StackBuildId(NamedTuple):
    """One frame of a build-id stack: ``status``, ``build_id`` (20 bytes), and a file ``offset`` (VALID) or an ``ip`` (IP)."""

    status: int
    build_id: bytes
    offset_or_ip: int

    @property
    def offset(self) -> int:
        return self.offset_or_ip

    @property
    def ip(self) -> int:
        return self.offset_or_ip

    @property
    def build_id_hex(self) -> str:
        return self.build_id.hex()


def _check_id(m: "Map", stack_id: int) -> None:
    if stack_id < 0:
        from .errnos import errno_name

        raise BPFError(
            f"stack id {stack_id} is bpf_get_stackid's error {errno_name(stack_id)}, not a stack in map {m.name!r}"
            " (EFAULT: no stack there, e.g. a user stack of a kernel thread; EEXIST: a hash collision)"
        )


def _is_build_id_map(m: "Map") -> bool:
    flags = m.flags
    if not flags & BPF_F_STACK_BUILD_ID:
        try:
            flags = m.info().flags
        except BPFError:
            pass
    return bool(flags & BPF_F_STACK_BUILD_ID)


def _raw(m: "Map", stack_id: int) -> memoryview:
    from ._mapio import RawMap

    _check_id(m, stack_id)
    if int(m.type) != 7:  # BPF_MAP_TYPE_STACK_TRACE
        raise BPFError(f"map {m.name!r} is not a stack trace map (its type is {int(m.type)})")
    return RawMap(m).lookup(stack_id)


def stack_ips(m: "Map", stack_id: int) -> List[int]:
    """The instruction pointers of stack ``stack_id``, innermost first (MapKeyError, a KeyError, when absent).

    On a BPF_F_STACK_BUILD_ID map, the ips of its BPF_STACK_BUILD_ID_IP frames
    (see :func:`stack_build_ids` for the others).
    """
    if _is_build_id_map(m):
        return [f.ip for f in stack_build_ids(m, stack_id) if f.status == BPF_STACK_BUILD_ID_IP]
    v = _raw(m, stack_id)
    n = len(v) // 8
    ips = v[: n * 8].cast("Q").tolist()
    try:
        return ips[: ips.index(0)]
    except ValueError:
        return ips


def stack_build_ids(m: "Map", stack_id: int) -> List[StackBuildId]:
    """The frames of stack ``stack_id`` of a BPF_F_STACK_BUILD_ID map, up to the first EMPTY one."""
    if not _is_build_id_map(m):
        raise BPFError(f"map {m.name!r} was not made with BPF_F_STACK_BUILD_ID: read it with stack_ips()")
    v = _raw(m, stack_id)
    out = []
    for status, bid, off in _BUILD_ID_ENTRY.iter_unpack(v[: len(v) - len(v) % 32]):
        if status == BPF_STACK_BUILD_ID_EMPTY:
            break
        out.append(StackBuildId(status, bid, off))
    return out


def stack_frames(m: "Map", stack_id: int) -> Union[List[int], List[StackBuildId]]:
    """:func:`stack_build_ids` on a build-id map, else :func:`stack_ips`."""
    if _is_build_id_map(m):
        return stack_build_ids(m, stack_id)
    return stack_ips(m, stack_id)


def walk(m: "Map", stack_id: int, resolve: Optional[Callable[[Any], Any]] = None) -> Iterator[Any]:
    """bcc's ``StackTrace.walk``: the frames (at most MAX_DEPTH), each through ``resolve`` when given.

    On a build-id map bcc stops at the first frame that is not VALID; so does this.
    """
    frames: List[Any]
    if _is_build_id_map(m):
        frames = []
        for b in stack_build_ids(m, stack_id):
            if b.status != BPF_STACK_BUILD_ID_VALID:
                break
            frames.append(b)
    else:
        frames = list(stack_ips(m, stack_id))
    for f in frames[:MAX_DEPTH]:
        yield resolve(f) if resolve is not None else f


def _symbol(frame: Union[int, StackBuildId], pid: Optional[int], kernel: bool) -> "Symbol":
    from . import symbols

    if isinstance(frame, StackBuildId):
        if frame.status == BPF_STACK_BUILD_ID_VALID:
            return symbols.resolve_build_id(frame.build_id, frame.offset)
        frame = frame.ip
    if kernel or pid is None or pid < 0:
        return symbols.kernel_symbols().resolve(frame)
    try:
        ps = symbols.process_symbols(pid)
    except BPFError:
        return symbols.Symbol(None, frame, None)
    return ps.resolve(frame)


def symbolize(
    frames: Sequence[Union[int, StackBuildId]],
    pid: Optional[int] = None,
    *,
    kernel: bool = False,
    show_module: bool = True,
    show_offset: bool = True,
) -> List[str]:
    """Each frame as bcc's ``sym`` text: kernel addresses when ``kernel`` (or no pid), else in process ``pid``.

    Build-id frames resolve through their build id (the ELF files read so far,
    /usr/lib/debug/.build-id); their IP frames through ``pid``.
    """
    return [_symbol(f, pid, kernel).format(show_module, show_offset) for f in frames]


def format_stack(
    m: "Map",
    stack_id: int,
    pid: Optional[int] = None,
    *,
    kernel: bool = False,
    show_module: bool = True,
    show_offset: bool = True,
    indent: str = "    ",
) -> str:
    """Stack ``stack_id`` as text, one frame per line, innermost first (bcc's profile / stackcount style)."""
    frames = stack_frames(m, stack_id)
    lines = symbolize(frames, pid, kernel=kernel, show_module=show_module, show_offset=show_offset)
    return "".join(f"{indent}{line}\n" for line in lines)

