"""CO-RE relocation of an object's programs against kernel BTF (or a BTF file).

:func:`relocate` is the pure driver, in libbpf's order
(bpf_object__relocate_core): the ``.BTF.ext`` records of each section, in
file order, each applied to the function (entry program or ``.text``
subprogram) whose instructions hold it; candidates are cached per local
type and pruned as relocations match.  :func:`relocate_object` is what
``Object.load()`` calls: the target is the object's ``btf_custom_path``
when set, else the running kernel's BTF (vmlinux, then modules), each
read once per process.

When the verifier rejects a poisoned instruction ("invalid func
unknown#195896080"), :func:`explain_verifier_error` rewrites the log the
way libbpf does and says which relocation failed and why.
"""

from __future__ import annotations

import os
import re
import _thread  # allocate_lock is threading.Lock, without importing threading (~1 ms)
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..abi.record import Record, _set
from ..errors import BPFError, BTFError, RelocationError, VerifierError

if TYPE_CHECKING:  # pragma: no cover
    from ..btf.relo_core import Candidate, Candidates, CoreResult
    from ..btf.ext import CoreRelo, ExtInfo
    from ..btf.spec import Spec
    from ..elf.model import ElfModel, ProgramSpec
    from .linker import LinkedProgram

__all__ = [
    "RelocationRecord",
    "ObjectRelocation",
    "relocate",
    "relocate_object",
    "kernel_targets",
    "file_targets",
    "load_btf_file",
    "explain_verifier_error",
    "last_relocation",
]


class RelocationRecord(Record):
    """One CO-RE relocation of one function, and what became of it."""

    __slots__ = _fields = ("function", "section", "insn", "relo", "result", "poisoned", "error", "spec_id")
    _compare = ("function", "section", "insn", "relo", "result", "poisoned", "error")
    _no_repr = ("spec_id",)
    function: str  # the ProgramSpec's name
    section: str
    insn: int  # index within the function
    relo: "CoreRelo"
    result: Optional["CoreResult"]  # None when the relocation failed (see error)
    poisoned: bool
    error: str  # why libbpf would fail the load on this relocation
    spec_id: int  # id() of the ProgramSpec (left out of == and repr)

    def __init__(
        self,
        function: str,
        section: str,
        insn: int,
        relo: "CoreRelo",
        result: Optional["CoreResult"],
        poisoned: bool = False,
        error: str = "",
        spec_id: int = 0,
    ) -> None:
        _set(self, "function", function)
        _set(self, "section", section)
        _set(self, "insn", insn)
        _set(self, "relo", relo)
        _set(self, "result", result)
        _set(self, "poisoned", poisoned)
        _set(self, "error", error)
        _set(self, "spec_id", spec_id)

    def local_access(self) -> str:
        """The local access in libbpf's format (``<byte_off> [3] struct s.a (0:0 @ offset 0)``)."""
        if self.result is not None and self.result.local is not None:
            return self.result.local.format()
        return f"<{_kind(self.relo)}> [{self.relo.type_id}] + {self.relo.access}"

    def describe(self) -> str:
        """A line for messages: what was relocated, and to what (or why not)."""
        head = f"prog '{self.function}' insn #{self.insn}: {self.local_access()}"
        if self.error:
            return f"{head}: error: {self.error}"
        res = self.result
        assert res is not None
        if self.poisoned:
            return f"{head}: unresolved ({res.reason or 'field incompatible with the instruction'}); instruction poisoned"
        if not res.resolved:
            return f"{head}: not found ({res.reason}), value {res.new_val}"
        tgt = res.target.format() if res.target is not None else "local"
        where = f" in {res.target_origin}" if res.target_origin else ""
        return f"{head} => {tgt}{where}: {res.orig_val} -> {res.new_val}"


def _kind(relo: "CoreRelo") -> str:
    from ..btf.relo_core import kind_str

    return kind_str(relo.kind)


class ObjectRelocation(Record):
    """Every CO-RE relocation of an object, and the patched instructions of each function."""

    __slots__ = _fields = ("records", "insns")
    records: Tuple[RelocationRecord, ...]
    insns: Dict[int, bytes]  # id(ProgramSpec) -> that function's relocated instructions

    def __init__(self, records: Tuple[RelocationRecord, ...], insns: Dict[int, bytes]) -> None:
        _set(self, "records", records)
        _set(self, "insns", insns)

    @property
    def ok(self) -> bool:
        """No relocation would make the load fail."""
        return not any(r.error for r in self.records)

    def record_at(self, spec: "ProgramSpec", insn: int) -> Optional[RelocationRecord]:
        for r in self.records:
            if r.spec_id == id(spec) and r.insn == insn:
                return r
        return None


# ---------------------------------------------------------------- the driver
def _functions_by_section(model: "ElfModel") -> Dict[str, List["ProgramSpec"]]:
    out: Dict[str, List["ProgramSpec"]] = {}
    names = model.section_names
    for p in model.programs:
        out.setdefault(names.get(p.sec_idx, p.section.elf_name), []).append(p)
    for lst in out.values():
        lst.sort(key=lambda p: p.insn_off)
    return out


def _function_at(funcs: Sequence["ProgramSpec"], insn: int) -> Optional["ProgramSpec"]:
    for p in funcs:
        if p.insn_off <= insn < p.insn_off + p.insn_cnt:
            return p
    return None


def relocate(
    model: "ElfModel",
    local_btf: "Spec",
    ext: "ExtInfo",
    targets: "Candidates",
    *,
    autoload: Optional[Callable[["ProgramSpec"], bool]] = None,
    strict: bool = True,
) -> ObjectRelocation:
    """Apply every CO-RE relocation of ``ext`` to the functions of ``model`` (pure).

    ``autoload(spec)`` says whether an entry program will be loaded (those
    that will not are not relocated, as in libbpf); subprograms always are.
    With ``strict`` a relocation libbpf would fail on raises
    RelocationError; without, it is recorded (``record.error``) and the
    rest go on — the portability checker's mode.
    """
    from ..btf.relo_core import calc_relo_insn, patch_insn

    funcs = _functions_by_section(model)
    patched: Dict[int, bytearray] = {}
    specs: Dict[int, "ProgramSpec"] = {}
    cand_cache: Dict[int, List["Candidate"]] = {}
    records: List[RelocationRecord] = []
    for sec_name, relos in ext.core_relos.items():
        for relo in relos:
            if relo.insn_off % 8:
                err = RelocationError(f"section {sec_name!r}: CO-RE relocation offset {relo.insn_off} is not instruction-aligned")
                if strict:
                    raise err
                records.append(RelocationRecord("", sec_name, relo.insn, relo, None, error=str(err)))
                continue
            spec = _function_at(funcs.get(sec_name, ()), relo.insn)
            if spec is None:
                continue  # code of an eliminated weak subprogram: ignored, as by libbpf
            if not spec.is_subprog and autoload is not None and not autoload(spec):
                continue
            idx = relo.insn - spec.insn_off
            buf = patched.get(id(spec))
            if buf is None:
                buf = patched[id(spec)] = bytearray(spec.insns)
                specs[id(spec)] = spec
            try:
                cands = None
                from ..btf.relo_core import K

                if relo.kind != K.TYPE_ID_LOCAL:
                    cands = cand_cache.get(relo.type_id)
                    if cands is None:
                        try:
                            cands = cand_cache[relo.type_id] = targets.find(local_btf, relo.type_id)
                        except BTFError as e:
                            raise RelocationError(f"candidate search for local type [{relo.type_id}] failed: {e}") from None
                res = calc_relo_insn(relo, local_btf, cands, spec.name, targets.origin)
                poisoned = patch_insn(buf, idx, relo, res, spec.name)
            except RelocationError as e:
                if strict:
                    raise
                records.append(RelocationRecord(spec.name, sec_name, idx, relo, None, error=str(e), spec_id=id(spec)))
                continue
            records.append(RelocationRecord(spec.name, sec_name, idx, relo, res, poisoned, spec_id=id(spec)))
    return ObjectRelocation(tuple(records), {k: bytes(v) for k, v in patched.items()})


# ---------------------------------------------------------------- targets
_lock = _thread.allocate_lock()
_files: Dict[Tuple[str, int, int, int], "Spec"] = {}


def load_btf_file(path: "str | os.PathLike[str]") -> "Spec":
    """BTF from a file: raw BTF (``/sys/kernel/btf/vmlinux``, BTFHub files) or an ELF with a ``.BTF`` section.

    Decoded once per process for each (path, inode, size, mtime).
    """
    from ..btf.spec import Spec

    p = os.path.realpath(os.fspath(path))
    try:
        st = os.stat(p)
    except OSError as e:
        raise BTFError(f"cannot read BTF from {os.fspath(path)}: {e.strerror}") from e
    key = (p, st.st_ino, st.st_size, st.st_mtime_ns)
    with _lock:
        hit = _files.get(key)
    if hit is not None:
        return hit
    with open(p, "rb") as f:
        head = f.read(4)
    if head == b"\x7fELF":
        from ..elf.reader import read_elf

        with open(p, "rb") as f:
            data = f.read()
        sec = read_elf(data).section_by_name(".BTF")
        if sec is None:
            raise BTFError(f"{os.fspath(path)}: ELF file has no .BTF section")
        spec = Spec.from_bytes(sec.data)
    else:
        spec = Spec.from_file(p)
    with _lock:
        _files[key] = spec
    return spec


def file_targets(path: "str | os.PathLike[str]") -> "Candidates":
    """A BTF file as the only target (libbpf's btf_custom_path: no module BTFs)."""
    from ..btf.relo_core import Candidates

    return Candidates((os.fspath(path), load_btf_file(path)), [])


def _module_targets() -> List[Tuple[str, "Spec"]]:
    from ..btf.vmlinux import kernel_modules_with_btf, module_spec

    out = []
    for name in kernel_modules_with_btf():
        try:
            out.append((name, module_spec(name)))
        except BPFError:
            continue
    return out


def kernel_targets() -> "Candidates":
    """The running kernel's BTF: vmlinux, then module BTFs (read only if vmlinux has no candidate)."""
    from ..btf.relo_core import Candidates
    from ..btf.vmlinux import vmlinux_spec

    return Candidates(("vmlinux", vmlinux_spec()), _module_targets)


# ---------------------------------------------------------------- the loader's entry point
_last: "weakref.WeakKeyDictionary[Any, ObjectRelocation]" = weakref.WeakKeyDictionary()


def relocate_object(obj: Any, ext: "ExtInfo") -> Dict[int, bytes]:
    """CO-RE-relocate an opened Object's functions: id(ProgramSpec) -> that function's instructions.

    Only functions with CO-RE relocations appear.  The result is remembered
    for :func:`explain_verifier_error` (see :func:`last_relocation`).
    """
    local = obj.btf
    if local is None:
        raise RelocationError("the object has CO-RE relocations but no .BTF")
    path = getattr(obj, "btf_custom_path", None)
    targets = file_targets(path) if path else kernel_targets()
    progs = obj.programs

    def autoload(spec: "ProgramSpec") -> bool:
        p = progs.get(spec.name)
        return bool(p.autoload) if p is not None else True

    rel = relocate(obj.model, local, ext, targets, autoload=autoload)
    try:
        _last[obj] = rel
    except TypeError:  # pragma: no cover - an object that cannot be weakly referenced
        pass
    return rel.insns


def last_relocation(obj: Any) -> Optional[ObjectRelocation]:
    """The CO-RE relocation of the object's last load, if it had any."""
    try:
        return _last.get(obj)
    except TypeError:  # pragma: no cover
        return None


# ---------------------------------------------------------------- verifier log
_POISON_LINE = re.compile(r"^(\d+): \(85\) call unknown#195896080$")


def explain_log(log: str, linked: "LinkedProgram", rel: ObjectRelocation) -> Optional[str]:
    """The verifier log with each reached poisoned CO-RE instruction explained, or None if there is none.

    As libbpf: ``N: (85) call unknown#195896080`` / ``invalid func
    unknown#195896080`` become ``N: <invalid CO-RE relocation>`` /
    ``failed to resolve CO-RE relocation <spec>``, followed by our reason.
    """
    lines = log.split("\n")
    out: List[str] = []
    changed = False
    i = 0
    while i < len(lines):
        m = _POISON_LINE.match(lines[i])
        if m is not None and i + 1 < len(lines) and lines[i + 1].startswith("invalid func unknown#195896080"):
            n = int(m.group(1))
            rec = _record_for(linked, rel, n)
            if rec is not None:
                out.append(f"{n}: <invalid CO-RE relocation>")
                out.append(f"failed to resolve CO-RE relocation {rec.local_access()}")
                out.append(f"  ({_reason(rec)})")
                changed = True
                i += 2
                continue
        out.append(lines[i])
        i += 1
    return "\n".join(out) if changed else None


def _record_for(linked: "LinkedProgram", rel: ObjectRelocation, n: int) -> Optional[RelocationRecord]:
    for piece in linked.pieces:
        if piece.start <= n < piece.start + piece.spec.insn_cnt:
            local = n - piece.start
            rec = rel.record_at(piece.spec, local)
            if rec is None:  # second half of a poisoned LD_IMM64
                prev = rel.record_at(piece.spec, local - 1)
                if prev is not None and prev.poisoned:
                    rec = prev
            return rec if rec is not None and rec.poisoned else None
    return None


def _reason(rec: RelocationRecord) -> str:
    res = rec.result
    fn = f"prog '{rec.function}' insn #{rec.insn}"
    if res is None:
        return fn
    if res.reason:
        return f"{fn}: {res.reason}"
    if res.fail_memsz_adjust:
        return (
            f"{fn}: the target field is {res.new_sz} bytes, the instruction accesses {res.orig_sz}, and only "
            "pointers and unsigned integers may change size"
        )
    return fn


def explain_verifier_error(obj: Any, linked: "LinkedProgram", err: VerifierError) -> VerifierError:
    """The loader's hook: ``err`` with its log explained when a poisoned CO-RE instruction was reached.

    Returns ``err`` itself when there is nothing to explain.
    """
    rel = last_relocation(obj)
    if rel is None or not any(r.poisoned for r in rel.records):
        return err
    log = explain_log(err.log, linked, rel)
    if log is None:
        return err
    new = VerifierError(err.errno or 0, err.command, err.name, log)
    new.hint = err.hint
    new.__cause__ = err.__cause__
    return new
