"""Current libbpf (Debian trixie's or sid's ``libbpf1``) as a second ORACLE, never installed.

The package is downloaded with ``apt-get download`` through the private apt
state the kernel matrix and the corpus already use (``vmtest.kernels``), its
``libbpf.so.1.*`` extracted with ``dpkg-deb -x`` into
``~/.cache/pybpfload-vmtest/libbpf/<suite>/<version>/`` and loaded with
``ctypes.CDLL(path, RTLD_LOCAL)`` by the tests and the real-world sweep only.

Two edits make the library usable in this (bookworm) process beside Debian's
own libbpf 1.1, both in place, nothing else in the file changes:

* trixie and sid build against glibc 2.38+, which redirects ``sscanf``,
  ``fscanf`` and ``strtoull`` to the C23 entry points ``__isoc23_*``
  (versioned GLIBC_2.38); bookworm's glibc 2.36 lacks them.  They are rebound
  to the C99 entry points (``__isoc99_sscanf`` / ``__isoc99_fscanf`` at
  GLIBC_2.7, ``strtoull`` at GLIBC_2.2.5), which differ from the C23 ones only
  in accepting ``0b`` binary literals (libbpf parses /proc and sysfs files,
  kconfig and kallsyms with them: decimal and hex only).
* its SONAME ``libbpf.so.1`` becomes ``libbpf.so.C``: with the real SONAME,
  glibc would hand this library to a later ``CDLL("libbpf.so.1")`` (the 1.1
  oracle) in the same process.

The library's other needs (libelf.so.1 at ELFUTILS_1.0..1.6, libz.so.1 at
ZLIB_1.2.3.3) are met by bookworm's libelf1 and zlib1g; ``load`` checks it by
loading with RTLD_NOW (ctypes' default), which resolves every symbol.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

DEFAULT_SUITE = "trixie"  # stable: the same libbpf (1.5.0) on every CI run; sid moves daily
PACKAGE = "libbpf1"
ENV_PATH = "PYBPFLOAD_CURRENT_LIBBPF"  # a path set here (by .ci/run) wins over the cache

SHT_DYNSYM, SHT_DYNAMIC = 11, 6
SHT_GNU_VERNEED, SHT_GNU_VERSYM = 0x6FFFFFFE, 0x6FFFFFFF
DT_SONAME = 14
VER_FLG_WEAK = 0x2
# C23 entry point -> (C99 entry point, its glibc version)
REBIND: Dict[str, Tuple[str, str]] = {
    "__isoc23_sscanf": ("__isoc99_sscanf", "GLIBC_2.7"),
    "__isoc23_fscanf": ("__isoc99_fscanf", "GLIBC_2.7"),
    "__isoc23_vsscanf": ("__isoc99_vsscanf", "GLIBC_2.7"),
    "__isoc23_strtol": ("strtol", "GLIBC_2.2.5"),
    "__isoc23_strtoul": ("strtoul", "GLIBC_2.2.5"),
    "__isoc23_strtoll": ("strtoll", "GLIBC_2.2.5"),
    "__isoc23_strtoull": ("strtoull", "GLIBC_2.2.5"),
}
NEW_GLIBC = "GLIBC_2.38"
NEW_SONAME = b"libbpf.so.C"


class CurrentLibbpfError(Exception):
    """The current libbpf could not be fetched, adapted or loaded."""


@dataclass(frozen=True)
class Fetched:
    """An extracted, adapted current libbpf."""

    path: Path  # the adapted libbpf.so.1.x.y
    suite: str
    package_version: str  # e.g. 1:1.5.0-3
    rebound: Tuple[str, ...]  # the C23 symbols rebound to C99 ones


def elf_hash(name: bytes) -> int:
    """The SysV ELF hash of a version name (``vna_hash``)."""
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


def _cstr(data: bytes, off: int) -> bytes:
    return data[off : data.index(b"\0", off)]


def adapt(data: bytes) -> Tuple[bytes, List[str]]:
    """``data`` (a libbpf.so built against glibc 2.38+) usable with glibc 2.36; (new bytes, rebound symbols).

    Raises CurrentLibbpfError for an ELF it does not understand or a GLIBC_2.38
    symbol it has no C99 equivalent for.
    """
    out = bytearray(data)
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise CurrentLibbpfError("not a 64-bit little-endian ELF")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]

    def section(kind: int) -> Tuple[int, int, int]:  # (offset, size, linked section's offset)
        for s in secs:
            if s[1] == kind:
                return s[4], s[5], secs[s[6]][4]
        raise CurrentLibbpfError(f"no section of type {kind:#x}")

    dynsym, dynsym_size, dynstr = section(SHT_DYNSYM)
    versym = section(SHT_GNU_VERSYM)[0]
    verneed, _, _ = section(SHT_GNU_VERNEED)
    dynamic, dynamic_size, _ = section(SHT_DYNAMIC)
    # libc.so.6's version needs: name -> (entry offset, index)
    glibc: Dict[bytes, Tuple[int, int]] = {}
    at = verneed
    while True:
        _, cnt, file_off, aux, nxt = struct.unpack_from("<HHIII", data, at)
        if _cstr(data, dynstr + file_off) == b"libc.so.6":
            a = at + aux
            for _ in range(cnt):
                _, _, other, name_off, anext = struct.unpack_from("<IHHII", data, a)
                glibc[_cstr(data, dynstr + name_off)] = (a, other)
                a += anext
        if not nxt:
            break
        at += nxt
    rebound: List[str] = []
    if NEW_GLIBC.encode() in glibc:
        entry, new_index = glibc[NEW_GLIBC.encode()]
        if b"GLIBC_2.7" not in glibc:  # the GLIBC_2.38 need becomes the GLIBC_2.7 one (names in place)
            (name_off,) = struct.unpack_from("<I", data, entry + 8)
            at = dynstr + name_off
            out[at : at + len(NEW_GLIBC) + 1] = b"GLIBC_2.7".ljust(len(NEW_GLIBC) + 1, b"\0")
            struct.pack_into("<I", out, entry, elf_hash(b"GLIBC_2.7"))
            glibc[b"GLIBC_2.7"] = (entry, new_index)
        else:  # no symbol needs it any more: a weak need is not checked
            (flags,) = struct.unpack_from("<H", data, entry + 4)
            struct.pack_into("<H", out, entry + 4, flags | VER_FLG_WEAK)
        for i in range(dynsym_size // 24):
            (vs,) = struct.unpack_from("<H", data, versym + 2 * i)
            if vs & 0x7FFF != new_index:
                continue
            (name_off,) = struct.unpack_from("<I", data, dynsym + 24 * i)
            name = _cstr(data, dynstr + name_off).decode()
            if name not in REBIND:
                raise CurrentLibbpfError(f"{name}@{NEW_GLIBC} has no equivalent in glibc 2.36")
            target, version = REBIND[name]
            if target.startswith("__isoc99_"):  # same length: rewritten in place
                out[dynstr + name_off : dynstr + name_off + len(name)] = target.encode()
            else:  # "__isoc23_strtoull" ends with "strtoull": point at the tail
                struct.pack_into("<I", out, dynsym + 24 * i, name_off + len(name) - len(target))
            struct.pack_into("<H", out, versym + 2 * i, glibc[version.encode()][1])
            rebound.append(name)
    for at in range(dynamic, dynamic + dynamic_size, 16):
        tag, val = struct.unpack_from("<qQ", data, at)
        if tag == DT_SONAME:
            old = _cstr(data, dynstr + val)
            if len(old) != len(NEW_SONAME):
                raise CurrentLibbpfError(f"unexpected SONAME {old!r}")
            out[dynstr + val : dynstr + val + len(old)] = NEW_SONAME
    return bytes(out), rebound


def default_cache() -> Path:
    from vmtest.kernels import default_cache as vmtest_cache

    return vmtest_cache() / "libbpf"


def cached(suite: str = DEFAULT_SUITE, cache: Optional[Path] = None) -> Optional[Fetched]:
    """The newest already-extracted libbpf of ``suite``, without any network."""
    base = (cache or default_cache()) / suite
    found = sorted(base.glob("*/meta.json"), key=lambda p: p.stat().st_mtime)
    for meta_path in reversed(found):
        meta = json.loads(meta_path.read_text())
        path = meta_path.parent / meta["file"]
        if path.exists():
            return Fetched(path, suite, meta["package_version"], tuple(meta["rebound"]))
    return None


def fetch(suite: str = DEFAULT_SUITE, cache: Optional[Path] = None) -> Fetched:
    """Download ``suite``'s libbpf1 (if the cached one is not its current version), extract and adapt it."""
    from vmtest.kernels import AptSuite, KernelSpec, VMTestError, system_archive_uris

    cache = cache or default_cache()
    try:
        uris = system_archive_uris()
        if "debian" not in uris:
            raise CurrentLibbpfError("this machine's apt reaches no Debian archive")
        apt = AptSuite(KernelSpec(suite, suite, "debian"), cache.parent / "apt" / suite, uris["debian"])
        apt.update()
        version = apt.show(PACKAGE)["Version"]
        target = cache / suite / version.replace(":", "%3a")
        have = cached(suite, cache)
        if have and have.package_version == version:
            return have
        with tempfile.TemporaryDirectory(prefix="libbpf-current-") as tmp:
            (deb,) = apt.download([PACKAGE], Path(tmp) / "deb")
            root = Path(tmp) / "root"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, capture_output=True)
            libs = [p for p in root.rglob("libbpf.so.1.*") if p.is_file() and not p.is_symlink()]
            if len(libs) != 1:
                raise CurrentLibbpfError(f"{deb.name} holds {[str(p) for p in libs]}, not one libbpf.so.1.*")
            data, rebound = adapt(libs[0].read_bytes())
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            (target / libs[0].name).write_bytes(data)
            (target / "meta.json").write_text(json.dumps(
                {"file": libs[0].name, "package_version": version, "suite": suite, "deb": deb.name,
                 "rebound": rebound}, indent=1) + "\n")  # fmt: skip
    except VMTestError as e:
        raise CurrentLibbpfError(str(e)) from e
    for old in (cache / suite).iterdir():  # keep one version per suite
        if old != target and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    found = cached(suite, cache)
    assert found is not None
    return found


def locate(suite: str = DEFAULT_SUITE, network: bool = True) -> Fetched:
    """$PYBPFLOAD_CURRENT_LIBBPF, else the cached library of ``suite``, else (``network``) a fresh fetch."""
    env = os.environ.get(ENV_PATH)
    if env:
        path = Path(env)
        if not path.exists():
            raise CurrentLibbpfError(f"${ENV_PATH} names {env}, which does not exist")
        meta = path.parent / "meta.json"
        info = json.loads(meta.read_text()) if meta.exists() else {}
        return Fetched(path, info.get("suite", "?"), info.get("package_version", "?"), tuple(info.get("rebound", ())))
    have = cached(suite)
    if have:
        return have
    if not network:
        raise CurrentLibbpfError(f"no cached libbpf of {suite} (python -m realworld libbpf fetches it)")
    return fetch(suite)


def load(path: Path) -> ctypes.CDLL:
    """The library at ``path`` in its own RTLD_LOCAL namespace slot, every symbol resolved now."""
    try:
        return ctypes.CDLL(str(path), mode=os.RTLD_LOCAL | os.RTLD_NOW, use_errno=True)
    except OSError as e:
        raise CurrentLibbpfError(f"cannot load {path}: {e}") from e


def version(lib: ctypes.CDLL) -> str:
    """``libbpf_version_string()`` (e.g. "v1.5"), checked against the major / minor numbers."""
    lib.libbpf_major_version.restype = ctypes.c_uint32
    lib.libbpf_minor_version.restype = ctypes.c_uint32
    lib.libbpf_version_string.restype = ctypes.c_char_p
    text = lib.libbpf_version_string().decode()
    assert text == f"v{lib.libbpf_major_version()}.{lib.libbpf_minor_version()}", text
    return text


def main(suite: str, offline: bool, print_path: bool) -> int:
    """Fetch (or, ``offline``, find) and load the library; describe it (on stderr and its path on stdout with ``print_path``)."""
    try:
        got = locate(suite, network=False) if offline else fetch(suite)
        lib = load(got.path)
    except CurrentLibbpfError as e:
        print(f"realworld: current libbpf: {e}", file=sys.stderr)
        return 1
    print(f"realworld: libbpf {version(lib)} ({got.suite} {PACKAGE} {got.package_version}, "
          f"rebound {', '.join(got.rebound) or 'nothing'}) at {got.path}",
          file=sys.stderr if print_path else sys.stdout)  # fmt: skip
    if print_path:
        print(got.path)
    return 0
