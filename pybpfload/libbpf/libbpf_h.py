"""libbpf.h: version, print, probes, and the bpf_object / bpf_program / bpf_map
API, with attach functions (libbpf's names; see :mod:`pybpfload.libbpf`)."""

from __future__ import annotations

import errno as _errno
import ctypes
import dataclasses
import os
import weakref
from typing import Any, Callable, Iterator, List, Optional, Tuple

from .. import log as _log
from ..abi.uapi import AttachType, LinkType, MapType, ProgType
from ..errors import BPFError, StateError, VerifierError, strerror_r
from ..kernel.maps import Map
from ..kernel.program import Program
from ..object import Object
from ._common import BpfObjectOpenOpts, LIBBPF_MAJOR_VERSION, LIBBPF_MINOR_VERSION, _BTF, _INSTANCES, _MAP_IN_MAP, _OPEN_OPTS, _OWNER, _PERCPU, _PREP, _code, _fail, _fill_log, _first, _insns_from, _int_api, _null, _obj_loaded, _opts, _ptr_api, _register, _set_out, bpf_insn, get_errno
from .btf_h import Btf
from .bpf_h import bpf_map_delete_elem_flags, bpf_map_get_next_key, bpf_map_lookup_and_delete_elem_flags, bpf_map_lookup_elem_flags, bpf_map_update_elem


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
    from ..kernel.maps import possible_cpus

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
    from ..elf.sections import find_sec_def

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
    from ..syscall import features

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
    from ..syscall import features

    if opts is not None:
        return -_errno.EINVAL
    if not _known(MapType, map_type):
        return -_errno.EOPNOTSUPP
    return int(features.map_type_supported(map_type))


@_int_api
def libbpf_probe_bpf_helper(prog_type: int, helper_id: int, opts: Any = None) -> int:
    """1 if programs of ``prog_type`` may call helper ``helper_id``, 0 if not, <0 on error."""
    from ..syscall import features

    if opts is not None:
        return -_errno.EINVAL
    if prog_type in _HELPER_UNPROBEABLE or not _known(ProgType, prog_type):
        return -_errno.EOPNOTSUPP
    return int(features.helper_supported(prog_type, helper_id))



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
    from ..syscall import pinning

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
    from ..kernel.variants import load_variants

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
            inst = load_variants(p, one, count)
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
    from ..elf.model import MapKind

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
    if map.type == MapType.BPF_MAP_TYPE_ARENA:  # the __arena globals: their size, before creation
        if map.created:
            return _fail(-_errno.EBUSY)
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

    An arena with ``__arena`` globals, as libbpf: their bytes before load; after, the
    same number of bytes from the start of the arena's mapping (libbpf 1.7 returns the
    mapping, whose globals may sit at its end: ``map.arena.globals_offset``).
    """
    if map.type == MapType.BPF_MAP_TYPE_ARENA:
        image = map.initial_value
        if image is None:
            return None
        if map.created:
            image = map.arena.read(0, len(image))
        _set_out(psize, len(image))
        return image
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
    from ..link.struct_ops import attach_struct_ops

    return attach_struct_ops(map)


@_int_api
def bpf_link__update_map(link: Any, map: Map) -> int:
    """Replace the struct_ops map behind a struct_ops link (BPF_LINK_UPDATE); -EINVAL for other links."""
    from ..link.struct_ops import StructOpsLink

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
        from ..kernel.maps import possible_cpus

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
    from ..link.multi import attach_uprobe_multi

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
    from ..link.multi import attach_kprobe_multi

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
