"""The running kernel's own BTF, read from /sys/kernel/btf: vmlinux and the
split BTF of loaded modules, decoded once per process.  No syscalls: BTF
objects loaded in the kernel are :mod:`pybpfload.syscall.btf_handle`'s.
"""

from __future__ import annotations

import os
import _thread  # allocate_lock is threading.Lock, without importing threading (~1 ms)
from typing import Dict, Iterator, Optional

from ..errors import BTFError
from .spec import Spec

SYSFS_BTF = "/sys/kernel/btf"
VMLINUX_PATH = SYSFS_BTF + "/vmlinux"


# ---------------------------------------------------------------- kernel BTF
_lock = _thread.allocate_lock()
_vmlinux: Optional[Spec] = None
_modules: Dict[str, Spec] = {}


def vmlinux_spec(path: Optional[str] = None) -> Spec:
    """The running kernel's BTF, decoded once per process (indexed lazily).

    ``path`` overrides /sys/kernel/btf/vmlinux (and is not cached).
    """
    global _vmlinux
    if path is not None:
        return Spec.from_file(path)
    with _lock:
        if _vmlinux is None:
            if not os.path.exists(VMLINUX_PATH):
                from ..errors import NotSupportedError

                raise NotSupportedError("kernel BTF", f"{VMLINUX_PATH} does not exist (CONFIG_DEBUG_INFO_BTF)")
            _vmlinux = Spec.from_file(VMLINUX_PATH)
        return _vmlinux


def module_spec(name: str) -> Spec:
    """The split BTF of a loaded kernel module (from /sys/kernel/btf/NAME)."""
    if "/" in name or name in ("", ".", "..", "vmlinux"):
        raise BTFError(f"bad kernel module name {name!r}")
    with _lock:
        spec = _modules.get(name)
    if spec is None:
        base = vmlinux_spec()
        spec = Spec.from_file(os.path.join(SYSFS_BTF, name), base)
        with _lock:
            _modules.setdefault(name, spec)
    return spec


def kernel_modules_with_btf() -> Iterator[str]:
    """Names of loaded modules that have BTF."""
    try:
        names = sorted(os.listdir(SYSFS_BTF))
    except OSError:
        return
    for n in names:
        if n != "vmlinux":
            yield n


__all__ = [
    "vmlinux_spec",
    "module_spec",
    "kernel_modules_with_btf",
    "VMLINUX_PATH",
]
