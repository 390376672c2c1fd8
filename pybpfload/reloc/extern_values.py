"""Values of an object's ``extern`` symbols: ``__kconfig`` and ``__ksym`` (kernel symbols, kfuncs).

libbpf's bpf_object__resolve_externs, split in two:

* :func:`kconfig_values` — pure: the kconfig text (/proc/config.gz, a
  /boot/config file or the ``kconfig`` open option) and the externs in, the
  bytes of the ``.kconfig`` map out;
* :func:`resolve_ksyms` — the kernel's answers: addresses from
  /proc/kallsyms for untyped ksyms, BTF ids from vmlinux (then module) BTF
  for typed ksyms and kfuncs.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import log
from ..abi.record import Record, _set
from ..btf import types as T
from ..elf.model import ExternKind, ExternSpec, KcfgType
from ..errors import BPFError, NotSupportedError

__all__ = ["KsymValue", "kconfig_values", "read_system_kconfig", "resolve_ksyms", "kallsyms"]

TRI_NO, TRI_YES, TRI_MODULE = 0, 1, 2


class ExternError(BPFError):
    """An extern that cannot be given a value."""


def read_system_kconfig() -> str:
    """The running kernel's config: /boot/config-$(uname -r), else /proc/config.gz."""
    release = os.uname().release
    path = f"/boot/config-{release}"
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        pass
    try:
        import gzip  # only here: ~0.6 ms of every start-up otherwise

        with gzip.open("/proc/config.gz", "rt") as f:
            return f.read()
    except OSError as e:
        raise NotSupportedError("kernel config", f"neither {path} nor /proc/config.gz can be read ({e.strerror})") from None


def _parse_config(text: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("CONFIG_"):
            continue
        name, sep, value = line.partition("=")
        if sep and value:
            out.setdefault(name, value)
    return out


def _set_value(ext: ExternSpec, buf: bytearray, raw: str) -> None:
    off, size = ext.kcfg_offset, ext.kcfg_size
    t = ext.kcfg_type
    if raw in ("y", "n", "m"):
        if t is KcfgType.BOOL:
            if raw == "m":
                raise ExternError(f"extern (kcfg) {ext.name!r}: value 'm' implies tristate or char type")
            buf[off] = 1 if raw == "y" else 0
        elif t is KcfgType.TRISTATE:
            v = {"y": TRI_YES, "m": TRI_MODULE, "n": TRI_NO}[raw]
            buf[off : off + size] = v.to_bytes(size, "little")
        elif t is KcfgType.CHAR:
            buf[off] = ord(raw)
        else:
            raise ExternError(f"extern (kcfg) {ext.name!r}: value {raw!r} implies bool, tristate or char type")
        return
    if raw.startswith('"'):
        if t is not KcfgType.CHAR_ARR:
            raise ExternError(f"extern (kcfg) {ext.name!r}: a string value needs a char array")
        if len(raw) < 2 or not raw.endswith('"'):
            raise ExternError(f"extern (kcfg) {ext.name!r}: invalid string value {raw!r}")
        s = raw[1:-1].encode()
        if len(s) >= size:
            log.warn("extern (kcfg) '%s': long string value %r truncated to %d bytes", ext.name, raw, size - 1)
            s = s[: size - 1]
        buf[off : off + len(s) + 1] = s + b"\0"  # as libbpf: the string and its NUL, no padding written
        return
    try:
        num = int(raw, 0)
    except ValueError:
        raise ExternError(f"extern (kcfg) {ext.name!r}: cannot read value {raw!r}") from None
    _set_num(ext, buf, num)


def _set_num(ext: ExternSpec, buf: bytearray, num: int) -> None:
    """A numeric value into an int, char or bool extern, range-checked as libbpf's set_kcfg_value_num."""
    off, size, t = ext.kcfg_offset, ext.kcfg_size, ext.kcfg_type
    if t not in (KcfgType.INT, KcfgType.CHAR, KcfgType.BOOL):
        raise ExternError(f"extern (kcfg) {ext.name!r}: value {num} needs an integer, char or bool type")
    bits = size * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if ext.kcfg_signed else (0, (1 << bits) - 1)
    if t is KcfgType.BOOL:
        lo, hi = 0, 1
    if not lo <= num <= hi:
        raise ExternError(f"extern (kcfg) {ext.name!r}: value {num} does not fit in {size} bytes")
    buf[off : off + size] = (num & ((1 << bits) - 1)).to_bytes(size, "little")


def kconfig_values(
    externs: Sequence[ExternSpec],
    size: int,
    *,
    config_text: Optional[Callable[[], str]] = None,
    kernel_version: int = 0,
    has_bpf_cookie: Callable[[], bool] = lambda: False,
    has_syscall_wrapper: Callable[[], bool] = lambda: False,
) -> bytes:
    """The contents of the ``.kconfig`` map.

    ``config_text`` is called only when a ``CONFIG_*`` extern needs it.
    Strong externs without a value raise :class:`ExternError`; weak ones stay 0.
    """
    buf = bytearray(size)
    kexts = [e for e in externs if e.kind is ExternKind.KCONFIG]
    config: Optional[Dict[str, str]] = None
    for e in kexts:
        if e.name.startswith("LINUX_"):
            # libbpf's virtual externs: any int / char / bool type that holds the value
            # (programs declare LINUX_HAS_SYSCALL_WRAPPER as bool or int); an unknown
            # weak LINUX_* stays 0 like a missing CONFIG_*.
            if e.name == "LINUX_KERNEL_VERSION":
                _set_num(e, buf, kernel_version)
            elif e.name == "LINUX_HAS_BPF_COOKIE":
                _set_num(e, buf, int(has_bpf_cookie()))
            elif e.name == "LINUX_HAS_SYSCALL_WRAPPER":
                _set_num(e, buf, int(has_syscall_wrapper()))
            elif not e.is_weak:
                raise ExternError(f"extern (kcfg) {e.name!r}: unrecognized virtual extern")
            log.debug("extern (kcfg) '%s' set", e.name)
            continue
        if not e.name.startswith("CONFIG_"):
            raise ExternError(f"extern (kcfg) {e.name!r}: kconfig externs are CONFIG_* or LINUX_*")
        if config is None:
            if config_text is None:
                raise ExternError(f"extern (kcfg) {e.name!r}: no kernel config available")
            config = _parse_config(config_text())
        raw = config.get(e.name)
        if raw is None:
            if not e.is_weak:
                raise ExternError(f"extern (kcfg) {e.name!r}: strong extern not found in the kernel config")
            log.debug("extern (kcfg) '%s': weak, not set, defaulting to zero", e.name)
            continue
        _set_value(e, buf, raw)
        log.debug("extern (kcfg) '%s' = %s", e.name, raw)
    return bytes(buf)


def kallsyms(names: Iterable[str], path: str = "/proc/kallsyms") -> Dict[str, int]:
    """Addresses of the given symbols in /proc/kallsyms (module suffixes ignored)."""
    want = set(names)
    out: Dict[str, int] = {}
    if not want:
        return out
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] in want:
                    addr = int(parts[0], 16)
                    prev = out.get(parts[2])
                    if prev is not None and prev != addr:
                        raise ExternError(f"extern (ksym) {parts[2]!r}: several addresses in {path}")
                    out[parts[2]] = addr
    except OSError as e:
        raise NotSupportedError("/proc/kallsyms", e.strerror or "") from None
    return out


class KsymValue(Record):
    """What a ksym extern resolves to."""

    __slots__ = _fields = ("addr", "btf_id", "btf_obj", "resolved")
    addr: int  # untyped ksym: the kernel address
    btf_id: int  # typed ksym / kfunc: id in the kernel BTF that has it (0: unresolved weak)
    btf_obj: str  # "vmlinux" or the module whose BTF has it
    resolved: bool

    def __init__(self, addr: int = 0, btf_id: int = 0, btf_obj: str = "vmlinux", resolved: bool = True) -> None:
        _set(self, "addr", addr)
        _set(self, "btf_id", btf_id)
        _set(self, "btf_obj", btf_obj)
        _set(self, "resolved", resolved)


# (module name or "vmlinux", spec) pairs, vmlinux first
KernelBtfs = Callable[[], Iterable[Tuple[str, object]]]


def resolve_ksyms(
    externs: Sequence[ExternSpec],
    kernel_btfs: KernelBtfs,
    local_btf: Optional[object] = None,
    kallsyms_lookup: Optional[Callable[[Iterable[str]], Mapping[str, int]]] = None,
) -> Dict[str, KsymValue]:
    """Resolve every ksym extern; strong ones that are missing raise :class:`ExternError`."""
    out: Dict[str, KsymValue] = {}
    ksyms = [e for e in externs if e.kind is ExternKind.KSYM]
    untyped = [e for e in ksyms if not e.is_func and e.ksym_type_id == 0]
    if untyped:
        addrs = (kallsyms_lookup or kallsyms)(e.name for e in untyped)
        for e in untyped:
            a = addrs.get(e.name)
            if a is None:
                if not e.is_weak:
                    raise ExternError(f"extern (ksym) {e.name!r}: not found in /proc/kallsyms")
                out[e.name] = KsymValue(resolved=False)
            else:
                out[e.name] = KsymValue(addr=a)
            log.debug("extern (ksym) '%s': addr %#x", e.name, out[e.name].addr)
    typed = [e for e in ksyms if e.is_func or e.ksym_type_id != 0]
    if not typed:
        return out
    # module BTFs are parsed only when vmlinux lacks a symbol, and once
    seen: List[Tuple[str, object]] = []
    source = iter(kernel_btfs())

    def btfs() -> Iterable[Tuple[str, object]]:
        yield from seen
        for item in source:
            seen.append(item)
            yield item

    for e in typed:
        want = T.Kind.FUNC if e.is_func else T.Kind.VAR
        name = e.essent_name if e.is_func else e.name
        found: Optional[KsymValue] = None
        for obj_name, spec in btfs():
            for tid in spec.find_ids(name):  # type: ignore[attr-defined]
                if tid >= getattr(spec, "first_id", 1) and spec.kind_of(tid) == want:  # type: ignore[attr-defined]
                    found = KsymValue(btf_id=tid, btf_obj=obj_name)
                    break
            if found is not None:
                break
        if found is None:
            what = "func ksym" if e.is_func else "typed ksym"
            if not e.is_weak:
                raise ExternError(f"extern ({what}) {e.name!r}: not found in kernel or module BTFs")
            found = KsymValue(resolved=False)
        out[e.name] = found
        log.debug("extern (%s) '%s': %s [%d]", "kfunc" if e.is_func else "ksym", e.name, found.btf_obj, found.btf_id)
    return out
