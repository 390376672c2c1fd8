"""What the libbpf-compatible modules share: errno handling (negative returns,
NULL with errno), constants, options structs and ``struct bpf_insn``."""

from __future__ import annotations

import ctypes
import dataclasses
import weakref
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from .. import log as _log
from ..errors import BPFError, LibbpfErrno, error_code
from ..object import Object
from ..kernel.program import Program
from ..abi.uapi import MapType


from .. import LIBBPF_API_VERSION as _API  # noqa: E402

LIBBPF_MAJOR_VERSION, LIBBPF_MINOR_VERSION = _API

# libbpf_print_level
LIBBPF_WARN = _log.WARN
LIBBPF_INFO = _log.INFO
LIBBPF_DEBUG = _log.DEBUG

LIBBPF_ERRNO__LIBELF = int(LibbpfErrno.LIBELF)
LIBBPF_ERRNO__FORMAT = int(LibbpfErrno.FORMAT)
LIBBPF_ERRNO__KVERSION = int(LibbpfErrno.KVERSION)
LIBBPF_ERRNO__ENDIAN = int(LibbpfErrno.ENDIAN)
LIBBPF_ERRNO__INTERNAL = int(LibbpfErrno.INTERNAL)
LIBBPF_ERRNO__RELOC = int(LibbpfErrno.RELOC)
LIBBPF_ERRNO__LOAD = int(LibbpfErrno.LOAD)
LIBBPF_ERRNO__VERIFY = int(LibbpfErrno.VERIFY)
LIBBPF_ERRNO__PROG2BIG = int(LibbpfErrno.PROG2BIG)
LIBBPF_ERRNO__KVER = int(LibbpfErrno.KVER)
LIBBPF_ERRNO__PROGTYPE = int(LibbpfErrno.PROGTYPE)
LIBBPF_ERRNO__WRNGPID = int(LibbpfErrno.WRNGPID)
LIBBPF_ERRNO__INVSEQ = int(LibbpfErrno.INVSEQ)
LIBBPF_ERRNO__NLPARSE = int(LibbpfErrno.NLPARSE)

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

_PERCPU = frozenset(
    {
        MapType.BPF_MAP_TYPE_PERCPU_HASH,
        MapType.BPF_MAP_TYPE_PERCPU_ARRAY,
        MapType.BPF_MAP_TYPE_LRU_PERCPU_HASH,
        MapType.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
    }
)
_MAP_IN_MAP = frozenset({MapType.BPF_MAP_TYPE_ARRAY_OF_MAPS, MapType.BPF_MAP_TYPE_HASH_OF_MAPS})

# ---------------------------------------------------------------------------- errno
F = TypeVar("F", bound=Callable[..., Any])


def get_errno() -> int:
    """The calling thread's errno, as the last failing function here left it."""
    return ctypes.get_errno()


def _set_errno(err: int) -> None:
    ctypes.set_errno(abs(err))


def _fail(ret: int) -> int:
    """libbpf_err(): set errno from a negative return value and return it."""
    _set_errno(ret)
    return ret


def _null(err: int) -> Any:
    """errno = err, NULL."""
    _set_errno(err)
    return None


def _code(exc: BaseException) -> int:
    """The positive code of an exception, as libbpf 1.x would return it.

    A failed syscall (the verifier included) gives its errno, as libbpf 1.x;
    other pybpfload errors map through :func:`pybpfload.errors.error_code`.
    """
    if isinstance(exc, OSError) and exc.errno:
        return int(exc.errno)
    return error_code(exc)


def _int_api(fn: F) -> F:
    """Turn pybpfload exceptions into libbpf's negative return with errno set."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            ret = fn(*args, **kwargs)
        except BPFError as e:
            return _fail(-_code(e))
        if isinstance(ret, int) and ret < 0:
            _set_errno(ret)
        return ret

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


def _ptr_api(fn: F) -> F:
    """Turn pybpfload exceptions into libbpf's NULL return with errno set."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BPFError as e:
            return _null(_code(e))

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


def _set_out(holder: Any, value: int) -> None:
    if holder is not None:
        holder.value = value



# ---------------------------------------------------------------------------- struct bpf_insn
class bpf_insn(ctypes.Structure):
    """struct bpf_insn: one 8-byte instruction slot (ld_imm64 takes two)."""

    _fields_ = [
        ("code", ctypes.c_uint8),
        ("dst_reg", ctypes.c_uint8, 4),
        ("src_reg", ctypes.c_uint8, 4),
        ("off", ctypes.c_int16),
        ("imm", ctypes.c_int32),
    ]


def _insns_from(insns: Any, cnt: Optional[int]) -> bytes:
    """Bytes of ``cnt`` instruction slots from a bpf_insn array, bytes or Insn objects."""
    from ..kernel.program import insns_bytes

    if isinstance(insns, (ctypes.Array, ctypes.Structure)):
        raw = bytes(memoryview(insns).cast("B"))
    else:
        raw = insns_bytes(insns)
    if cnt is not None:
        if cnt < 0 or cnt * 8 > len(raw):
            raise ValueError(f"insn_cnt {cnt} exceeds the {len(raw) // 8} instructions given")
        raw = raw[: cnt * 8]
    return raw


# ---------------------------------------------------------------------------- options
@dataclasses.dataclass
class BpfObjectOpenOpts:
    """struct bpf_object_open_opts (the fields pybpfload honours).

    ``kernel_log_buf``, a bytearray, receives the verifier log of a
    program that fails to load (NUL-terminated, truncated to
    ``kernel_log_size``, default its length).
    """

    object_name: Optional[str] = None
    relaxed_maps: bool = False
    pin_root_path: Optional[str] = None
    kconfig: Optional[str] = None
    btf_custom_path: Optional[str] = None
    kernel_log_buf: Optional[bytearray] = None
    kernel_log_size: int = 0
    kernel_log_level: int = 0


@dataclasses.dataclass
class BpfMapCreateOpts:
    """struct bpf_map_create_opts."""

    btf_fd: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    btf_vmlinux_value_type_id: int = 0
    inner_map_fd: int = 0
    map_flags: int = 0
    map_extra: int = 0
    numa_node: int = 0
    map_ifindex: int = 0


@dataclasses.dataclass
class BpfProgLoadOpts:
    """struct bpf_prog_load_opts; ``log_buf`` (a bytearray) receives the verifier log.

    As libbpf: with ``log_level`` 0 and a ``log_buf``, a failed load is
    retried at level 1 to fill the buffer.  ``log_true_size`` is set to the
    length of the whole log.
    """

    expected_attach_type: int = 0
    prog_flags: int = 0
    kern_version: int = 0
    prog_ifindex: int = 0
    prog_btf_fd: int = 0
    attach_btf_id: int = 0
    attach_btf_obj_fd: int = 0
    attach_prog_fd: int = 0
    fd_array: Tuple[int, ...] = ()
    log_level: int = 0
    log_size: int = 0
    log_buf: Optional[bytearray] = None
    log_true_size: int = 0


@dataclasses.dataclass
class BpfTestRunOpts:
    """struct bpf_test_run_opts: inputs, and the outputs the call fills in.

    ``data_out`` / ``ctx_out`` are writable buffers; ``data_size_out`` /
    ``ctx_size_out`` default to their lengths and are set to what the
    kernel wrote; ``retval`` and ``duration`` are set.
    """

    data_in: Optional[Any] = None
    data_out: Optional[Any] = None
    data_size_in: Optional[int] = None
    data_size_out: Optional[int] = None
    ctx_in: Optional[Any] = None
    ctx_out: Optional[Any] = None
    ctx_size_in: Optional[int] = None
    ctx_size_out: Optional[int] = None
    retval: int = 0
    repeat: int = 0
    duration: int = 0
    flags: int = 0
    cpu: int = 0
    batch_size: int = 0


def _opts(cls: Any, opts: Any) -> Any:
    if opts is None:
        return cls()
    if isinstance(opts, dict):
        return cls(**opts)
    if isinstance(opts, cls):
        return opts
    raise TypeError(f"expected {cls.__name__}, a dict or None, got {type(opts).__name__}")


def _fill_log(buf: Optional[bytearray], size: int, text: str) -> None:
    if buf is None:
        return
    n = min(size or len(buf), len(buf))
    if n <= 0:
        return
    raw = text.encode()[: n - 1] + b"\0"
    buf[: len(raw)] = raw


# ---------------------------------------------------------------------------- bookkeeping
# What libbpf keeps in its structs and pybpfload's classes do not know:
_OWNER: "weakref.WeakKeyDictionary[Any, Object]" = weakref.WeakKeyDictionary()  # program / map -> object
_OPEN_OPTS: "weakref.WeakKeyDictionary[Object, BpfObjectOpenOpts]" = weakref.WeakKeyDictionary()
_BTF: "weakref.WeakKeyDictionary[Object, Any]" = weakref.WeakKeyDictionary()  # object -> its btf_h.Btf
_PREP: "weakref.WeakKeyDictionary[Program, Tuple[int, Callable[..., int]]]" = weakref.WeakKeyDictionary()
_INSTANCES: "weakref.WeakKeyDictionary[Program, Any]" = weakref.WeakKeyDictionary()  # program -> ProgramVariants


def _register(obj: Object, opts: BpfObjectOpenOpts) -> Object:
    for p in obj.programs.values():
        _OWNER[p] = obj
    for m in obj.maps.values():
        _OWNER[m] = obj
    _OPEN_OPTS[obj] = opts
    return obj


def _obj_loaded(x: Any) -> bool:
    o = _OWNER.get(x)
    if o is not None:
        return o.loaded
    return bool(getattr(x, "loaded", False) or getattr(x, "created", False))



def _first(values: Optional[List[Any]], cnt: int) -> Optional[List[Any]]:
    return None if values is None else list(values)[:cnt]
