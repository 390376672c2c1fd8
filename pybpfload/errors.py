"""The one error hierarchy of pybpfload.

Every failure that pybpfload reports is a :class:`BPFError`::

    BPFError
    ├── BPFOSError (also OSError)      anything that carries an errno
    │   ├── SyscallError               a failed system call (bpf(2), perf_event_open, ...)
    │   │   └── VerifierError          PROG_LOAD rejected; carries the verifier log
    │   └── PinError                   a pin path that cannot be used
    ├── NotSupportedError              the kernel lacks a feature that was asked for
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
    "ParseError",
    "ELFError",
    "BTFError",
    "RelocationError",
    "StateError",
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
    """The kernel refused a program; ``log`` is the whole verifier log."""

    TAIL_LINES = 20

    def __init__(self, err: int, command: str, name: Optional[str], log: str) -> None:
        super().__init__(err, command, name)
        self.log = log

    @property
    def log_lines(self) -> Tuple[str, ...]:
        return tuple(self.log.rstrip("\n").splitlines())

    def __str__(self) -> str:
        base = super().__str__()
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
    """The running kernel lacks a feature; ``feature`` names it."""

    def __init__(self, feature: str, detail: str = "") -> None:
        super().__init__(f"{feature} is not supported by this kernel" + (f": {detail}" if detail else ""))
        self.feature = feature


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


class StateError(BPFError, ValueError):
    """The operation is not valid in the object's current state (closed, loaded, ...)."""

