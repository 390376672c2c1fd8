"""pybpfload: a pure-Python eBPF ELF loader with libbpf's semantics.

``import pybpfload`` is cheap: submodules (and pyelftools / construct behind
them) are imported on first use of a name.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms

__version__ = "0.1.0"
# The libbpf API level pybpfload mirrors (pybpfload.libbpf's libbpf_*_version report it):
# the spec documents libbpf 0.8; behaviour follows libbpf 1.x, checked against 1.1.
LIBBPF_API_VERSION = (1, 1)


def major_version() -> int:
    """pybpfload's major version (as libbpf_major_version for libbpf)."""
    return int(__version__.split(".")[0])


def minor_version() -> int:
    """pybpfload's minor version (as libbpf_minor_version for libbpf)."""
    return int(__version__.split(".")[1])


def version_string() -> str:
    """``"v0.1"``, in the form of libbpf_version_string."""
    return f"v{major_version()}.{minor_version()}"


# public name -> module that defines it
_EXPORTS = {
    "BPFError": "errors",
    "BPFOSError": "errors",
    "SyscallError": "errors",
    "VerifierError": "errors",
    "PinError": "errors",
    "NotSupportedError": "errors",
    "UnknownAttributeError": "errors",
    "UnknownNameError": "errors",
    "ParseError": "errors",
    "ELFError": "errors",
    "BTFError": "errors",
    "RelocationError": "errors",
    "StateError": "errors",
    "StructOpsError": "errors",
    "Object": "object",
    "Link": "link",
    "LinkInfo": "link",
    "Spec": "btf",
    "BtfHandle": "btf",
    "Map": "maps",
    "MapInfo": "maps",
    "MapKeyError": "maps",
    "possible_cpus": "maps",
    "BPF_ANY": "maps",
    "BPF_NOEXIST": "maps",
    "BPF_EXIST": "maps",
    "BPF_F_LOCK": "maps",
    "Program": "program",
    "ProgramInfo": "program",
    "TestRun": "program",
    "RingBuffer": "ringbuf",
    "UserRingBuffer": "ringbuf",
    "RecordBatch": "ringbuf",
    "PerfBuffer": "perfbuf",
    "MapType": "syscall",
    "ProgType": "syscall",
    "AttachType": "syscall",
    "LinkType": "syscall",
    "Fd": "syscall",
    "print_log2_hist": "toolkit.hist",
    "print_linear_hist": "toolkit.hist",
    "sym": "toolkit.symbols",
    "ksym": "toolkit.symbols",
    "syscall_name": "toolkit.syscalls",
    "syscall_number": "toolkit.syscalls",
}

__all__ = ["__version__", "LIBBPF_API_VERSION", "major_version", "minor_version", "version_string", *_EXPORTS]


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'pybpfload' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from .errors import (  # noqa: F401
        BPFError,
        BPFOSError,
        BTFError,
        ELFError,
        NotSupportedError,
        ParseError,
        PinError,
        RelocationError,
        StateError,
        SyscallError,
        UnknownAttributeError,
        UnknownNameError,
        VerifierError,
    )
    from .maps import BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, Map, MapInfo, MapKeyError, possible_cpus  # noqa: F401
    from .btf import BtfHandle, Spec  # noqa: F401
    from .link import Link, LinkInfo  # noqa: F401
    from .object import Object  # noqa: F401
    from .perfbuf import PerfBuffer  # noqa: F401
    from .program import Program, ProgramInfo, TestRun  # noqa: F401
    from .ringbuf import RecordBatch, RingBuffer, UserRingBuffer  # noqa: F401
    from .syscall import AttachType, Fd, LinkType, MapType, ProgType  # noqa: F401
    from .toolkit.hist import print_linear_hist, print_log2_hist  # noqa: F401
    from .toolkit.symbols import ksym, sym  # noqa: F401
    from .toolkit.syscalls import syscall_name, syscall_number  # noqa: F401
