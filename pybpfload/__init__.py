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
    "BtfHandle": "syscall.btf_handle",
    "Token": "syscall.token",
    "Map": "kernel.maps",
    "MapInfo": "kernel.maps",
    "MapKeyError": "kernel.maps",
    "possible_cpus": "kernel.maps",
    "BPF_ANY": "kernel.maps",
    "BPF_NOEXIST": "kernel.maps",
    "BPF_EXIST": "kernel.maps",
    "BPF_F_LOCK": "kernel.maps",
    "Program": "kernel.program",
    "ProgramInfo": "kernel.program",
    "TestRun": "kernel.program",
    "RingBuffer": "events.ringbuf",
    "UserRingBuffer": "events.ringbuf",
    "RecordBatch": "events.ringbuf",
    "PerfBuffer": "events.perfbuf",
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


# Modules that moved when the package took its folders by stage: their old
# names still import (``import pybpfload.maps`` is ``pybpfload.kernel.maps``).
_MOVED = {
    "maps": "kernel.maps",
    "program": "kernel.program",
    "variants": "kernel.variants",
    "ringbuf": "events.ringbuf",
    "perfbuf": "events.perfbuf",
    "features": "syscall.features",
    "pinning": "syscall.pinning",
    "insn": "elf.insn",
    "loader": "reloc.loader",
    "core": "reloc.co_re",
    "externs": "reloc.extern_values",
    "linker": "reloc.linker",
    "structops": "reloc.struct_ops_plan",
    "attach": "link.auto",
    "usdt": "link.usdt_spec",
    "corecheck": "cli.corecheck",
    "demo": "cli.demo",
    "syscall._types": "abi.uapi",
    "btf.core": "btf.relo_core",
    "btf.kernel": "btf.vmlinux",
}


class _MovedModules:
    """A meta path finder: an old module name gives the module under its new one."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
        if not fullname.startswith("pybpfload."):
            return None
        new = _MOVED.get(fullname[len("pybpfload.") :])
        if new is None:
            return None
        from importlib.machinery import ModuleSpec

        return ModuleSpec(fullname, _MovedModules, origin="pybpfload." + new)  # type: ignore[arg-type]

    @staticmethod
    def create_module(spec: Any) -> Any:
        module = importlib.import_module(spec.origin)
        spec.loader_state = module.__spec__
        return module

    @staticmethod
    def exec_module(module: Any) -> None:
        module.__spec__ = module.__spec__.loader_state  # the module keeps its own spec


import sys as _sys  # noqa: E402

_sys.meta_path.append(_MovedModules)  # type: ignore[arg-type]


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'pybpfload' has no attribute {name!r}")
    from ._gc import paused

    with paused():
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
    from .kernel.maps import BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, Map, MapInfo, MapKeyError, possible_cpus  # noqa: F401
    from .btf import Spec  # noqa: F401
    from .syscall.btf_handle import BtfHandle  # noqa: F401
    from .syscall.token import Token  # noqa: F401
    from .link import Link, LinkInfo  # noqa: F401
    from .object import Object  # noqa: F401
    from .events.perfbuf import PerfBuffer  # noqa: F401
    from .kernel.program import Program, ProgramInfo, TestRun  # noqa: F401
    from .events.ringbuf import RecordBatch, RingBuffer, UserRingBuffer  # noqa: F401
    from .syscall import AttachType, Fd, LinkType, MapType, ProgType  # noqa: F401
    from .toolkit.hist import print_linear_hist, print_log2_hist  # noqa: F401
    from .toolkit.symbols import ksym, sym  # noqa: F401
    from .toolkit.syscalls import syscall_name, syscall_number  # noqa: F401
