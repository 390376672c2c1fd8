"""BPF programs: a definition until loaded, then the owner of its fd.

``Program.load(insns, type)`` loads an instruction list made by hand; programs
of an ELF object are :class:`Program` objects too, loaded by their object.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Tuple, Union

from ..syscall import pinning
from .._fdobject import FdObject
from .._strict import Strict
from ..errors import BPFError, StateError, VerifierError
from ..syscall import commands
from ..abi.record import Record, _set
from ..abi.names import prog_type_name as _type_name
from ..abi.uapi import AttachType, ProgInfo as _ProgInfo, ProgType
from ..syscall.fd import Fd

if TYPE_CHECKING:  # pragma: no cover
    from ..syscall.token import Token

__all__ = ["Program", "ProgType", "AttachType", "ProgramInfo", "TestRun"]

Insns = Union[bytes, bytearray, memoryview, Sequence[Any]]


def insns_bytes(insns: Insns) -> bytes:
    """Instructions as raw bytes: bytes-like, or objects with ``encode()`` returning bytes."""
    if isinstance(insns, (bytes, bytearray, memoryview)):
        b = bytes(insns)
    else:
        b = b"".join(i.encode() if hasattr(i, "encode") else bytes(i) for i in insns)
    if len(b) % 8:
        raise BPFError(f"instructions are {len(b)} bytes, not a multiple of 8")
    return b


class TestRun(Record):
    """The result of BPF_PROG_TEST_RUN.

    An immutable record (:mod:`pybpfload.abi.record`), not a dataclass: ``==``,
    hash and repr field by field; ``_asdict()`` gives the fields as a dict.
    """

    __slots__ = _fields = ("retval", "duration", "data", "ctx")
    retval: int
    duration: int  # average ns per run
    data: bytes
    ctx: bytes

    def __init__(self, retval: int, duration: int, data: bytes, ctx: bytes) -> None:
        _set(self, "retval", retval)
        _set(self, "duration", duration)
        _set(self, "data", data)
        _set(self, "ctx", ctx)


class ProgramInfo(Record):
    """What the kernel reports about a program (BPF_OBJ_GET_INFO_BY_FD).

    An immutable record (:mod:`pybpfload.abi.record`), not a dataclass: ``==``,
    hash and repr field by field; ``_asdict()`` gives the fields as a dict.
    """

    __slots__ = _fields = (
        "type", "id", "tag", "name", "jited_prog_len", "xlated_prog_len", "load_time", "created_by_uid",
        "map_ids", "btf_id", "gpl_compatible", "run_time_ns", "run_cnt", "verified_insns",
        "attach_btf_id", "attach_btf_obj_id",
    )  # fmt: skip
    type: int
    id: int
    tag: str
    name: str
    jited_prog_len: int
    xlated_prog_len: int
    load_time: int
    created_by_uid: int
    map_ids: Tuple[int, ...]
    btf_id: int
    gpl_compatible: bool
    run_time_ns: int
    run_cnt: int
    verified_insns: int
    attach_btf_id: int
    attach_btf_obj_id: int

    def __init__(
        self,
        type: int,
        id: int,
        tag: str,
        name: str,
        jited_prog_len: int,
        xlated_prog_len: int,
        load_time: int,
        created_by_uid: int,
        map_ids: Tuple[int, ...],
        btf_id: int,
        gpl_compatible: bool,
        run_time_ns: int,
        run_cnt: int,
        verified_insns: int,
        attach_btf_id: int,
        attach_btf_obj_id: int,
    ) -> None:
        _set(self, "type", type)
        _set(self, "id", id)
        _set(self, "tag", tag)
        _set(self, "name", name)
        _set(self, "jited_prog_len", jited_prog_len)
        _set(self, "xlated_prog_len", xlated_prog_len)
        _set(self, "load_time", load_time)
        _set(self, "created_by_uid", created_by_uid)
        _set(self, "map_ids", map_ids)
        _set(self, "btf_id", btf_id)
        _set(self, "gpl_compatible", gpl_compatible)
        _set(self, "run_time_ns", run_time_ns)
        _set(self, "run_cnt", run_cnt)
        _set(self, "verified_insns", verified_insns)
        _set(self, "attach_btf_id", attach_btf_id)
        _set(self, "attach_btf_obj_id", attach_btf_obj_id)


class Program(Strict, FdObject):
    """One BPF program."""

    type: int
    _insns: bytes
    license: str
    expected_attach_type: int
    flags: int
    kern_version: int
    section_name: str
    autoload: bool
    attach_btf_id: int
    attach_btf_obj_fd: int
    attach_prog_fd: int
    attach_target: Optional[str]
    ifindex: int
    log_level: int
    log: str

    def __init__(
        self,
        name: str = "",
        type: int = ProgType.BPF_PROG_TYPE_UNSPEC,
        insns: Insns = b"",
        license: str = "GPL",
        *,
        expected_attach_type: int = 0,
        flags: int = 0,
        kern_version: int = 0,
        section_name: str = "",
        autoload: bool = True,
        attach_btf_id: int = 0,
        attach_btf_obj_fd: int = 0,
        attach_prog_fd: int = 0,
        attach_target: Optional[str] = None,
        ifindex: int = 0,
        log_level: int = 0,
    ) -> None:
        super().__init__(name)
        # straight into __dict__: nothing is loaded or sealed yet, so __setattr__'s checks
        # would pass, and an object of 300 programs made them one by one for ~5 ms
        self.__dict__.update(
            type=type,
            _insns=insns_bytes(insns),
            license=license,
            expected_attach_type=expected_attach_type,
            flags=flags,
            kern_version=kern_version,
            section_name=section_name,
            autoload=autoload,
            attach_btf_id=attach_btf_id,
            attach_btf_obj_fd=attach_btf_obj_fd,
            attach_prog_fd=attach_prog_fd,
            attach_target=attach_target,
            ifindex=ifindex,
            log_level=log_level,
            log="",
        )

    _SPEC_FIELDS = frozenset(
        {
            "name",
            "type",
            "license",
            "expected_attach_type",
            "flags",
            "kern_version",
            "autoload",
            "attach_btf_id",
            "attach_btf_obj_fd",
            "attach_prog_fd",
            "ifindex",
        }
    )

    def __setattr__(self, key: str, value: Any) -> None:
        if key in Program._SPEC_FIELDS and self.__dict__.get("_fd") is not None:
            raise StateError(f"program {self.__dict__.get('name')!r}: cannot change {key} after load")
        self._check_attr(key)  # a misspelt name is refused (Strict)
        object.__setattr__(self, key, value)

    # ------------------------------------------------------------ instructions
    @property
    def insns(self) -> bytes:
        """The instructions as raw bytes (8 per instruction, 16 for ld_imm64)."""
        return self._insns

    @insns.setter
    def insns(self, value: Insns) -> None:
        if self._fd is not None:
            raise StateError(f"program {self.name!r}: cannot change instructions after load")
        self._insns = insns_bytes(value)

    @property
    def insn_cnt(self) -> int:
        return len(self._insns) // 8

    # ------------------------------------------------------------ loading
    @classmethod
    def load(
        cls, insns: Insns, type: int, *, name: str = "", license: str = "GPL", token: Optional["Token"] = None, **kwargs: Any
    ) -> "Program":
        """Load an instruction list; raises VerifierError (with the log) on rejection.

        ``token``: a :class:`~pybpfload.syscall.token.Token` to load it through.
        """
        p = cls(name, type, insns, license, **kwargs)
        return p._load(token=token)

    def _load(
        self,
        *,
        prog_btf_fd: int = 0,
        func_info: bytes = b"",
        func_info_rec_size: int = 0,
        line_info: bytes = b"",
        line_info_rec_size: int = 0,
        fd_array: Sequence[int] = (),
        log_level: Optional[int] = None,
        log_size: int = commands.LOG_SIZE_START,
        token: Optional["Token"] = None,
    ) -> "Program":
        """BPF_PROG_LOAD this definition (through ``token``, a BPF token, when given)."""
        self._check_definable()
        try:
            fd, log = commands.prog_load(
                int(self.type),
                self._insns,
                self.license,
                name=self.name,
                expected_attach_type=int(self.expected_attach_type),
                flags=self.flags,
                kern_version=self.kern_version,
                log_level=self.log_level if log_level is None else log_level,
                log_size=log_size,
                prog_btf_fd=prog_btf_fd,
                func_info=func_info,
                func_info_rec_size=func_info_rec_size,
                line_info=line_info,
                line_info_rec_size=line_info_rec_size,
                attach_btf_id=self.attach_btf_id,
                attach_btf_obj_fd=self.attach_btf_obj_fd,
                attach_prog_fd=self.attach_prog_fd,
                fd_array=fd_array,
                ifindex=self.ifindex,
                token_fd=token.fd if token is not None else 0,
            )
        except VerifierError as e:
            refused = _prog_type_refused(e, int(self.type), token)
            raise (_cpu_v4_refused(e, self._insns, token) if refused is e else refused) from None
        self.log = log
        self._own(fd)
        return self

    # ------------------------------------------------------------ fd ownership
    _KIND = "program"
    _NOT_READY = "not loaded"
    _DONE = "loaded"

    @property
    def loaded(self) -> bool:
        return self._fd is not None and not self._fd.closed

    def __repr__(self) -> str:
        tname = _type_name(int(self.type))
        return f"<Program {self.name!r} {tname} insns={self.insn_cnt} fd={self.fd}>"

    @classmethod
    def _from_owned_fd(cls, fd: Fd) -> "Program":
        try:
            info = _info(fd.fileno(), None)
        except BaseException:
            fd.close()
            raise
        p = cls(info.name, info.type)
        p._own(fd)
        return p

    @classmethod
    def from_fd(cls, fd: int) -> "Program":
        import fcntl

        return cls._from_owned_fd(Fd(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)))

    @classmethod
    def from_id(cls, prog_id: int) -> "Program":
        return cls._from_owned_fd(commands.get_fd_by_id("prog", prog_id))

    @classmethod
    def from_pin(cls, path: str) -> "Program":
        """Open the program pinned at ``path``; it knows that pin (``unpin()`` without a
        path removes it).  Closing it leaves the pin alone."""
        p = cls._from_owned_fd(pinning.open_pinned(path))
        p._pinned_at = path
        return p

    @staticmethod
    def ids() -> Iterator[int]:
        return iter(commands.iter_ids("prog"))

    # ------------------------------------------------------------ info
    def info(self) -> ProgramInfo:
        return _info(self._live().fileno(), self.name)

    @property
    def id(self) -> int:
        return self.info().id

    @property
    def tag(self) -> str:
        return self.info().tag

    def xlated_insns(self) -> bytes:
        """The instructions as the kernel translated them (what bpftool dumps as xlated)."""
        fd = self._live().fileno()
        n = commands.obj_get_info_by_fd(fd, _ProgInfo(), name=self.name).xlated_prog_len
        buf = ctypes.create_string_buffer(max(n, 1))
        info = _ProgInfo(xlated_prog_len=n, xlated_prog_insns=ctypes.addressof(buf))
        commands.obj_get_info_by_fd(fd, info, name=self.name)
        return buf.raw[: info.xlated_prog_len]

    # ------------------------------------------------------------ running
    def test_run(
        self,
        data: bytes = b"",
        *,
        ctx: bytes = b"",
        repeat: int = 0,
        data_size_out: Optional[int] = None,
        ctx_size_out: int = 0,
        flags: int = 0,
        cpu: int = 0,
        batch_size: int = 0,
    ) -> TestRun:
        """Run the program once (or ``repeat`` times) with BPF_PROG_TEST_RUN.

        ``data_size_out`` defaults to room for the packet plus 4 KiB; the
        context is copied back only when ``ctx_size_out`` asks for it (as
        libbpf's opts: some program types, e.g. SEC("syscall"), refuse it).
        """
        if data_size_out is None:
            data_size_out = len(data) + 4096 if data else 0
        retval, duration, dout, cout = commands.prog_test_run(
            self._live().fileno(),
            data_in=data,
            data_size_out=data_size_out,
            ctx_in=ctx,
            ctx_size_out=ctx_size_out,
            repeat=repeat,
            flags=flags,
            cpu=cpu,
            batch_size=batch_size,
            name=self.name,
        )
        return TestRun(retval, duration, dout, cout)

    # ------------------------------------------------------------ attaching (pybpfload.link)
    def attach(self, **opts: Any) -> Any:
        """Attach as the section name says (libbpf's bpf_program__attach); None when it names no target."""
        from ..link.auto import attach_program

        return attach_program(self, **opts)

    def attach_tracepoint(self, category: str, name: Optional[str] = None, **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_tracepoint`."""
        from ..link.tracepoint import attach_tracepoint

        return attach_tracepoint(self, category, name, **opts)

    def attach_raw_tracepoint(self, name: Optional[str] = None, **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_raw_tracepoint`."""
        from ..link.raw_tp import attach_raw_tracepoint

        return attach_raw_tracepoint(self, name, **opts)

    def attach_trace(self, **opts: Any) -> Any:
        """tp_btf / fentry / fexit / fmod_ret / lsm / freplace: see :func:`pybpfload.link.attach_trace`."""
        from ..link.tracing import attach_trace

        return attach_trace(self, **opts)

    def attach_freplace(self, target: Optional["Program"] = None, func_name: Optional[str] = None) -> Any:
        """See :func:`pybpfload.link.attach_freplace`."""
        from ..link.tracing import attach_freplace

        return attach_freplace(self, target, func_name)

    def attach_iter(self, **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_iter`."""
        from ..link.iter import attach_iter

        return attach_iter(self, **opts)

    def attach_uprobe(self, binary: str, func: Optional[str] = None, offset: int = 0, **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_uprobe`."""
        from ..link.uprobe import attach_uprobe

        return attach_uprobe(self, binary, func, offset, **opts)

    def attach_usdt(self, binary_path: str, provider: str, name: str, pid: int = -1, usdt_cookie: int = 0) -> Any:
        """See :func:`pybpfload.link.attach_usdt`."""
        from ..link.usdt import attach_usdt

        return attach_usdt(self, binary_path, provider, name, pid=pid, usdt_cookie=usdt_cookie)

    def attach_kprobe(self, func: str, offset: int = 0, **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_kprobe`."""
        from ..link.kprobe import attach_kprobe

        return attach_kprobe(self, func, offset, **opts)

    def attach_ksyscall(self, syscall: str, **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_ksyscall`."""
        from ..link.kprobe import attach_ksyscall

        return attach_ksyscall(self, syscall, **opts)

    def attach_uprobe_multi(self, binary: str, pattern: Optional[str] = None, **opts: Any) -> Any:
        """uprobe.multi / uretprobe.multi / uprobe.session: see :func:`pybpfload.link.attach_uprobe_multi`."""
        from ..link.multi import attach_uprobe_multi

        return attach_uprobe_multi(self, binary, pattern, **opts)

    def attach_kprobe_multi(self, pattern: Optional[str] = None, **opts: Any) -> Any:
        """kprobe.multi / kretprobe.multi / kprobe.session: see :func:`pybpfload.link.attach_kprobe_multi`."""
        from ..link.multi import attach_kprobe_multi

        return attach_kprobe_multi(self, pattern, **opts)

    def attach_perf_event(self, perf_fd: Any, **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_perf_event`."""
        from ..link.perf_event import attach_perf_event

        return attach_perf_event(self, perf_fd, **opts)

    def attach_xdp(self, dev: Union[int, str], **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_xdp`."""
        from ..link.xdp import attach_xdp

        return attach_xdp(self, dev, **opts)

    def attach_tcx(self, dev: Union[int, str], direction: Union[str, int] = "ingress", **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_tcx`."""
        from ..link.tcx import attach_tcx

        return attach_tcx(self, dev, direction, **opts)

    def attach_tc(self, dev: Union[int, str], direction: str = "ingress", **opts: Any) -> Any:
        """Classic cls_bpf through netlink: see :func:`pybpfload.link.attach_tc`."""
        from ..link.tc import attach_tc

        return attach_tc(self, dev, direction, **opts)

    def attach_cgroup(self, cgroup: Union[str, int], **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_cgroup`."""
        from ..link.cgroup import attach_cgroup

        return attach_cgroup(self, cgroup, **opts)

    def attach_socket(self, sock: Any) -> Any:
        """See :func:`pybpfload.link.attach_socket`."""
        from ..link.socket_filter import attach_socket

        return attach_socket(self, sock)

    def attach_sockmap(self, sock_map: Any, **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_sockmap`."""
        from ..link.sockmap import attach_sockmap

        return attach_sockmap(self, sock_map, **opts)

    def attach_netfilter(self, pf: Union[int, str], hook: Union[int, str], priority: int, **opts: Any) -> Any:
        """See :func:`pybpfload.link.attach_netfilter`."""
        from ..link.netfilter import attach_netfilter

        return attach_netfilter(self, pf, hook, priority, **opts)


def _prog_type_refused(e: VerifierError, prog_type: int, token: Optional["Token"] = None) -> BPFError:
    """``e`` as NotSupportedError when the kernel refused the load because it lacks the program type
    (refused before the verifier ran: an empty log; any errno, as the loader's probe decides)."""
    if e.log.strip():
        return e
    from ..syscall.features import refusal

    name = _type_name(prog_type)
    if prog_type in _TRAMPOLINE_TYPES:
        name += " (BPF trampolines, which fentry/fexit/fmod_ret/lsm/freplace programs need)"
    return refusal(e, "program", prog_type, name, token)


CPU_V4_REFUSED = "this kernel does not support BPF ISA v4 instructions (cpu v4, Linux 6.6+)"


def _cpu_v4_refused(e: VerifierError, insns: bytes, token: Optional["Token"] = None) -> VerifierError:
    """``e`` with a hint naming the first BPF ISA v4 instruction of ``insns`` of a class
    that the loader's probes say the kernel lacks (it then says "unknown opcode 91",
    "BPF_ALU uses reserved fields"...); ``e`` unchanged otherwise."""
    from ..elf.insn import CPU_V4_CLASSES, first_cpu_v4

    if first_cpu_v4(insns) is None:
        return e
    from ..syscall.features import cpu_v4_supported

    try:
        taken = [c for c in CPU_V4_CLASSES if cpu_v4_supported(c, token=token)]  # probed as the load was made
    except BPFError:
        return e
    first = first_cpu_v4(insns, [c for c in CPU_V4_CLASSES if c not in taken])
    if first is None:
        return e
    slot, insn = first
    partly = f"; of them it takes {', '.join(taken)} only" if taken else ""
    e.hint = f"{CPU_V4_REFUSED}: insn #{slot} ({insn}) is one (clang -mcpu=v4 writes them){partly}"
    return e


_TRAMPOLINE_TYPES = (ProgType.BPF_PROG_TYPE_TRACING, ProgType.BPF_PROG_TYPE_LSM, ProgType.BPF_PROG_TYPE_EXT)



def _info(fd: int, name: Optional[str]) -> ProgramInfo:
    i = commands.obj_get_info_by_fd(fd, _ProgInfo(), name=name)
    map_ids: Tuple[int, ...] = ()
    if i.nr_map_ids:
        arr = (ctypes.c_uint32 * i.nr_map_ids)()
        j = _ProgInfo(nr_map_ids=i.nr_map_ids, map_ids=ctypes.addressof(arr))
        commands.obj_get_info_by_fd(fd, j, name=name)
        map_ids = tuple(arr[: j.nr_map_ids])
    return ProgramInfo(
        type=i.type,
        id=i.id,
        tag=bytes(i.tag).hex(),
        name=i.name.decode("utf-8", "replace"),
        jited_prog_len=i.jited_prog_len,
        xlated_prog_len=i.xlated_prog_len,
        load_time=i.load_time,
        created_by_uid=i.created_by_uid,
        map_ids=map_ids,
        btf_id=i.btf_id,
        gpl_compatible=bool(i.gpl_compatible),
        run_time_ns=i.run_time_ns,
        run_cnt=i.run_cnt,
        verified_insns=i.verified_insns,
        attach_btf_id=i.attach_btf_id,
        attach_btf_obj_id=i.attach_btf_obj_id,
    )
