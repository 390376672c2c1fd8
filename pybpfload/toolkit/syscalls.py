"""System call names and numbers of x86-64 and arm64 (bcc's ``bcc.syscall``).

The tables are generated at development time from the kernel's UAPI headers
by ``tools/gen_syscall_table.py`` and committed
(:mod:`pybpfload.toolkit.data.syscall_table`)::

    >>> syscall_name(59, "x86_64"), syscall_name(221, "arm64")
    ('execve', 'execve')
    >>> syscall_number("bpf", "arm64")
    280

``arch`` is ``"x86_64"`` or ``"arm64"`` (``"amd64"``, ``"aarch64"`` too);
None means the machine's own.
"""

from __future__ import annotations

import platform
from typing import Dict, Mapping, Optional

from ..errors import UnknownNameError

__all__ = ["syscall_name", "syscall_number", "syscall_table", "ARCHES"]

ARCHES = ("x86_64", "arm64")
_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "x86-64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
_BY_NAME: Dict[str, Dict[str, int]] = {}


def _arch(arch: Optional[str]) -> str:
    a = platform.machine() if arch is None else arch
    canon = _ALIASES.get(a.lower())
    if canon is None:
        whose = "this machine's architecture " if arch is None else "architecture "
        raise UnknownNameError(f"no system call table for {whose}{a!r}; pybpfload has tables for {', '.join(ARCHES)}")
    return canon


def syscall_table(arch: Optional[str] = None) -> Mapping[int, str]:
    """Number -> name for ``arch`` (read-only)."""
    from .data import syscall_table as t

    return t.X86_64 if _arch(arch) == "x86_64" else t.ARM64


def syscall_name(nr: int, arch: Optional[str] = None) -> str:
    """The name of system call ``nr``; ``"[unknown: NR]"`` for a number the table lacks, as bcc prints."""
    name = syscall_table(arch).get(nr)
    return name if name is not None else f"[unknown: {nr}]"


def syscall_number(name: str, arch: Optional[str] = None) -> int:
    """The number of system call ``name`` (``"read"``; ``"sys_read"`` is accepted too).

    Raises :class:`~pybpfload.errors.UnknownNameError` (a KeyError) naming close names.
    """
    canon = _arch(arch)
    by_name = _BY_NAME.get(canon)
    if by_name is None:
        by_name = _BY_NAME[canon] = {v: k for k, v in syscall_table(canon).items()}
    nr = by_name.get(name)
    if nr is None and name.startswith("sys_"):
        nr = by_name.get(name[4:])
    if nr is None:
        import difflib

        close = difflib.get_close_matches(name, list(by_name), n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(f"no system call {name!r} on {canon}{hint}")
    return nr
