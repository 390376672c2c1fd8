"""The one error hierarchy of pybpfload.

Every failure that pybpfload reports is a :class:`BPFError`::

    BPFError
    ├── BPFOSError (also OSError)      anything that carries an errno
    │   ├── SyscallError               a failed system call (bpf(2), perf_event_open, ...)
    │   │   └── VerifierError          PROG_LOAD rejected; carries the verifier log
    │   └── PinError                   a pin path that cannot be used
    ├── NotSupportedError              the kernel lacks a feature that was asked for
    ├── UnknownAttributeError (also AttributeError)  a name the object does not have
    ├── UnknownNameError (also KeyError)  a lookup by a name that is not there
    ├── ParseError                     malformed input
    │   ├── ELFError
    │   └── BTFError
    ├── RelocationError                an instruction that cannot be relocated
    └── StateError                     an operation not valid now (after close, after load)

Callers need a single ``except pybpfload.BPFError``; those that care about the
errno can catch ``OSError`` and read ``.errno`` as usual.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Optional, Tuple

__all__ = [
    "BPFError",
    "BPFOSError",
    "SyscallError",
    "VerifierError",
    "PinError",
    "NotSupportedError",
    "UnknownAttributeError",
    "UnknownNameError",
    "ParseError",
    "ELFError",
    "BTFError",
    "RelocationError",
    "StateError",
    "StructOpsError",
    "LibbpfErrno",
    "strerror",
    "error_code",
]


class BPFError(Exception):
    """Root of every error pybpfload raises."""


class BPFOSError(BPFError, OSError):
    """A failure with an errno.

    ``str()`` reads ``<what was being done>: <strerror> (errno <name>)``.
    """

    def __init__(self, err: int, what: str, *, filename: Optional[str] = None) -> None:
        OSError.__init__(self, err, os.strerror(err) if err else "unknown error")
        self.what = what
        if filename is not None:
            self.filename = filename

    @property
    def errno_name(self) -> str:
        return _errno.errorcode.get(self.errno or 0, str(self.errno))

    def __str__(self) -> str:
        return f"{self.what}: {self.strerror} ({self.errno_name})"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_rebuild, (type(self), self.__dict__, self.errno))


def _rebuild(cls, state, err):  # type: ignore[no-untyped-def]
    obj = cls.__new__(cls)
    OSError.__init__(obj, err, os.strerror(err) if err else "unknown error")
    obj.__dict__.update(state)
    return obj


class SyscallError(BPFOSError):
    """A system call failed.

    ``command`` is the call or bpf(2) command (``"BPF_MAP_CREATE"``), ``name``
    the object it concerned, when there is one.
    """

    def __init__(
        self,
        err: int,
        command: str,
        name: Optional[str] = None,
        *,
        detail: str = "",
    ) -> None:
        what = command
        if name:
            what += f" for {name!r}"
        if detail:
            what += f" ({detail})"
        super().__init__(err, what)
        self.command = command
        self.name = name


class VerifierError(SyscallError):
    """The kernel refused a program; ``log`` is the whole verifier log, ``hint``
    the loader's reading of it when it has one (a line of its own before the log)."""

    TAIL_LINES = 20
    hint = ""

    def __init__(self, err: int, command: str, name: Optional[str], log: str) -> None:
        super().__init__(err, command, name)
        self.log = log

    @property
    def log_lines(self) -> Tuple[str, ...]:
        return tuple(self.log.rstrip("\n").splitlines())

    def __str__(self) -> str:
        base = super().__str__()
        if self.hint:
            base += "\n" + self.hint
        lines = self.log_lines
        if not lines:
            return base + "; the verifier log is empty"
        tail = lines[-self.TAIL_LINES :]
        cut = f" (last {len(tail)} of {len(lines)} lines)" if len(lines) > len(tail) else ""
        return base + f"\nverifier log{cut}:\n" + "\n".join(tail)


class PinError(BPFOSError):
    """A pin path that cannot be used (not on bpffs, bad name, ...)."""

    def __init__(self, err: int, what: str, path: str) -> None:
        super().__init__(err, what, filename=path)
        self.path = path

    def __str__(self) -> str:
        return f"{self.what}: {self.path!r}: {self.strerror} ({self.errno_name})"


class NotSupportedError(BPFError):
    """The running kernel lacks a feature; ``feature`` names it.

    ``errno`` is the kernel's answer when a refused call told us (whatever errno
    the kernel build chose: EINVAL, EPERM, ENOTSUPP...), else None.
    """

    def __init__(self, feature: str, detail: str = "", *, errno: Optional[int] = None) -> None:
        super().__init__(f"{feature} is not supported by this kernel" + (f": {detail}" if detail else ""))
        self.feature = feature
        self.errno = errno


class UnknownAttributeError(BPFError, AttributeError):
    """A name that the object does not have (a misspelt attribute, an unknown
    global variable); the message lists the names there are."""


class UnknownNameError(BPFError, KeyError):
    """A lookup by a name that is not there (``obj.maps["typo"]``); the message lists the names there are."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ParseError(BPFError, ValueError):
    """Malformed input: an ELF object or BTF blob we cannot read."""


class ELFError(ParseError):
    """A malformed or unsupported ELF object."""


class BTFError(ParseError):
    """Malformed BTF."""


class RelocationError(BPFError):
    """An instruction could not be relocated."""

    def __init__(self, message: str, *, program: Optional[str] = None, insn: Optional[int] = None) -> None:
        where = ""
        if program is not None:
            where = f"program {program!r}"
            if insn is not None:
                where += f", insn #{insn}"
            where += ": "
        super().__init__(where + message)
        self.program = program
        self.insn = insn


class StructOpsError(BPFError):
    """A struct_ops map that does not fit the kernel's struct_ops type (libbpf's bpf_map__init_kern_struct_ops).

    ``code`` is the errno libbpf returns for it: EOPNOTSUPP for a member the
    kernel lacks or cannot take, EINVAL for a program used at two different
    members or types.
    """

    def __init__(self, message: str, code: int = _errno.EOPNOTSUPP) -> None:
        super().__init__(message)
        self.code = code


class StateError(BPFError, ValueError):
    """The operation is not valid in the object's current state (closed, loaded, ...)."""



# ---------------------------------------------------------------------------
# libbpf's own error codes (spec section 2) and strerror
from .abi.intenum import IntEnum  # noqa: E402


class LibbpfErrno(IntEnum):
    """libbpf's error codes beyond errno (enum libbpf_errno)."""

    LIBELF = 4000
    FORMAT = 4001
    KVERSION = 4002
    ENDIAN = 4003
    INTERNAL = 4004
    RELOC = 4005
    LOAD = 4006
    VERIFY = 4007
    PROG2BIG = 4008
    KVER = 4009
    PROGTYPE = 4010
    WRNGPID = 4011
    INVSEQ = 4012
    NLPARSE = 4013


LIBBPF_ERRNO_START = 4000
LIBBPF_ERRNO_END = 4014

# libbpf's messages.  LOAD has no entry in libbpf's table (it prints "(null)");
# we give the description its header carries instead.
_LIBBPF_MESSAGES = {
    LibbpfErrno.LIBELF: "Something wrong in libelf",
    LibbpfErrno.FORMAT: "BPF object format invalid",
    LibbpfErrno.KVERSION: "'version' section incorrect or lost",
    LibbpfErrno.ENDIAN: "Endian mismatch",
    LibbpfErrno.INTERNAL: "Internal error in libbpf",
    LibbpfErrno.RELOC: "Relocation failed",
    LibbpfErrno.LOAD: "Load program failure for unknown reason",
    LibbpfErrno.VERIFY: "Kernel verifier blocks program loading",
    LibbpfErrno.PROG2BIG: "Program too big",
    LibbpfErrno.KVER: "Incorrect kernel version",
    LibbpfErrno.PROGTYPE: "Kernel doesn't support this program type",
    LibbpfErrno.WRNGPID: "Wrong pid in netlink message",
    LibbpfErrno.INVSEQ: "Invalid netlink sequence",
    LibbpfErrno.NLPARSE: "Incorrect netlink message parsing",
}


def strerror(err: int) -> str:
    """The message for an errno or a libbpf error code (sign ignored), as libbpf_strerror writes it."""
    err = abs(err)
    if err < LIBBPF_ERRNO_START:
        return os.strerror(err)
    if err < LIBBPF_ERRNO_END:
        return _LIBBPF_MESSAGES[LibbpfErrno(err)]
    return f"Unknown libbpf error {err}"


def strerror_r(err: int, size: int) -> Tuple[int, str]:
    """libbpf_strerror(err, buf, size): (return value, text truncated to size - 1 characters).

    Returns 0 when the whole message fits; libbpf's codes return -ERANGE when
    truncated and -ENOENT for unknown codes in libbpf's range or above;
    system errnos return ERANGE (positive, as libbpf passes strerror_r's
    result through) when truncated, EINVAL for unknown errnos.
    """
    if size <= 0:
        return -_errno.EINVAL, ""
    err = abs(err)
    msg = strerror(err)
    text = msg.encode()[: size - 1].decode("utf-8", "ignore")
    truncated = len(msg.encode()) > size - 1
    if err < LIBBPF_ERRNO_START:
        if msg.startswith("Unknown error"):
            return _errno.EINVAL, text
        return (_errno.ERANGE if truncated else 0), text
    if err < LIBBPF_ERRNO_END:
        return (-_errno.ERANGE if truncated else 0), text
    return (-_errno.ERANGE if truncated else -_errno.ENOENT), text


def error_code(exc: BaseException) -> int:
    """The positive libbpf-style code for an exception: its errno, or a LIBBPF_ERRNO__* code."""
    if isinstance(exc, VerifierError):
        return int(LibbpfErrno.VERIFY)
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    if isinstance(exc, ParseError):
        return int(LibbpfErrno.FORMAT)
    if isinstance(exc, RelocationError):
        return int(LibbpfErrno.RELOC)
    if isinstance(exc, NotSupportedError):
        return exc.errno or _errno.EOPNOTSUPP
    if isinstance(exc, StateError):
        return _errno.EINVAL
    if isinstance(exc, StructOpsError):
        return exc.code
    return int(LibbpfErrno.INTERNAL)
