"""Multi probes: uprobe.multi / uretprobe.multi / uprobe.session and
kprobe.multi / kretprobe.multi / kprobe.session, one BPF_LINK_CREATE for
many functions (libbpf's bpf_program__attach_uprobe_multi and
bpf_program__attach_kprobe_multi_opts).

Targets are resolved here, without syscalls, as libbpf resolves them:

- uprobes: a glob pattern (``*`` and ``?``, libbpf's glob_match) over the
  STT_FUNC symbols of one binary — ``.symtab`` first, ``.dynsym`` only when
  ``.symtab`` matched nothing — or explicit symbol names (each must be
  defined in that binary), or file offsets;
- kprobes: a glob pattern over tracefs ``available_filter_functions_addrs``
  (else ``available_filter_functions`` intersected with ``/proc/kallsyms``),
  a pattern without wildcards passed to the kernel as one symbol, or
  explicit symbols / addresses.

Kernels: uprobe_multi links need Linux 6.6, kprobe_multi 5.18 built with
CONFIG_FPROBE (the host this was written on has none: the kernel answers
EOPNOTSUPP, which becomes NotSupportedError), kprobe sessions 6.10,
uprobe sessions 6.13.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from ..errors import BPFError, BPFOSError, NotSupportedError, SyscallError
from ..abi import uapi as t
from ._attach_cmd import ENOTSUPP, kernel_at_least, link_create, link_create_attr
from .base import Link, hook, prog_fd_of
from .elfsym import _MAX_SYMBOLS, _open_elf, find_binary, symbol_offset
from .tracefs import tracefs_root

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = [
    "MultiProbeLink",
    "MultiAttr",
    "attach_uprobe_multi",
    "attach_kprobe_multi",
    "uprobe_multi_attr",
    "kprobe_multi_attr",
    "uprobe_multi_offsets",
    "kprobe_multi_addrs",
    "glob_match",
    "parse_kprobe_multi_section",
    "parse_uprobe_multi_section",
    "kprobe_multi_support",
    "uprobe_multi_support",
    "BPF_F_KPROBE_MULTI_RETURN",
    "BPF_F_UPROBE_MULTI_RETURN",
]

BPF_F_KPROBE_MULTI_RETURN = 1 << 0
BPF_F_UPROBE_MULTI_RETURN = 1 << 0

AT = t.AttachType


# ---------------------------------------------------------------- matching
def glob_match(name: str, pattern: str) -> bool:
    """libbpf's glob_match: ``*`` any run of characters, ``?`` one character, nothing else special.

    (fnmatch would also treat ``[...]`` as a class; libbpf does not.)
    """
    n, p = 0, 0
    star_p, star_n = -1, 0
    while n < len(name):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == name[n]):
            n += 1
            p += 1
        elif p < len(pattern) and pattern[p] == "*":
            star_p, star_n = p, n
            p += 1
        elif star_p >= 0:
            star_n += 1
            n, p = star_n, star_p + 1
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


# ---------------------------------------------------------------- uprobe targets
def uprobe_multi_offsets(path: str, pattern: str) -> List[int]:
    """File offsets of the functions of ``path`` whose names match ``pattern``.

    As libbpf's elf_resolve_pattern_offsets: STT_FUNC symbols of ``.symtab``,
    and of ``.dynsym`` only when ``.symtab`` matched nothing (the same
    functions would be counted twice); symbol order, aliases kept.  One
    difference on purpose: undefined symbols (imports) are skipped — they
    have no code in this file, libbpf would pass offset 0.
    """
    from elftools.common.exceptions import ELFError as _PyELFError

    from ..errors import ELFError

    try:
        with open(path, "rb") as f:
            elf = _open_elf(path, f)
            for table in (".symtab", ".dynsym"):
                sec = elf.get_section_by_name(table)
                if sec is None or sec.header["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM"):
                    continue
                if sec.num_symbols() > _MAX_SYMBOLS:
                    raise ELFError(f"{path}: {table} claims {sec.num_symbols()} symbols")
                found: List[int] = []
                for sym in sec.iter_symbols():
                    shndx = sym["st_shndx"]
                    if sym["st_info"]["type"] != "STT_FUNC" or not isinstance(shndx, int) or shndx == 0:
                        continue
                    if glob_match(sym.name, pattern):
                        s = elf.get_section(shndx)
                        found.append(sym["st_value"] - s["sh_addr"] + s["sh_offset"])
                if found:
                    return found
    except OSError as e:
        raise BPFOSError(e.errno or errno.EIO, f"cannot read {path!r}", filename=path) from None
    except (_PyELFError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise ELFError(f"{path}: malformed ELF file: {e}") from e
    raise BPFOSError(errno.ENOENT, f"{path}: no function matches {pattern!r}")


# ---------------------------------------------------------------- kprobe targets
def _tracefs_file(name: str, root: Optional[str]) -> str:
    base = root if root is not None else tracefs_root()
    assert base is not None
    return os.path.join(base, name)


def kprobe_multi_addrs(pattern: str, *, tracefs: Optional[str] = None, kallsyms: str = "/proc/kallsyms") -> List[int]:
    """Kernel addresses of the traceable functions matching ``pattern`` (libbpf's resolution).

    ``available_filter_functions_addrs`` (Linux 6.5+) when present; else the
    names in ``available_filter_functions`` looked up in ``kallsyms`` (a
    ``.llvm.<hash>`` suffix in kallsyms ignored, as libbpf).  ENOENT when
    nothing matches.  ``tracefs`` / ``kallsyms`` point elsewhere for tests.
    """
    addrs_file = _tracefs_file("available_filter_functions_addrs", tracefs)
    out: List[int] = []
    if os.path.exists(addrs_file):
        for line in _read_lines(addrs_file):
            parts = line.split()
            if len(parts) < 2:
                raise BPFError(f"{addrs_file}: cannot parse {line!r}")
            if glob_match(parts[1], pattern):
                out.append(int(parts[0], 16))
    else:
        names_file = _tracefs_file("available_filter_functions", tracefs)
        names = {line.split()[0] for line in _read_lines(names_file) if line.strip() and glob_match(line.split()[0], pattern)}
        if names:
            for line in _read_lines(kallsyms):
                parts = line.split()
                if len(parts) < 3 or not glob_match(parts[2], pattern):
                    continue
                sym = parts[2]
                if sym not in names and sym.split(".llvm.", 1)[0] not in names:
                    continue
                out.append(int(parts[0], 16))
    if not out:
        raise BPFOSError(errno.ENOENT, f"no traceable kernel function matches {pattern!r}")
    return out


def _read_lines(path: str) -> List[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError as e:
        raise BPFOSError(e.errno or errno.EIO, f"cannot read the kernel's traceable functions from {path}", filename=path) from None


# ---------------------------------------------------------------- attributes
class MultiAttr:
    """LINK_CREATE attributes and the arrays they point at (kept alive with them)."""

    __slots__ = ("attr", "keep")

    def __init__(self, attr: t.LinkCreateAttr, keep: Optional[List[Any]] = None) -> None:
        self.attr = attr
        self.keep: List[Any] = [] if keep is None else keep

    def __repr__(self) -> str:
        return f"MultiAttr(attr={self.attr!r}, keep={self.keep!r})"


def _u64s(values: Optional[Sequence[int]], what: str, cnt: int, keep: List[Any]) -> int:
    if values is None:
        return 0
    if len(values) != cnt:
        raise ValueError(f"{what}: {len(values)} values for {cnt} probes")
    arr = (ctypes.c_uint64 * cnt)(*[int(v) & 0xFFFFFFFFFFFFFFFF for v in values])
    keep.append(arr)
    return ctypes.addressof(arr)


def uprobe_multi_attr(
    prog_fd: int,
    path: str,
    offsets: Sequence[int],
    *,
    ref_ctr_offsets: Optional[Sequence[int]] = None,
    cookies: Optional[Sequence[int]] = None,
    retprobe: bool = False,
    session: bool = False,
    pid: int = -1,
) -> MultiAttr:
    """``link_create.uprobe_multi`` for ``offsets`` in ``path`` (pid <= -1: every process; 0: this one)."""
    if retprobe and session:
        raise ValueError("a uprobe session is entry and return at once: retprobe must be False")
    cnt = len(offsets)
    if cnt == 0:
        raise ValueError("uprobe multi: no offsets")
    keep: List[Any] = []
    cpath = ctypes.create_string_buffer(os.fsencode(path))
    keep.append(cpath)
    if pid == 0:
        pid = os.getpid()  # libbpf: pid 0 means the calling process
    attr = link_create_attr(
        prog_fd,
        0,
        AT.BPF_TRACE_UPROBE_SESSION if session else AT.BPF_TRACE_UPROBE_MULTI,
        uprobe_multi={
            "path": ctypes.addressof(cpath),
            "offsets": _u64s(offsets, "offsets", cnt, keep),
            "ref_ctr_offsets": _u64s(ref_ctr_offsets, "ref_ctr_offsets", cnt, keep),
            "cookies": _u64s(cookies, "cookies", cnt, keep),
            "cnt": cnt,
            "flags": BPF_F_UPROBE_MULTI_RETURN if retprobe else 0,
            "pid": pid if pid > 0 else 0,
        },
    )
    return MultiAttr(attr, keep)


def kprobe_multi_attr(
    prog_fd: int,
    *,
    syms: Optional[Sequence[str]] = None,
    addrs: Optional[Sequence[int]] = None,
    cookies: Optional[Sequence[int]] = None,
    retprobe: bool = False,
    session: bool = False,
) -> MultiAttr:
    """``link_create.kprobe_multi`` for symbols or addresses (exactly one of them)."""
    if (syms is None) == (addrs is None):
        raise ValueError("kprobe multi: give symbols or addresses (one of them)")
    if retprobe and session:
        raise ValueError("a kprobe session is entry and return at once: retprobe must be False")
    keep: List[Any] = []
    fields: Dict[str, Any] = {"flags": BPF_F_KPROBE_MULTI_RETURN if retprobe else 0}
    if syms is not None:
        cnt = len(syms)
        bufs = [ctypes.create_string_buffer(s.encode()) for s in syms]
        ptrs = (ctypes.c_char_p * cnt)(*[ctypes.addressof(b) for b in bufs])  # type: ignore[misc]
        keep += [bufs, ptrs]
        fields["syms"] = ctypes.addressof(ptrs)
    else:
        assert addrs is not None
        cnt = len(addrs)
        fields["addrs"] = _u64s(addrs, "addrs", cnt, keep)
    if cnt == 0:
        raise ValueError("kprobe multi: no functions")
    fields["cnt"] = cnt
    fields["cookies"] = _u64s(cookies, "cookies", cnt, keep)
    attach_type = AT.BPF_TRACE_KPROBE_SESSION if session else AT.BPF_TRACE_KPROBE_MULTI
    return MultiAttr(link_create_attr(prog_fd, 0, attach_type, kprobe_multi=fields), keep)


# ---------------------------------------------------------------- links
class MultiProbeLink(Link):
    """A uprobe_multi or kprobe_multi link, with what it was resolved to.

    ``path`` and ``offsets`` (uprobes) or ``syms`` / ``addrs`` (kprobes) and
    ``cookies`` are what was passed to the kernel, in that order.
    """

    def __init__(self, fd: Any, program: Optional["ProgramLike"], *, kind: str, target: str, **resolved: Any) -> None:
        super().__init__(fd, program, kind=kind, target=target)
        self.path: Optional[str] = resolved.get("path")
        self.offsets: Tuple[int, ...] = tuple(resolved.get("offsets") or ())
        self.syms: Tuple[str, ...] = tuple(resolved.get("syms") or ())
        self.addrs: Tuple[int, ...] = tuple(resolved.get("addrs") or ())
        self.cookies: Tuple[int, ...] = tuple(resolved.get("cookies") or ())


def _session_default(prog: Any, session: Optional[bool], session_type: int) -> bool:
    if session is not None:
        return session
    return not isinstance(prog, int) and int(getattr(prog, "expected_attach_type", 0) or 0) == int(session_type)


def _create(ma: MultiAttr, prog: Any, kind: str, what: str, *, since: Tuple[int, int], no_such: bool = False) -> Any:
    """LINK_CREATE; "not supported" answers become NotSupportedError saying why."""
    name = getattr(prog, "name", None)
    try:
        return link_create(ma.attr, what=f"{kind} {what}")
    except SyscallError as e:
        err = e.errno or 0
        if no_such and err == errno.ESRCH:
            # as libbpf: the kernel's "no such symbol" (it looked the names up itself) becomes ENOENT
            raise SyscallError(errno.ENOENT, "BPF_LINK_CREATE", name, detail=f"{kind} {what!r}: no such kernel function") from None
        feature = kind.replace("_", " ") + " links"
        old = not kernel_at_least(since)
        if err in (errno.EOPNOTSUPP, ENOTSUPP) or (old and err in (errno.EINVAL, errno.EPERM)):
            if old:
                why = f"they need Linux {since[0]}.{since[1]}+"
            elif kind.startswith("k"):
                why = "the kernel is built without CONFIG_FPROBE"
            else:
                why = "the kernel is built without them"
            raise NotSupportedError(feature, f"{why} (BPF_LINK_CREATE: {os.strerror(err)}, errno {errno.errorcode.get(err, err)})") from None
        raise


def _check_count(what: str, n: int, given: Optional[Sequence[Any]], name: str) -> None:
    if given is not None and len(given) != n:
        raise ValueError(f"{what}: {len(given)} {name} for {n} probes")


@hook("uprobe_multi", t.ProgType.BPF_PROG_TYPE_KPROBE)
def attach_uprobe_multi(
    prog: "ProgramLike",
    binary: str,
    pattern: Optional[str] = None,
    *,
    syms: Optional[Sequence[str]] = None,
    offsets: Optional[Sequence[int]] = None,
    ref_ctr_offsets: Optional[Sequence[int]] = None,
    cookies: Optional[Sequence[int]] = None,
    pid: int = -1,
    retprobe: bool = False,
    session: Optional[bool] = None,
) -> MultiProbeLink:
    """Attach a uprobe.multi / uretprobe.multi / uprobe.session program to many functions of ``binary``.

    Either ``pattern`` (a glob over the binary's function names), or
    ``syms`` or ``offsets`` (file offsets) with optional ``cookies`` and
    ``ref_ctr_offsets``, one per function — libbpf's two exclusive ways.
    ``pid`` -1 traces every process, 0 this one, else that process.
    ``session`` (attach type uprobe_session) runs the program at entry and,
    when it returned 0, at return; None (the default) takes it from the
    program's expected attach type (SEC("uprobe.session")) — libbpf's
    default is False, which the kernel would refuse for such a program.
    """
    prog_fd = prog_fd_of(prog)
    session = _session_default(prog, session, AT.BPF_TRACE_UPROBE_SESSION)
    kind = "uprobe_session" if session else ("uretprobe_multi" if retprobe else "uprobe_multi")
    if retprobe and session:
        raise ValueError(f"{kind}: retprobe and session exclude each other")
    if pattern is not None:
        if syms is not None or offsets is not None or ref_ctr_offsets is not None or cookies is not None:
            raise ValueError(f"{kind}: a pattern excludes syms, offsets, ref_ctr_offsets and cookies (as libbpf)")
    elif (syms is None) == (offsets is None):
        raise ValueError(f"{kind}: give a pattern, or syms or offsets (one of them)")
    path = find_binary(binary)
    if pattern is not None:
        offs = uprobe_multi_offsets(path, pattern)
        what = f"{path}:{pattern}"
    elif syms is not None:
        offs = [symbol_offset(path, s) for s in syms]
        what = f"{path}:{','.join(syms)}"
    else:
        assert offsets is not None
        offs = [int(o) for o in offsets]
        what = f"{path}:{','.join(hex(o) for o in offs)}"
    for name, given in (("cookies", cookies), ("ref_ctr_offsets", ref_ctr_offsets)):
        _check_count(kind, len(offs), given, name)
    ma = uprobe_multi_attr(prog_fd, path, offs, ref_ctr_offsets=ref_ctr_offsets, cookies=cookies, retprobe=retprobe, session=session, pid=pid)
    fd = _create(ma, prog, kind, what, since=(6, 13) if session else (6, 6))
    return MultiProbeLink(fd, prog if not isinstance(prog, int) else None, kind=kind, target=what, path=path, offsets=offs, cookies=cookies)


@hook("kprobe_multi", t.ProgType.BPF_PROG_TYPE_KPROBE)
def attach_kprobe_multi(
    prog: "ProgramLike",
    pattern: Optional[str] = None,
    *,
    syms: Optional[Sequence[str]] = None,
    addrs: Optional[Sequence[int]] = None,
    cookies: Optional[Sequence[int]] = None,
    retprobe: bool = False,
    unique_match: bool = False,
    session: Optional[bool] = None,
    tracefs: Optional[str] = None,
) -> MultiProbeLink:
    """Attach a kprobe.multi / kretprobe.multi / kprobe.session program to many kernel functions.

    Either ``pattern`` (a glob over the traceable functions; without
    wildcards it is passed as the one symbol, as libbpf does) or ``syms`` /
    ``addrs`` with optional ``cookies``, one per function.  ``unique_match``
    requires the pattern to match exactly one function.  ``session`` None
    takes it from the program's expected attach type (SEC("kprobe.session")).
    """
    prog_fd = prog_fd_of(prog)
    session = _session_default(prog, session, AT.BPF_TRACE_KPROBE_SESSION)
    kind = "kprobe_session" if session else ("kretprobe_multi" if retprobe else "kprobe_multi")
    if retprobe and session:
        raise ValueError(f"{kind}: retprobe and session exclude each other")
    if pattern is not None:
        if syms is not None or addrs is not None or cookies is not None:
            raise ValueError(f"{kind}: a pattern excludes syms, addrs and cookies (as libbpf)")
    elif (syms is None) == (addrs is None):
        raise ValueError(f"{kind}: give a pattern, or syms or addrs (one of them)")
    if syms is not None:
        dup = sorted({s for s in syms if list(syms).count(s) > 1})
        if dup:
            # the kernel would answer ESRCH: it sorts the names and finds each once
            raise ValueError(f"{kind}: symbols given more than once: {', '.join(dup)}")
    if pattern is not None and not _has_wildcard(pattern) and not unique_match:
        syms = [pattern]
    elif pattern is not None:
        addrs = kprobe_multi_addrs(pattern, tracefs=tracefs)
        if unique_match and len(addrs) != 1:
            raise BPFOSError(errno.EINVAL, f"{kind}: {pattern!r} matches {len(addrs)} functions, not exactly one")
    n = len(syms if syms is not None else addrs or ())
    _check_count(kind, n, cookies, "cookies")
    what = pattern if pattern is not None else ",".join(syms) if syms is not None else f"{n} addresses"
    ma = kprobe_multi_attr(prog_fd, syms=syms, addrs=addrs, cookies=cookies, retprobe=retprobe, session=session)
    fd = _create(ma, prog, kind, what, since=(6, 10) if session else (5, 18), no_such=True)
    return MultiProbeLink(fd, prog if not isinstance(prog, int) else None, kind=kind, target=what, syms=syms, addrs=addrs, cookies=cookies)


# ---------------------------------------------------------------- section names
def parse_kprobe_multi_section(base: str, target: str) -> Dict[str, Any]:
    """Options for :func:`attach_kprobe_multi` from SEC("kprobe.multi/PATTERN") (libbpf's attach_kprobe_multi).

    libbpf keeps the leading run of ``[a-zA-Z0-9_.*?]`` of the pattern.
    """
    n = 0
    while n < len(target) and (target[n].isalnum() and target[n].isascii() or target[n] in "_.*?"):
        n += 1
    if n == 0:
        raise BPFError(f"kprobe multi pattern is invalid: {target!r}")
    return {"pattern": target[:n], "retprobe": base.startswith("kretprobe.multi"), "session": base.startswith("kprobe.session")}


def parse_uprobe_multi_section(base: str, target: str) -> Dict[str, Any]:
    """(binary, pattern, options) from SEC("uprobe.multi/PATH:PATTERN") (libbpf's attach_uprobe_multi)."""
    binary, sep, pattern = target.partition(":")
    if not sep or not binary or not pattern or "\n" in pattern:
        raise BPFError(f"invalid format of section definition '{base}/{target}': want {base}/binary:pattern")
    return {
        "binary": binary,
        "pattern": pattern,
        "retprobe": base.startswith("uretprobe.multi"),
        "session": base.startswith("uprobe.session"),
    }


# ---------------------------------------------------------------- probes
def _probe_prog(attach_type: int) -> Any:
    from ..syscall import commands

    exit0 = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])  # r0 = 0; exit
    fd, _ = commands.prog_load(t.ProgType.BPF_PROG_TYPE_KPROBE, exit0, "GPL", expected_attach_type=int(attach_type))
    return fd


def _probe_link(attach_type: int, make: Any, ok_errno: int) -> bool:
    from ..syscall._raw import bpf

    try:
        prog = _probe_prog(attach_type)
    except SyscallError:
        return False
    try:
        ma = make(prog.fileno())
        try:
            fd = bpf(t.Cmd.BPF_LINK_CREATE, ma.attr)
        except SyscallError as e:
            return e.errno == ok_errno
        os.close(fd)
        return True
    finally:
        prog.close()


def uprobe_multi_support(session: bool = False) -> bool:
    """Whether uprobe_multi (or uprobe session) links can be made: as libbpf's probe,
    a uprobe on the directory "/" must fail with EBADF (not EINVAL / EOPNOTSUPP)."""
    at = AT.BPF_TRACE_UPROBE_SESSION if session else AT.BPF_TRACE_UPROBE_MULTI
    return _probe_link(at, lambda fd: uprobe_multi_attr(fd, "/", [0], session=session), errno.EBADF)


def kprobe_multi_support(session: bool = False) -> bool:
    """Whether kprobe_multi (or kprobe session) links can be made: a link on a kernel
    function that does not exist must fail with ESRCH (the lookup ran), not
    EOPNOTSUPP (no CONFIG_FPROBE) or EINVAL (no such attach type)."""
    at = AT.BPF_TRACE_KPROBE_SESSION if session else AT.BPF_TRACE_KPROBE_MULTI
    return _probe_link(at, lambda fd: kprobe_multi_attr(fd, syms=["pybpfload_no_such_function"], session=session), errno.ESRCH)
