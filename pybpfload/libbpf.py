"""libbpf's C API under libbpf's names, so that C code ports to Python line by line.

    obj = bpf_object__open_file(path, None)
    if libbpf_get_error(obj):
        ...
    err = bpf_object__load(obj)

API level
---------
We mirror **libbpf 1.1**: ``libbpf_major_version()`` is 1,
``libbpf_minor_version()`` 1, ``libbpf_version_string()`` "v1.1".  The spec
documents libbpf 0.8, but what pybpfload does follows libbpf 1.x: functions
return NULL with errno set instead of error pointers, getters and setters
have their 1.x return codes (``bpf_program__fd`` of an unloaded program is
-ENOENT, setters after load -EBUSY), ``bpf_program__set_prep`` is gone from
libbpf (we keep it and ``bpf_program__nth_fd`` on top of
:mod:`pybpfload.kernel.variants`, for the spec's section 6).  1.1 is also the
libbpf the test suite checks this module against (Debian's libbpf1), so
every behaviour claimed here is compared with the real thing.

Conventions
-----------
* ``struct bpf_object`` / ``bpf_program`` / ``bpf_map`` / ``ring_buffer`` are
  pybpfload's :class:`~pybpfload.object.Object`, :class:`~pybpfload.kernel.program.Program`,
  :class:`~pybpfload.kernel.maps.Map`, :class:`~pybpfload.events.ringbuf.RingBuffer`;
  ``struct btf`` is :class:`Btf` (a :class:`~pybpfload.btf.Spec` and the fd
  it has in the kernel).
* Functions returning ``int`` return a negative errno (or
  ``-LIBBPF_ERRNO__*``) on failure and set errno; functions returning a
  pointer return None on failure with errno set.  pybpfload exceptions
  never escape for failures libbpf reports by return value (wrong Python
  types still raise TypeError, where C would not compile).
* Test results for None with ``is None`` where C writes ``if (!map)``: a
  :class:`~pybpfload.kernel.maps.Map` is a mapping, so ``not map`` asks its length.
* errno is ctypes' thread-local errno slot: :func:`get_errno` (or
  ``ctypes.get_errno()``) reads it, and ``libbpf_get_error(None)`` returns
  ``-errno``, as in libbpf 1.x.  It is per thread, like C's errno, and like
  C's, a later call may overwrite it.
* ``const void *`` inputs (keys, values, BTF data) take any bytes-like or
  ctypes object; ``void *`` outputs take a writable one (bytearray, ctypes
  array or structure) and are filled.  Sizes are checked against the map,
  so a short Python buffer is -EINVAL where C would overflow.
* Scalar out-parameters (``__u32 *next_id``, ``size_t *psize``) take a
  ctypes scalar (``ctypes.c_uint32()``) or any object with a ``value``
  attribute, which is set.
* ``char *buf, size_t size`` outputs (``libbpf_strerror``, log buffers) take
  a bytearray, filled NUL-terminated as C does.
* Options structs (``struct bpf_object_open_opts`` ...) are the dataclasses
  below, or dicts with the same keys, or None.  Those with outputs
  (:class:`BpfTestRunOpts`) are mutable, as their C structs.
* Fds returned by the bpf.h functions (``bpf_map_create``, ``bpf_prog_load``,
  ``bpf_obj_get``, ``bpf_*_get_fd_by_id``) belong to the caller, who closes
  them with ``os.close`` as C calls ``close``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno as _errno
import os
import weakref
from typing import Any, Callable, Iterator, List, Optional, Tuple, TypeVar

from . import log as _log
from .errors import BPFError, LibbpfErrno, StateError, VerifierError, error_code, strerror_r
from .kernel.maps import Map
from .object import Object
from .kernel.program import Program
from .events.perfbuf import PerfBuffer
from .events.ringbuf import RingBuffer, UserRingBuffer
from .syscall import commands
from .abi.uapi import AttachType, Cmd, LinkType, MapType, ProgType

__all__ = [  # the names libbpf has; helpers and types follow
    "LIBBPF_MAJOR_VERSION",
    "LIBBPF_MINOR_VERSION",
    "get_errno",
    "Btf",
    "bpf_insn",
    "BpfObjectOpenOpts",
    "BpfMapCreateOpts",
    "BpfProgLoadOpts",
    "BpfTestRunOpts",
    "BpfProgramPrepResult",
]

from . import LIBBPF_API_VERSION as _API  # noqa: E402

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


# ---------------------------------------------------------------------------- version, errors, print
def libbpf_major_version() -> int:
    """The libbpf major version whose API this module mirrors (1)."""
    return LIBBPF_MAJOR_VERSION


def libbpf_minor_version() -> int:
    """The libbpf minor version whose API this module mirrors (1)."""
    return LIBBPF_MINOR_VERSION


def libbpf_version_string() -> str:
    """``"v<major>.<minor>"`` of the mirrored libbpf ("v1.1")."""
    return f"v{LIBBPF_MAJOR_VERSION}.{LIBBPF_MINOR_VERSION}"


def libbpf_strerror(err: int, buf: Optional[bytearray] = None, size: Optional[int] = None) -> Any:
    """libbpf_strerror(err, buf, size).

    With a bytearray ``buf``: fills it with the NUL-terminated message,
    truncated to ``size`` bytes (default ``len(buf)``), and returns libbpf's
    return value.  Without: returns ``(ret, text)`` for a ``size``-byte
    buffer (default 128).
    """
    if buf is None:
        return strerror_r(err, 128 if size is None else size)
    n = len(buf) if size is None else min(size, len(buf))
    ret, text = strerror_r(err, n)
    if n > 0:
        raw = text.encode()[: n - 1] + b"\0"
        buf[: len(raw)] = raw
    return ret


def libbpf_set_print(fn: Optional[Callable[[int, str], Any]]) -> Optional[Callable[[int, str], Any]]:
    """Install ``fn(level, message)`` as the print callback; returns the previous one.

    ``level`` is LIBBPF_WARN, LIBBPF_INFO or LIBBPF_DEBUG; the message is
    already formatted (C's ``format, va_list`` pair).  None silences
    pybpfload.  Thread-safe.
    """
    return _log.set_print(fn)


def libbpf_get_error(ptr: Any) -> int:
    """0 for a valid object; ``-errno`` for None (libbpf 1.x semantics)."""
    if ptr is not None:
        return 0
    return -get_errno()


def libbpf_num_possible_cpus() -> int:
    from .kernel.maps import possible_cpus

    try:
        return possible_cpus()
    except (OSError, ValueError):
        return _fail(-_errno.ENOENT)


def _type_str(enum_cls: Any, prefix: str, value: int) -> Optional[str]:
    try:
        name = str(enum_cls(value).name[len(prefix) :].lower())
    except ValueError:
        return None
    # the kernel renamed e.g. CGROUP_STORAGE to CGROUP_STORAGE_DEPRECATED; libbpf keeps the old name
    return name[: -len("_deprecated")] if name.endswith("_deprecated") else name


def libbpf_bpf_prog_type_str(t: int) -> Optional[str]:
    """The type's name ("xdp", "socket_filter"...); None for an unknown type."""
    return _type_str(ProgType, "BPF_PROG_TYPE_", t)


def libbpf_bpf_map_type_str(t: int) -> Optional[str]:
    return _type_str(MapType, "BPF_MAP_TYPE_", t)


def libbpf_bpf_attach_type_str(t: int) -> Optional[str]:
    return _type_str(AttachType, "BPF_", t)


def libbpf_bpf_link_type_str(t: int) -> Optional[str]:
    return _type_str(LinkType, "BPF_LINK_TYPE_", t)


def libbpf_prog_type_by_name(name: str, prog_type: Any, expected_attach_type: Any) -> int:
    """Program and attach type of a SEC() name; -ESRCH when no section definition matches."""
    from .elf.sections import find_sec_def

    if not name:
        return _fail(-_errno.EINVAL)
    d = find_sec_def(name)
    if d is None:
        return _fail(-_errno.ESRCH)
    _set_out(prog_type, int(d.prog_type))
    _set_out(expected_attach_type, int(d.expected_attach_type))
    return 0


# ---------------------------------------------------------------------------- probes
_HELPER_UNPROBEABLE = frozenset(
    {ProgType.BPF_PROG_TYPE_TRACING, ProgType.BPF_PROG_TYPE_EXT, ProgType.BPF_PROG_TYPE_LSM, ProgType.BPF_PROG_TYPE_STRUCT_OPS}
)


def _known(enum_cls: Any, value: int) -> bool:
    try:
        enum_cls(value)
    except ValueError:
        return False
    return value != 0 and not enum_cls(value).name.startswith("__")


@_int_api
def libbpf_probe_bpf_prog_type(prog_type: int, opts: Any = None) -> int:
    """1 if the kernel loads programs of ``prog_type``, 0 if not, <0 on error."""
    from .syscall import features

    if opts is not None:
        return -_errno.EINVAL
    if prog_type == ProgType.BPF_PROG_TYPE_UNSPEC:
        return 0  # libbpf tries the load, which fails
    if not _known(ProgType, prog_type):
        return -_errno.EOPNOTSUPP
    return int(features.prog_type_supported(prog_type))


@_int_api
def libbpf_probe_bpf_map_type(map_type: int, opts: Any = None) -> int:
    """1 if the kernel creates maps of ``map_type``, 0 if not, <0 on error."""
    from .syscall import features

    if opts is not None:
        return -_errno.EINVAL
    if not _known(MapType, map_type):
        return -_errno.EOPNOTSUPP
    return int(features.map_type_supported(map_type))


@_int_api
def libbpf_probe_bpf_helper(prog_type: int, helper_id: int, opts: Any = None) -> int:
    """1 if programs of ``prog_type`` may call helper ``helper_id``, 0 if not, <0 on error."""
    from .syscall import features

    if opts is not None:
        return -_errno.EINVAL
    if prog_type in _HELPER_UNPROBEABLE or not _known(ProgType, prog_type):
        return -_errno.EOPNOTSUPP
    return int(features.helper_supported(prog_type, helper_id))


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
    from .kernel.program import insns_bytes

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
_BTF: "weakref.WeakKeyDictionary[Object, Btf]" = weakref.WeakKeyDictionary()
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


# ---------------------------------------------------------------------------- bpf_object
def _open(opener: Callable[..., Object], source: Any, opts: Any) -> Optional[Object]:
    o = _opts(BpfObjectOpenOpts, opts)
    try:
        obj = opener(
            source,
            object_name=o.object_name,
            relaxed_maps=o.relaxed_maps,
            pin_root_path=o.pin_root_path,
            kconfig=o.kconfig,
            btf_custom_path=o.btf_custom_path,
            kernel_log_level=o.kernel_log_level,
        )
    except BPFError as e:
        _log.warn("failed to open %s: %s", source if isinstance(source, str) else "object in memory", e)
        return _null(_code(e))
    return _register(obj, o)


def bpf_object__open(path: str) -> Optional[Object]:
    """Open a BPF ELF file; None with errno set on failure."""
    return bpf_object__open_file(path, None)


def bpf_object__open_file(path: Optional[str], opts: Any = None) -> Optional[Object]:
    """Open a BPF ELF file with :class:`BpfObjectOpenOpts` (or a dict, or None)."""
    if not path:
        return _null(_errno.EINVAL)
    return _open(Object.open, os.fspath(path), opts)


def bpf_object__open_mem(obj_buf: Any, obj_buf_sz: Optional[int] = None, opts: Any = None) -> Optional[Object]:
    """Open a BPF ELF object held in memory (the first ``obj_buf_sz`` bytes of ``obj_buf``)."""
    if obj_buf is None:
        return _null(_errno.EINVAL)
    data = bytes(memoryview(obj_buf).cast("B"))
    if obj_buf_sz is not None:
        data = data[:obj_buf_sz]
    if not data:
        return _null(_errno.EINVAL)
    return _open(Object.open_mem, data, opts)


@_int_api
def bpf_object__load(obj: Object) -> int:
    """Load the object (maps, BTF, programs); 0 or a negative errno.

    As libbpf 1.x: a program the verifier refuses gives the syscall's errno
    (-EACCES, -EINVAL...), and the log goes to the print callback and to
    the ``kernel_log_buf`` of the open options.
    """
    if obj is None:
        return -_errno.EINVAL
    if obj.loaded:
        _log.warn("object '%s': load can't be attempted twice", obj.name)
        return -_errno.EINVAL
    o = _OPEN_OPTS.get(obj)
    try:
        obj.load()
    except VerifierError as e:
        _log.warn("prog '%s': BPF program load failed: %s", e.name, e.strerror)
        if e.log:
            _log.warn("prog '%s': -- BEGIN PROG LOAD LOG --\n%s-- END PROG LOAD LOG --", e.name, e.log)
        if o is not None:
            _fill_log(o.kernel_log_buf, o.kernel_log_size, e.log)
        raise
    except BPFError as e:
        _log.warn("failed to load object '%s': %s", obj.name, e)
        raise
    _load_instances(obj)
    return 0


def bpf_object__close(obj: Optional[Object]) -> None:
    """Close every fd of the object (and of its program instances); None is ignored."""
    if obj is None:
        return
    for p in obj.programs.values():
        inst = _INSTANCES.pop(p, None)
        if inst is not None:
            inst.close()
    obj.close()


def bpf_object__name(obj: Optional[Object]) -> Optional[str]:
    if obj is None:
        return _null(_errno.EINVAL)
    return obj.name


def bpf_object__kversion(obj: Optional[Object]) -> int:
    """The kernel version given to kprobe programs (the 'version' section, else the running kernel's)."""
    return obj.kversion if obj is not None else 0


@_int_api
def bpf_object__set_kversion(obj: Object, kern_version: int) -> int:
    """Set the kernel version (before load: -EINVAL after)."""
    if obj.loaded:
        return -_errno.EINVAL
    obj.kversion = kern_version
    return 0


def bpf_object__btf(obj: Optional[Object]) -> Optional["Btf"]:
    """The object's BTF as libbpf holds it after open; None (errno untouched, as libbpf) when it has none.

    That is the file's BTF with libbpf's open-time fix-ups: extern VARs and
    FUNCs made loadable (a ``dummy_ksym`` VAR added for kfuncs) and DATASEC
    sizes and offsets filled in.
    """
    if obj is None or obj.btf is None:
        return None
    b = _BTF.get(obj)
    if b is None:
        ref = weakref.ref(obj)

        def fd() -> int:
            o = ref()
            return o.btf_fd if o is not None else -1

        b = _BTF[obj] = Btf(obj.btf, fd_source=fd)  # with libbpf's open-time fix-ups
    return b


def bpf_object__btf_fd(obj: Object) -> int:
    """The fd of the object's BTF in the kernel; -1 before load or without BTF."""
    return obj.btf_fd


def bpf_object__find_program_by_name(obj: Object, name: str) -> Optional[Program]:
    """The program called ``name`` (never a subprogram); None with errno ENOENT."""
    p = obj.find_program_by_name(name)
    if p is None:
        return _null(_errno.ENOENT)
    return p


def bpf_object__find_map_by_name(obj: Object, name: str) -> Optional[Map]:
    """The map called ``name``; a name starting with '.' matches an internal map's section (".rodata")."""
    if name.startswith("."):
        for n in obj.maps:
            ms = obj.map_spec(n)
            if ms is not None and ms.real_name == name:
                return obj.maps[n]
        return _null(_errno.ENOENT)
    m = obj.find_map_by_name(name)
    if m is None:
        return _null(_errno.ENOENT)
    return m


def bpf_object__find_map_fd_by_name(obj: Object, name: str) -> int:
    m = bpf_object__find_map_by_name(obj, name)
    if m is None:
        return _fail(-_errno.ENOENT)
    return bpf_map__fd(m)


def _step(seq: List[Any], cur: Any, forward: bool) -> Any:
    if not seq:
        return None
    if cur is None:
        return seq[0] if forward else seq[-1]
    for i, x in enumerate(seq):
        if x is cur:
            j = i + (1 if forward else -1)
            return seq[j] if 0 <= j < len(seq) else None
    return _null(_errno.EINVAL)


def bpf_object__next_program(obj: Object, prev: Optional[Program]) -> Optional[Program]:
    """The program after ``prev`` (the first for None); subprograms are skipped."""
    return _step(list(obj.programs.values()), prev, True)


def bpf_object__prev_program(obj: Object, next: Optional[Program]) -> Optional[Program]:
    return _step(list(obj.programs.values()), next, False)


def bpf_object__next_map(obj: Object, prev: Optional[Map]) -> Optional[Map]:
    return _step(list(obj.maps.values()), prev, True)


def bpf_object__prev_map(obj: Object, next: Optional[Map]) -> Optional[Map]:
    return _step(list(obj.maps.values()), next, False)


def bpf_object__for_each_program(obj: Object) -> Iterator[Program]:
    """``for prog in bpf_object__for_each_program(obj):`` (the C macro)."""
    p = bpf_object__next_program(obj, None)
    while p is not None:
        yield p
        p = bpf_object__next_program(obj, p)


def bpf_object__for_each_map(obj: Object) -> Iterator[Map]:
    """``for map in bpf_object__for_each_map(obj):`` (the C macro)."""
    m = bpf_object__next_map(obj, None)
    while m is not None:
        yield m
        m = bpf_object__next_map(obj, m)


def _pin_call(obj: Optional[Object], fn: Callable[[], None]) -> int:
    if obj is None:
        return _fail(-_errno.ENOENT)
    try:
        fn()
    except StateError as e:
        _log.warn("%s", e)
        return _fail(-_errno.ENOENT)  # libbpf: "object not yet loaded; load it first"
    except BPFError as e:
        _log.warn("%s", e)
        return _fail(-_code(e))
    return 0


def bpf_object__pin_maps(obj: Object, path: Optional[str]) -> int:
    """Pin every map at ``path/<name>`` (or its pin_path when ``path`` is None)."""
    return _pin_call(obj, lambda: obj.pin_maps(path))


def bpf_object__unpin_maps(obj: Object, path: Optional[str]) -> int:
    return _pin_call(obj, lambda: obj.unpin_maps(path))


def bpf_object__pin_programs(obj: Object, path: str) -> int:
    """Pin every loaded program at ``path/<name>``."""
    return _pin_call(obj, lambda: obj.pin_programs(path))


def bpf_object__unpin_programs(obj: Object, path: str) -> int:
    return _pin_call(obj, lambda: obj.unpin_programs(path))


def bpf_object__pin(obj: Object, path: str) -> int:
    """Pin maps and programs under ``path``."""
    return _pin_call(obj, lambda: obj.pin(path))


def bpf_object__unpin(obj: Object, path: str) -> int:
    return _pin_call(obj, lambda: obj.unpin(path))


# ---------------------------------------------------------------------------- bpf_program
def bpf_program__fd(prog: Optional[Program]) -> int:
    """The program's fd; -ENOENT before load (libbpf 1.x)."""
    if prog is None:
        return _fail(-_errno.EINVAL)
    if not prog.loaded:
        return _fail(-_errno.ENOENT)
    return prog.fd


def bpf_program__name(prog: Program) -> str:
    return prog.name


def bpf_program__section_name(prog: Program) -> str:
    return prog.section_name


def bpf_program__type(prog: Program) -> int:
    return int(prog.type)


def bpf_program__expected_attach_type(prog: Program) -> int:
    return int(prog.expected_attach_type)


def bpf_program__autoload(prog: Program) -> bool:
    return bool(prog.autoload)


def _implied_flags(prog: Program) -> int:
    """Flags the SEC() name implies (sleepable, XDP frags): libbpf adds them at load, never shows them."""
    o = _OWNER.get(prog)
    spec = o.program_spec(prog.name) if o is not None else None
    return int(spec.section.prog_flags) if spec is not None else 0


def bpf_program__flags(prog: Program) -> int:
    """The flags set on the program, without those its SEC() name implies (as libbpf)."""
    return int(prog.flags) & ~_implied_flags(prog)


def bpf_program__log_level(prog: Program) -> int:
    return int(prog.log_level)


def bpf_program__insn_cnt(prog: Program) -> int:
    return prog.insn_cnt


def bpf_program__insns(prog: Program) -> "ctypes.Array[bpf_insn]":
    """A copy of the instructions as a ``bpf_insn`` array, indexed by slot as in C.

    Before load these are the instructions of the ELF file; after load, the
    relocated ones the kernel was given (as libbpf 1.x).
    """
    raw = prog.insns
    return (bpf_insn * (len(raw) // 8)).from_buffer_copy(raw)


def _setter(prog_or_map: Any, attr: str, value: Any, busy: int) -> int:
    if _obj_loaded(prog_or_map):
        return _fail(-busy)
    try:
        setattr(prog_or_map, attr, value)
    except BPFError as e:
        return _fail(-_code(e))
    return 0


def bpf_program__set_type(prog: Program, type: int) -> int:
    return _setter(prog, "type", type, _errno.EBUSY)


def bpf_program__set_expected_attach_type(prog: Program, type: int) -> int:
    return _setter(prog, "expected_attach_type", type, _errno.EBUSY)


def bpf_program__set_autoload(prog: Program, autoload: bool) -> int:
    return _setter(prog, "autoload", bool(autoload), _errno.EINVAL)


def bpf_program__set_flags(prog: Program, flags: int) -> int:
    """Set the load flags (before load); the SEC() name's implied flags stay on, as libbpf adds them at load."""
    return _setter(prog, "flags", flags | _implied_flags(prog), _errno.EBUSY)


def bpf_program__set_log_level(prog: Program, log_level: int) -> int:
    return _setter(prog, "log_level", log_level, _errno.EBUSY)


def bpf_program__set_ifindex(prog: Program, ifindex: int) -> None:
    prog.ifindex = ifindex


def bpf_program__set_attach_target(prog: Program, attach_prog_fd: int, attach_func_name: Optional[str]) -> int:
    """The target of fentry / fexit / freplace / tp_btf... programs (before load)."""
    if _obj_loaded(prog):
        return _fail(-_errno.EINVAL)
    if attach_prog_fd < 0:
        return _fail(-_errno.EINVAL)
    if attach_prog_fd and not attach_func_name:
        prog.attach_prog_fd = attach_prog_fd
        return 0
    if not attach_func_name:
        return _fail(-_errno.EINVAL)
    prog.attach_prog_fd = attach_prog_fd
    prog.attach_target = attach_func_name
    return 0


def bpf_program__set_insns(prog: Program, new_insns: Any, new_insn_cnt: Optional[int] = None) -> int:
    """Replace the instructions before load (-EBUSY after).

    ``new_insns``: a ``bpf_insn`` array, bytes, or Insn objects.  The new
    instructions are loaded as given: pybpfload applies no relocation to
    replaced code, so map references must already hold fds.
    """
    if _obj_loaded(prog):
        return _fail(-_errno.EBUSY)
    try:
        prog.insns = _insns_from(new_insns, new_insn_cnt)
    except (BPFError, ValueError):
        return _fail(-_errno.EINVAL)
    return 0


@_int_api
def bpf_program__pin(prog: Program, path: str) -> int:
    """Pin the loaded program at ``path`` (the parent directory is created)."""
    from .syscall import pinning

    if not prog.loaded:
        _log.warn("prog '%s': can't pin program that wasn't loaded", prog.name)
        return -_errno.EINVAL
    inst = _INSTANCES.get(prog)
    if inst is not None:  # multi-instance: path/<n> per instance, as libbpf 0.x
        inst.pin(path)
        return 0
    pinning.make_parent_dir(path)
    prog.pin(path)
    return 0


@_int_api
def bpf_program__unpin(prog: Program, path: str) -> int:
    if not prog.loaded:
        _log.warn("prog '%s': can't unpin program that wasn't loaded", prog.name)
        return -_errno.EINVAL
    inst = _INSTANCES.get(prog)
    if inst is not None:
        inst.unpin(path)
        return 0
    prog.unpin(path)
    return 0


# -------------------------------------------------- bpf_program: USDT attach
@dataclasses.dataclass
class BpfUsdtOpts:
    """struct bpf_usdt_opts: ``usdt_cookie``, what bpf_usdt_cookie() returns in the program."""

    usdt_cookie: int = 0


@_ptr_api
def bpf_program__attach_usdt(
    prog: Program, pid: int, binary_path: Optional[str], usdt_provider: str, usdt_name: str, opts: Any = None
) -> Any:
    """Attach to every call site of USDT ``usdt_provider:usdt_name`` (see :func:`pybpfload.link.attach_usdt`).

    Returns a :class:`pybpfload.link.usdt.UsdtLink` (``close()`` detaches,
    as bpf_link__destroy), None with errno set on failure: EINVAL for an
    unloaded program or no path, ENOENT when the binary has no such probe,
    ESRCH when the object lacks usdt.bpf.h's maps.
    """
    o = _opts(BpfUsdtOpts, opts)
    if not prog.loaded:
        _log.warn("prog '%s': can't attach BPF program without FD (was it loaded?)", prog.name)
        return _null(_errno.EINVAL)
    if not binary_path:
        return _null(_errno.EINVAL)
    return prog.attach_usdt(binary_path, usdt_provider, usdt_name, pid=pid, usdt_cookie=o.usdt_cookie)


# -------------------------------------------------- multi-instance programs (spec section 6; libbpf 0.x)
@dataclasses.dataclass
class BpfProgramPrepResult:
    """struct bpf_prog_prep_result: what a prep callback returns for one instance.

    ``new_insn_ptr`` (bytes, a bpf_insn array or Insn objects) and
    ``new_insn_cnt``; leaving ``new_insn_ptr`` None skips the instance.
    ``pfd``, when given an object with a ``value``, receives the instance's fd.
    """

    new_insn_ptr: Any = None
    new_insn_cnt: int = 0
    pfd: Any = None


def bpf_program__set_prep(prog: Program, nr_instance: int, prep: Callable[..., int]) -> int:
    """Load ``prog`` as ``nr_instance`` instances made by ``prep`` (removed in libbpf 1.0).

    At :func:`bpf_object__load`, after the object loaded,
    ``prep(prog, n, insns, insns_cnt, res)`` is called for each instance
    with the relocated instructions (a ``bpf_insn`` array) and a
    :class:`BpfProgramPrepResult` to fill; it returns 0, or a negative
    error that fails the load.  See :mod:`pybpfload.kernel.variants` for the
    pythonic interface.
    """
    if nr_instance <= 0 or prep is None:
        return _fail(-_errno.EINVAL)
    if _obj_loaded(prog):
        return _fail(-_errno.EINVAL)
    if prog in _PREP:
        return _fail(-_errno.EBUSY)
    _PREP[prog] = (nr_instance, prep)
    return 0


def bpf_program__nth_fd(prog: Program, n: int) -> int:
    """The fd of instance ``n`` (-ENOENT if it was skipped or not loaded, -EINVAL out of range)."""
    inst = _INSTANCES.get(prog)
    if inst is None:
        if n == 0 and prog not in _PREP:
            return bpf_program__fd(prog)
        return _fail(-_errno.EINVAL if prog not in _PREP else -_errno.ENOENT)
    if not 0 <= n < len(inst):
        return _fail(-_errno.EINVAL)
    fd = inst.nth_fd(n)
    return fd if fd >= 0 else _fail(-_errno.ENOENT)


class _PrepFailed(BPFError):
    def __init__(self, name: str, n: int, ret: int) -> None:
        super().__init__(f"prog '{name}': preprocessing of instance {n} failed: {ret}")
        self.ret = ret


def _load_instances(obj: Object) -> None:
    from .kernel.variants import load_variants

    for p in obj.programs.values():
        spec = _PREP.get(p)
        if spec is None or not p.loaded:
            continue
        count, prep = spec

        def one(n: int, relocated: bytes, _p: Program = p, _prep: Callable[..., int] = prep) -> Optional[bytes]:
            res = BpfProgramPrepResult()
            arr = (bpf_insn * (len(relocated) // 8)).from_buffer_copy(relocated)
            ret = _prep(_p, n, arr, len(arr), res)
            if ret:
                raise _PrepFailed(_p.name, n, ret)
            if res.new_insn_ptr is None or not res.new_insn_cnt:
                _log.debug("prog '%s': skipped loading instance %d", _p.name, n)
                return None
            return _insns_from(res.new_insn_ptr, res.new_insn_cnt)

        try:
            inst = load_variants(obj, p.name, one, count)
        except _PrepFailed as e:
            _unload_instances(obj)
            obj.close()
            raise BPFError(str(e)) from None
        except BaseException:
            _unload_instances(obj)
            obj.close()
            raise
        _INSTANCES[p] = inst
        _log.debug("prog '%s': loaded %d instances, fds %s", p.name, count, inst.fds)


def _unload_instances(obj: Object) -> None:
    for p in obj.programs.values():
        inst = _INSTANCES.pop(p, None)
        if inst is not None:
            inst.close()


# ---------------------------------------------------------------------------- bpf_map
def bpf_map__fd(map: Optional[Map]) -> int:
    """The map's fd; -1 before it is created."""
    if map is None:
        return _fail(-_errno.EINVAL)
    return map.fd


def bpf_map__name(map: Optional[Map]) -> Optional[str]:
    return map.name if map is not None else None


def bpf_map__type(map: Map) -> int:
    return int(map.type)


def bpf_map__key_size(map: Map) -> int:
    return int(map.key_size)


def bpf_map__value_size(map: Map) -> int:
    return int(map.value_size)


def bpf_map__max_entries(map: Map) -> int:
    return int(map.max_entries)


def bpf_map__map_flags(map: Map) -> int:
    return int(map.flags)


def bpf_map__numa_node(map: Map) -> int:
    return int(map.numa_node or 0)


def bpf_map__map_extra(map: Map) -> int:
    return int(map.map_extra)


def bpf_map__ifindex(map: Map) -> int:
    return int(map.ifindex)


def bpf_map__btf_key_type_id(map: Optional[Map]) -> int:
    return int(map.btf_key_type_id) if map is not None else 0


def bpf_map__btf_value_type_id(map: Optional[Map]) -> int:
    return int(map.btf_value_type_id) if map is not None else 0


def _map_setter(map: Map, attr: str, value: Any) -> int:
    if map.created:
        return _fail(-_errno.EBUSY)
    setattr(map, attr, value)
    return 0


def bpf_map__set_type(map: Map, type: int) -> int:
    return _map_setter(map, "type", type)


def bpf_map__set_key_size(map: Map, size: int) -> int:
    return _map_setter(map, "key_size", size)


def bpf_map__set_value_size(map: Map, size: int) -> int:
    return _map_setter(map, "value_size", size)


def bpf_map__set_map_flags(map: Map, flags: int) -> int:
    return _map_setter(map, "flags", flags)


def bpf_map__set_map_extra(map: Map, map_extra: int) -> int:
    return _map_setter(map, "map_extra", map_extra)


def bpf_map__set_numa_node(map: Map, numa_node: int) -> int:
    return _map_setter(map, "numa_node", numa_node)


def bpf_map__set_ifindex(map: Map, ifindex: int) -> int:
    return _map_setter(map, "ifindex", ifindex)


def bpf_map__set_max_entries(map: Map, max_entries: int) -> int:
    """Set max_entries before load (-EBUSY after); ring buffers round up to a power-of-2 page multiple."""
    if _obj_loaded(map) or map.created:
        return _fail(-_errno.EBUSY)
    if map.type == MapType.BPF_MAP_TYPE_RINGBUF:
        page = os.sysconf("SC_PAGE_SIZE")
        size = page
        while size < max_entries:
            size <<= 1
        max_entries = size
    map.max_entries = max_entries
    return 0


def bpf_map__pin_path(map: Map) -> Optional[str]:
    return map.pin_path


def bpf_map__set_pin_path(map: Map, path: Optional[str]) -> int:
    map.pin_path = path or None
    return 0


def bpf_map__is_pinned(map: Map) -> bool:
    return bool(map.pinned)


def bpf_map__is_internal(map: Map) -> bool:
    """A map made for global data or .kconfig (not declared by the program)."""
    ms = _map_spec(map)
    return ms is not None and ms.kind.internal


def bpf_map__inner_map(map: Map) -> Optional[Map]:
    if map.type not in _MAP_IN_MAP:
        return _null(_errno.EINVAL)
    return map.inner_map


def _map_spec(map: Map) -> Any:
    o = _OWNER.get(map)
    if o is None:
        return None
    for n, m in o.maps.items():
        if m is map:
            return o.map_spec(n)
    return None


def _is_global_data(map: Map) -> Tuple[bool, bool]:
    """(has an initial value image, is .kconfig)."""
    from .elf.model import MapKind

    ms = _map_spec(map)
    if ms is None:
        return map.initial_value is not None, False
    return ms.kind in (MapKind.DATA, MapKind.RODATA, MapKind.BSS, MapKind.KCONFIG), ms.kind is MapKind.KCONFIG


def bpf_map__set_initial_value(map: Map, data: Any, size: Optional[int] = None) -> int:
    """Set a global data map's initial contents before load; ``size`` must equal value_size."""
    data_b = bytes(memoryview(data).cast("B"))
    size = len(data_b) if size is None else size
    if map.type == MapType.BPF_MAP_TYPE_STRUCT_OPS and not map.created:
        # C writes the struct through bpf_map__initial_value's pointer; Python code writes it here
        if map.initial_value is None or size != len(map.initial_value) or size > len(data_b):
            return _fail(-_errno.EINVAL)
        map.initial_value = data_b[:size]
        return 0
    is_data, is_kconfig = _is_global_data(map)
    if not is_data or is_kconfig or size != map.value_size or size > len(data_b) or map.created:
        return _fail(-_errno.EINVAL)
    map.initial_value = data_b[:size]
    return 0


def bpf_map__initial_value(map: Map, psize: Any = None) -> Optional[bytes]:
    """A global data map's contents (the image before load, the live value after); None for other maps.

    ``psize`` receives the size.  Unlike C's pointer, the result is a copy:
    write with :func:`bpf_map__set_initial_value` or the map itself.
    """
    if map.type == MapType.BPF_MAP_TYPE_STRUCT_OPS:  # the object's struct (libbpf's st_ops->data)
        if map.initial_value is None:
            return None
        _set_out(psize, len(map.initial_value))
        return bytes(map.initial_value)
    is_data, _ = _is_global_data(map)
    if not is_data:
        return None
    if map.created:
        try:
            value = bytes(map.lookup(0))  # type: ignore[attr-defined]
        except BPFError:
            return None
    else:
        value = bytes(map.initial_value or bytes(map.value_size))
    _set_out(psize, len(value))
    return value


def bpf_map__autocreate(map: Map) -> bool:
    return bool(map.autocreate)


def bpf_map__set_autocreate(map: Map, autocreate: bool) -> int:
    """Whether the object's load creates the map; -EBUSY once created, as libbpf."""
    if map.created:
        return _fail(-_errno.EBUSY)
    map.autocreate = bool(autocreate)
    return 0


@_ptr_api
def bpf_map__attach_struct_ops(map: Map) -> Any:
    """Register a loaded struct_ops map; a :class:`~pybpfload.link.struct_ops.StructOpsLink` (``.struct_ops.link``
    maps) or :class:`~pybpfload.link.struct_ops.StructOpsAttachment`, ``close()`` for bpf_link__destroy; None with
    errno set on failure (EINVAL for a map that is not a created struct_ops map)."""
    from .link.struct_ops import attach_struct_ops

    return attach_struct_ops(map)


@_int_api
def bpf_link__update_map(link: Any, map: Map) -> int:
    """Replace the struct_ops map behind a struct_ops link (BPF_LINK_UPDATE); -EINVAL for other links."""
    from .link.struct_ops import StructOpsLink

    if not isinstance(link, StructOpsLink) or map.type != MapType.BPF_MAP_TYPE_STRUCT_OPS:
        return -_errno.EINVAL
    link.update_map(map)
    return 0


@_int_api
def bpf_map__reuse_fd(map: Map, fd: int) -> int:
    """Use the existing map ``fd`` (duplicated) instead of creating one."""
    map.reuse_fd(fd)
    return 0


@_int_api
def bpf_map__pin(map: Optional[Map], path: Optional[str]) -> int:
    if map is None:
        return -_errno.EINVAL
    if map.pin_path is None and path is None:
        return -_errno.EINVAL
    if map.pin_path is None and map.pinned:
        return -_errno.EEXIST
    map.pin(path)
    return 0


@_int_api
def bpf_map__unpin(map: Optional[Map], path: Optional[str]) -> int:
    if map is None:
        return -_errno.EINVAL
    if map.pin_path is None and path is None:
        return -_errno.EINVAL
    map.unpin(path)
    return 0


def _check_map_op(map: Map, key_sz: int, value_sz: Optional[int]) -> int:
    if not map.created:
        return -_errno.ENOENT
    if map.key_size != key_sz:
        _log.warn("map '%s': unexpected key size %d provided, expected %d", map.name, key_sz, map.key_size)
        return -_errno.EINVAL
    if value_sz is None:
        return 0
    if map.type in _PERCPU:
        from .kernel.maps import possible_cpus

        want = possible_cpus() * ((map.value_size + 7) & ~7)
    else:
        want = map.value_size
    if value_sz != want:
        _log.warn("map '%s': unexpected value size %d provided, expected %d", map.name, value_sz, want)
        return -_errno.EINVAL
    return 0


def bpf_map__lookup_elem(map: Map, key: Any, key_sz: int, value: Any, value_sz: int, flags: int = 0) -> int:
    err = _check_map_op(map, key_sz, value_sz)
    return _fail(err) if err else bpf_map_lookup_elem_flags(map.fd, key, value, flags)


def bpf_map__update_elem(map: Map, key: Any, key_sz: int, value: Any, value_sz: int, flags: int = 0) -> int:
    err = _check_map_op(map, key_sz, value_sz)
    return _fail(err) if err else bpf_map_update_elem(map.fd, key, value, flags)


def bpf_map__delete_elem(map: Map, key: Any, key_sz: int, flags: int = 0) -> int:
    err = _check_map_op(map, key_sz, None)
    return _fail(err) if err else bpf_map_delete_elem_flags(map.fd, key, flags)


def bpf_map__lookup_and_delete_elem(map: Map, key: Any, key_sz: int, value: Any, value_sz: int, flags: int = 0) -> int:
    err = _check_map_op(map, key_sz, value_sz)
    return _fail(err) if err else bpf_map_lookup_and_delete_elem_flags(map.fd, key, value, flags)


def bpf_map__get_next_key(map: Map, cur_key: Any, next_key: Any, key_sz: int) -> int:
    err = _check_map_op(map, key_sz, None)
    return _fail(err) if err else bpf_map_get_next_key(map.fd, cur_key, next_key)


# ---------------------------------------------------------------------------- bpf.h: maps
class _BadBuffer(BPFError):
    pass


def _sizes(fd: int) -> Tuple[int, int]:
    """(key size, value size as the kernel copies it) of map ``fd``."""
    from .kernel.maps import possible_cpus
    from .abi.uapi import MapInfo

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
    from .syscall._raw import bpf
    from .abi.uapi import ObjGetInfoAttr

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


# ---------------------------------------------------------------------------- btf.h
class Btf:
    """struct btf: decoded BTF (:attr:`spec`) and its fd in the kernel (-1 when not loaded)."""

    def __init__(self, spec: Any, *, fd_source: Optional[Callable[[], int]] = None) -> None:
        self.spec = spec
        self._fd_source = fd_source
        self._own_fd: Any = None  # an Fd from btf__load_into_kernel

    @property
    def fd(self) -> int:
        if self._own_fd is not None and not self._own_fd.closed:
            return int(self._own_fd.raw)
        return self._fd_source() if self._fd_source is not None else -1

    def close(self) -> None:
        if self._own_fd is not None:
            self._own_fd.close()

    def __repr__(self) -> str:
        return f"<Btf types={len(self.spec)} fd={self.fd}>"


@_ptr_api
def btf__parse(path: str, btf_ext: Any = None) -> Optional[Btf]:
    """BTF of a raw BTF file or of an ELF object's .BTF section."""
    from .btf import Spec
    from .errors import BTFError

    if btf_ext is not None:
        _set_out(btf_ext, None)  # type: ignore[arg-type]
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        return _null(e.errno or _errno.EIO)
    if head == b"\x7fELF":
        return btf__parse_elf(path, None)
    try:
        return Btf(Spec.from_file(path))
    except BTFError:
        return _null(_errno.EPROTO)


@_ptr_api
def btf__parse_raw(path: str) -> Optional[Btf]:
    from .btf import Spec

    return Btf(Spec.from_file(path))


@_ptr_api
def btf__parse_elf(path: str, btf_ext: Any = None) -> Optional[Btf]:
    from .btf import Spec

    with open(path, "rb") as f:
        data = f.read()
    obj = Object.open_mem(data, object_name="btf")
    if obj.model.btf_raw is None:
        return _null(_errno.ENOENT)
    return Btf(Spec.from_bytes(obj.model.btf_raw))


@_ptr_api
def btf__new(data: Any, size: Optional[int] = None) -> Optional[Btf]:
    from .btf import Spec

    raw = bytes(memoryview(data).cast("B"))
    return Btf(Spec.from_bytes(raw if size is None else raw[:size]))


@_ptr_api
def btf__load_vmlinux_btf() -> Optional[Btf]:
    """The running kernel's BTF (/sys/kernel/btf/vmlinux)."""
    from .btf import vmlinux_spec

    return Btf(vmlinux_spec())


def btf__free(btf: Optional[Btf]) -> None:
    if btf is not None:
        btf.close()


@_int_api
def btf__load_into_kernel(btf: Btf) -> int:
    """Load the BTF into the kernel; -EEXIST if it already has an fd."""
    if btf.fd >= 0:
        return -_errno.EEXIST
    fd, _ = commands.btf_load(btf.spec.raw)
    btf._own_fd = fd
    return 0


def btf__fd(btf: Btf) -> int:
    return btf.fd


def btf__type_cnt(btf: Btf) -> int:
    """Number of type ids, void included."""
    return len(btf.spec)


def btf__base_btf(btf: Btf) -> Optional[Btf]:
    base = btf.spec.base
    return Btf(base) if base is not None else None


def btf__type_by_id(btf: Btf, type_id: int) -> Any:
    """The type with id ``type_id`` (a :mod:`pybpfload.btf.types` dataclass); None + EINVAL out of range."""
    if not 0 <= type_id < len(btf.spec):
        return _null(_errno.EINVAL)
    try:
        return btf.spec.type(type_id)
    except BPFError:
        return _null(_errno.EINVAL)


def btf__str_by_offset(btf: Btf, offset: int) -> Optional[str]:
    try:
        return str(btf.spec.string(offset))
    except BPFError:
        return _null(_errno.EINVAL)


def btf__name_by_offset(btf: Btf, offset: int) -> Optional[str]:
    return btf__str_by_offset(btf, offset)


def btf__find_by_name(btf: Btf, type_name: str) -> int:
    if type_name == "void":
        return 0
    ids = btf.spec.find_ids(type_name)
    return ids[0] if ids else _fail(-_errno.ENOENT)


def btf__find_by_name_kind(btf: Btf, type_name: str, kind: int) -> int:
    """Id of the first type called ``type_name`` of BTF_KIND ``kind``; -ENOENT when none."""
    if kind == 0 or type_name == "void":
        return 0
    for tid in btf.spec.find_ids(type_name):
        if btf.spec.kind_of(tid) == kind:
            return int(tid)
    return _fail(-_errno.ENOENT)


@_int_api
def btf__resolve_size(btf: Btf, type_id: int) -> int:
    return int(btf.spec.size(type_id))


@_int_api
def btf__resolve_type(btf: Btf, type_id: int) -> int:
    """The id behind typedefs, modifiers and vars; -EINVAL for void."""
    spec = btf.spec
    from .btf import types as T

    chain = (T.Kind.TYPEDEF, T.Kind.VOLATILE, T.Kind.CONST, T.Kind.RESTRICT, T.Kind.TYPE_TAG, T.Kind.VAR)
    for _ in range(32):
        if type_id == 0 or type_id >= len(spec) or spec.kind_of(type_id) == T.Kind.FWD:
            return -_errno.EINVAL  # void, out of range, or a forward declaration (void to libbpf)
        if spec.kind_of(type_id) not in chain:
            return type_id
        type_id = spec.type(type_id).type
    return -_errno.EINVAL


@_int_api
def btf__align_of(btf: Btf, id: int) -> int:
    return int(btf.spec.align(id))


def btf__raw_data(btf: Btf, size: Any = None) -> bytes:
    raw = btf.spec.raw
    _set_out(size, len(raw))
    return raw


# ---------------------------------------------------------------------------- ring buffers
RingBufferSampleFn = Callable[[Any, memoryview, int], Optional[int]]


def _sample(cb: RingBufferSampleFn, ctx: Any) -> Callable[[memoryview], int]:
    def call(view: memoryview) -> int:
        r = cb(ctx, view, len(view))
        return int(r) if r else 0

    return call


def ring_buffer__new(map_fd: int, sample_cb: RingBufferSampleFn, ctx: Any = None, opts: Any = None) -> Optional[RingBuffer]:
    """A ring buffer manager over map ``map_fd``; ``sample_cb(ctx, data, size)`` per record.

    ``data`` is a read-only memoryview valid during the call; a negative
    return stops :func:`ring_buffer__poll` / :func:`ring_buffer__consume`,
    which return it.
    """
    try:
        return RingBuffer(map_fd, _sample(sample_cb, ctx))
    except BPFError as e:
        _log.warn("ringbuf: failed to add ring buffer map fd %d: %s", map_fd, e)
        return _null(_code(e))


@_int_api
def ring_buffer__add(rb: RingBuffer, map_fd: int, sample_cb: RingBufferSampleFn, ctx: Any = None) -> int:
    rb.add(map_fd, _sample(sample_cb, ctx))
    return 0


@_int_api
def ring_buffer__poll(rb: RingBuffer, timeout_ms: int) -> int:
    """Wait up to ``timeout_ms`` for records and consume them; the count, or a negative error."""
    return min(rb.poll(timeout_ms), 0x7FFFFFFF)


@_int_api
def ring_buffer__consume(rb: RingBuffer) -> int:
    return min(rb.consume(), 0x7FFFFFFF)


def ring_buffer__epoll_fd(rb: RingBuffer) -> int:
    return rb.epoll_fd()


def ring_buffer__free(rb: Optional[RingBuffer]) -> None:
    if rb is not None:
        rb.close()


# ---------------------------------------------------------------------------- multi probes (attach)
@dataclasses.dataclass
class BpfUprobeMultiOpts:
    """struct bpf_uprobe_multi_opts (libbpf 1.2+): explicit targets, one per probe, or none with a pattern."""

    syms: Optional[List[str]] = None
    offsets: Optional[List[int]] = None
    ref_ctr_offsets: Optional[List[int]] = None
    cookies: Optional[List[int]] = None
    cnt: int = 0
    retprobe: bool = False
    session: bool = False


@dataclasses.dataclass
class BpfKprobeMultiOpts:
    """struct bpf_kprobe_multi_opts: ``syms`` or ``addrs`` with ``cookies``, ``cnt`` of each; ``retprobe``;
    ``session`` and ``unique_match`` (libbpf 1.5+/1.6+)."""

    syms: Optional[List[str]] = None
    addrs: Optional[List[int]] = None
    cookies: Optional[List[int]] = None
    cnt: int = 0
    retprobe: bool = False
    session: bool = False
    unique_match: bool = False


def _first(values: Optional[List[Any]], cnt: int) -> Optional[List[Any]]:
    return None if values is None else list(values)[:cnt]


def _multi_attach(prog: Optional[Program], call: Callable[[], Any]) -> Any:
    if prog is None or not prog.loaded:
        _log.warn("prog '%s': can't attach BPF program without FD (was it loaded?)", getattr(prog, "name", None))
        return _null(_errno.EINVAL)
    try:
        return call()
    except ValueError:  # libbpf's argument checks
        return _null(_errno.EINVAL)
    except BPFError as e:
        _log.warn("prog '%s': failed to attach: %s", prog.name, e)
        return _null(_code(e))


def bpf_program__attach_uprobe_multi(prog: Program, pid: int, binary_path: Optional[str], func_pattern: Optional[str], opts: Any = None) -> Any:
    """Attach to many functions of ``binary_path`` with one uprobe_multi link (libbpf 1.2+).

    Either ``func_pattern`` (a glob) or, in ``opts``, ``syms`` or ``offsets``
    with ``cnt`` (and optional ``cookies``, ``ref_ctr_offsets``); ``pid`` -1
    every process, 0 the caller.  A :class:`~pybpfload.link.MultiProbeLink`,
    or None with errno: EINVAL for bad arguments, ENOENT when nothing
    matches, EOPNOTSUPP where the kernel has no such links.  ``session``
    defaults to False as in libbpf (the Python API infers it).
    """
    o = _opts(BpfUprobeMultiOpts, opts)
    from .link.multi import attach_uprobe_multi

    if not binary_path or (func_pattern is None and o.cnt == 0):
        return _null(_errno.EINVAL)
    if func_pattern is not None and (o.syms is not None or o.offsets is not None or o.ref_ctr_offsets is not None or o.cookies is not None or o.cnt):
        return _null(_errno.EINVAL)
    return _multi_attach(
        prog,
        lambda: attach_uprobe_multi(
            prog,
            binary_path,
            func_pattern,
            syms=_first(o.syms, o.cnt),
            offsets=_first(o.offsets, o.cnt),
            ref_ctr_offsets=_first(o.ref_ctr_offsets, o.cnt),
            cookies=_first(o.cookies, o.cnt),
            pid=pid,
            retprobe=o.retprobe,
            session=o.session,
        ),
    )


def bpf_program__attach_kprobe_multi_opts(prog: Program, pattern: Optional[str], opts: Any = None) -> Any:
    """Attach to many kernel functions with one kprobe_multi link.

    ``pattern`` (a glob over the traceable functions), or ``opts.syms`` /
    ``opts.addrs`` with ``cnt`` (and optional ``cookies``).  None with errno
    on failure: EINVAL for bad arguments, ENOENT when nothing matches,
    EOPNOTSUPP where the kernel cannot make kprobe_multi links.
    """
    o = _opts(BpfKprobeMultiOpts, opts)
    from .link.multi import attach_kprobe_multi

    if pattern is None and o.addrs is None and o.syms is None:
        return _null(_errno.EINVAL)
    if pattern is not None and (o.addrs is not None or o.syms is not None or o.cookies is not None or o.cnt):
        return _null(_errno.EINVAL)
    if pattern is None and not o.cnt:
        return _null(_errno.EINVAL)
    return _multi_attach(
        prog,
        lambda: attach_kprobe_multi(
            prog,
            pattern,
            syms=_first(o.syms, o.cnt),
            addrs=_first(o.addrs, o.cnt),
            cookies=_first(o.cookies, o.cnt),
            retprobe=o.retprobe,
            session=o.session,
            unique_match=o.unique_match,
        ),
    )


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
    from .link._attach_cmd import link_create, link_create_attr
    from .link.multi import kprobe_multi_attr, uprobe_multi_attr

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


# ---------------------------------------------------------------------------- perf buffers
PerfBufferSampleFn = Callable[[Any, int, memoryview, int], Any]
PerfBufferLostFn = Callable[[Any, int, int], Any]


class _LibbpfPerfBuffer(PerfBuffer):
    """A PerfBuffer with libbpf's slot numbering: ``slot_cnt`` slots (possible CPUs, at most the
    map's max_entries), the rings of the online CPUs first, the rest empty (-ENOENT)."""

    slot_cnt: int = 0

    def poll_ready(self, timeout_ms: int) -> int:
        """libbpf's poll: process the rings epoll reports, return how many there were."""
        ep = self._live()
        try:
            events = ep.poll(timeout_ms / 1000.0 if timeout_ms >= 0 else -1, max(self.slot_cnt, 1))
        except InterruptedError:
            return -_errno.EINTR
        for fd, _ in events:
            self._by_fd[fd].process(self.sample_callback, self.lost_callback, self.copy)
        return len(events)


def perf_buffer__new(
    map_fd: int, page_cnt: int, sample_cb: Optional[PerfBufferSampleFn], lost_cb: Optional[PerfBufferLostFn], ctx: Any = None, opts: Any = None
) -> Optional[PerfBuffer]:
    """Per-CPU perf rings for a PERF_EVENT_ARRAY map (see :class:`pybpfload.events.perfbuf.PerfBuffer`).

    ``sample_cb(ctx, cpu, data, size)`` per sample (``data`` a read-only
    memoryview valid during the call), ``lost_cb(ctx, cpu, count)`` for
    dropped samples.  None with errno: EINVAL when ``page_cnt`` is not a
    power of 2 or the map is not a perf event array, EBADF for a bad fd.
    """
    from .kernel.maps import possible_cpus
    from .abi.uapi import MapInfo

    if page_cnt <= 0 or page_cnt & (page_cnt - 1):
        _log.warn("page count should be power of two, but is %d", page_cnt)
        return _null(_errno.EINVAL)

    def sample(cpu: int, data: Any) -> None:
        if sample_cb is not None:
            sample_cb(ctx, cpu, data, len(data))

    lost = (lambda cpu, cnt: lost_cb(ctx, cpu, cnt)) if lost_cb is not None else None
    try:
        info = commands.obj_get_info_by_fd(map_fd, MapInfo())
        if info.type != MapType.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            _log.warn("map '%s' should be BPF_MAP_TYPE_PERF_EVENT_ARRAY", info.name.decode(errors="replace"))
            return _null(_errno.EINVAL)
        pb = _LibbpfPerfBuffer(map_fd, sample, lost, page_cnt=page_cnt)
    except BPFError as e:
        return _null(_code(e))
    cnt = possible_cpus()
    pb.slot_cnt = min(cnt, info.max_entries) if info.max_entries else cnt
    return pb


def _slot(pb: Any, buf_idx: int) -> int:
    if buf_idx < 0 or buf_idx >= getattr(pb, "slot_cnt", pb.buffer_cnt):
        return -_errno.EINVAL
    if buf_idx >= pb.buffer_cnt:
        return -_errno.ENOENT  # an offline CPU's slot
    return 0


@_int_api
def perf_buffer__poll(pb: PerfBuffer, timeout_ms: int) -> int:
    """Wait up to ``timeout_ms`` (-1: forever) and process the rings with data; the number of such rings."""
    if isinstance(pb, _LibbpfPerfBuffer):
        return pb.poll_ready(timeout_ms)
    pb.poll(timeout_ms)
    return 0


@_int_api
def perf_buffer__consume(pb: PerfBuffer) -> int:
    """Process every ring without waiting; 0 or a negative error (libbpf returns no count)."""
    pb.consume()
    return 0


@_int_api
def perf_buffer__consume_buffer(pb: PerfBuffer, buf_idx: int) -> int:
    """Process ring slot ``buf_idx``; -EINVAL out of range, -ENOENT for an empty slot."""
    err = _slot(pb, buf_idx)
    if err:
        return err
    pb.consume_buffer(buf_idx)
    return 0


def perf_buffer__buffer_cnt(pb: PerfBuffer) -> int:
    """Number of slots (possible CPUs, at most the map's max_entries), as libbpf counts them."""
    return int(getattr(pb, "slot_cnt", pb.buffer_cnt))


@_int_api
def perf_buffer__buffer_fd(pb: PerfBuffer, buf_idx: int) -> int:
    """The perf event fd of slot ``buf_idx``; -EINVAL out of range, -ENOENT for an empty slot."""
    return _slot(pb, buf_idx) or pb.buffer_fd(buf_idx)


def perf_buffer__epoll_fd(pb: PerfBuffer) -> int:
    return pb.epoll_fd()


def perf_buffer__free(pb: Optional[PerfBuffer]) -> None:
    """Remove the rings from the map and release everything; None is ignored."""
    if pb is not None:
        pb.close()


# ---------------------------------------------------------------------------- user ring buffers
def user_ring_buffer__new(map_fd: int, opts: Any = None) -> Optional[UserRingBuffer]:
    """A producer for a BPF_MAP_TYPE_USER_RINGBUF map; None with errno (EINVAL: wrong map type, EBADF)."""
    try:
        return UserRingBuffer(map_fd)
    except BPFError as e:
        _log.warn("user ringbuf: failed to map fd=%d: %s", map_fd, e)
        return _null(_code(e) if isinstance(e, OSError) else _errno.EINVAL)  # not a user ring buffer: EINVAL, as libbpf


def user_ring_buffer__reserve(rb: UserRingBuffer, size: int) -> Optional[memoryview]:
    """A writable memoryview of ``size`` bytes in the ring; None with errno ENOSPC (full) or E2BIG."""
    try:
        return rb.reserve(size)
    except BPFError as e:
        return _null(_code(e))


def user_ring_buffer__reserve_blocking(rb: UserRingBuffer, size: int, timeout_ms: int) -> Optional[memoryview]:
    """As :func:`user_ring_buffer__reserve`, waiting up to ``timeout_ms`` (-1: forever) for space."""
    if timeout_ms < -1:
        return _null(_errno.EINVAL)
    try:
        return rb.reserve_blocking(size, timeout_ms)
    except BPFError as e:
        return _null(_code(e))


def user_ring_buffer__submit(rb: UserRingBuffer, sample: memoryview) -> None:
    """Hand a reserved sample to the kernel."""
    rb.submit(sample)


def user_ring_buffer__discard(rb: UserRingBuffer, sample: memoryview) -> None:
    """Give a reserved sample back (the kernel skips it)."""
    rb.discard(sample)


def user_ring_buffer__free(rb: Optional[UserRingBuffer]) -> None:
    """Unmap the ring (pending samples are dropped); None is ignored."""
    if rb is not None:
        rb.close()


def _public() -> List[str]:
    g = globals()
    prefixes = ("bpf_", "btf__", "libbpf_", "ring_buffer__", "perf_buffer__", "user_ring_buffer__", "LIBBPF_", "BPF_")
    return sorted(n for n in g if n.startswith(prefixes) and not n.startswith("_"))


__all__ = sorted(set(__all__) | set(_public()))
