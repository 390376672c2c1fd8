"""Offline CO-RE portability check: will this object's relocations resolve on those kernels?

``pybpfload core OBJ --btf FILE [--btf FILE ...] [--json]`` relocates every
program of OBJ (autoload or not) against each BTF file — kernel BTF such as
``/sys/kernel/btf/vmlinux`` or BTFHub's files, or an ELF object with a
``.BTF`` section — without loading anything and without privileges, and
reports, for each relocation, the local access and what it resolves to (or
why not) on each target.

Statuses: ``ok`` (a target was found), ``missing`` (an existence check that
is 0 on that kernel: fine when the program is guarded by it), ``poisoned``
(the instruction is replaced by libbpf's poison: the program fails to load
if it reaches it), ``error`` (libbpf would refuse the whole load).  The exit
status is 0 only when every relocation is ``ok`` on every target.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, List, Sequence, Tuple

from ..abi.record import Record, _set
from ..errors import BPFError

__all__ = ["TargetResult", "RelocationReport", "Report", "check", "add_parser", "main"]

OK, MISSING, POISONED, ERROR = "ok", "missing", "poisoned", "error"


class TargetResult(Record):
    """One relocation on one target BTF (an immutable record, :mod:`pybpfload.abi.record`)."""

    __slots__ = _fields = ("btf", "status", "value", "target", "detail")
    btf: str
    status: str  # ok / missing / poisoned / error
    value: int  # the value patched in (0 when poisoned or error)
    target: str  # the matched target access, libbpf's format ("" if none)
    detail: str  # why not, or where the target comes from

    def __init__(self, btf: str, status: str, value: int, target: str, detail: str) -> None:
        _set(self, "btf", btf)
        _set(self, "status", status)
        _set(self, "value", value)
        _set(self, "target", target)
        _set(self, "detail", detail)


class RelocationReport(Record):
    """One relocation of one function, across every target (an immutable record, :mod:`pybpfload.abi.record`)."""

    __slots__ = _fields = ("program", "section", "insn", "kind", "local", "original", "results")
    program: str
    section: str
    insn: int
    kind: str
    local: str  # the local access, libbpf's format
    original: int  # the value the compiler put in the instruction
    results: Tuple[TargetResult, ...]

    def __init__(
        self,
        program: str,
        section: str,
        insn: int,
        kind: str,
        local: str,
        original: int,
        results: Tuple[TargetResult, ...],
    ) -> None:
        _set(self, "program", program)
        _set(self, "section", section)
        _set(self, "insn", insn)
        _set(self, "kind", kind)
        _set(self, "local", local)
        _set(self, "original", original)
        _set(self, "results", results)

    @property
    def resolved_everywhere(self) -> bool:
        return all(r.status == OK for r in self.results)


class Report(Record):
    """The portability of one object across target BTFs.

    An immutable record (:mod:`pybpfload.abi.record`), not a dataclass; :meth:`to_json`
    gives it as JSON-ready data, ``_asdict()`` its fields as a dict.
    """

    __slots__ = _fields = ("object", "btfs", "relocations", "errors")
    object: str
    btfs: Tuple[str, ...]
    relocations: Tuple[RelocationReport, ...]
    errors: Tuple[Tuple[str, str], ...]  # (btf, message): targets that could not be checked at all

    def __init__(
        self,
        object: str,
        btfs: Tuple[str, ...],
        relocations: Tuple[RelocationReport, ...],
        errors: Tuple[Tuple[str, str], ...] = (),
    ) -> None:
        _set(self, "object", object)
        _set(self, "btfs", btfs)
        _set(self, "relocations", relocations)
        _set(self, "errors", errors)

    @property
    def portable(self) -> bool:
        """Every relocation resolves on every target."""
        return not self.errors and all(r.resolved_everywhere for r in self.relocations)

    def to_json(self) -> Dict[str, Any]:
        return {
            "object": self.object,
            "btfs": list(self.btfs),
            "portable": self.portable,
            "errors": [{"btf": b, "error": e} for b, e in self.errors],
            "relocations": [
                {
                    "program": r.program,
                    "section": r.section,
                    "insn": r.insn,
                    "kind": r.kind,
                    "local": r.local,
                    "original": r.original,
                    "results": [
                        {"btf": t.btf, "status": t.status, "value": t.value, "target": t.target, "detail": t.detail}
                        for t in r.results
                    ],
                }
                for r in self.relocations
            ],
        }

    def to_text(self) -> str:
        lines = [f"{self.object}: {len(self.relocations)} CO-RE relocations, {len(self.btfs)} target BTF(s)"]
        for b, e in self.errors:
            lines.append(f"  {b}: cannot check: {e}")
        for r in self.relocations:
            lines.append(f"prog '{r.program}' insn #{r.insn}: {r.local}")
            for t in r.results:
                if t.status == OK:
                    lines.append(f"  {t.btf}: ok: {t.target} -> {t.value}")
                elif t.status == MISSING:
                    lines.append(f"  {t.btf}: missing ({t.detail}), value {t.value}")
                else:
                    lines.append(f"  {t.btf}: {t.status.upper()}: {t.detail}")
        bad = sum(not r.resolved_everywhere for r in self.relocations)
        if self.portable:
            lines.append("portable: every relocation resolves on every target")
        elif bad or not self.errors:
            lines.append(f"NOT portable: {bad} relocation(s) do not resolve everywhere")
        else:
            lines.append(f"NOT portable: {len(self.errors)} target BTF(s) could not be checked")
        return "\n".join(lines)


def check(obj_path: "str | os.PathLike[str]", btf_paths: Sequence["str | os.PathLike[str]"]) -> Report:
    """Relocate every program of ``obj_path`` against each BTF in ``btf_paths`` (pure: no bpf(2))."""
    from ..btf.ext import parse_ext
    from ..object import Object
    from ..reloc.co_re import file_targets, relocate

    with Object.open(obj_path) as obj:
        model, local = obj.model, obj.btf
        ext = parse_ext(model.btf_ext_raw, local.string) if (model.btf_ext_raw is not None and local is not None) else None
    names = tuple(os.fspath(p) for p in btf_paths)
    per_target: List[Dict[Tuple[str, str, int, int], Any]] = []
    errors: List[Tuple[str, str]] = []
    order: Dict[Tuple[str, str, int, int], Any] = {}
    for name in names:
        recs: Dict[Tuple[str, str, int, int], Any] = {}
        per_target.append(recs)
        try:  # every target is read, relocations or not: an unreadable one is an error, never "portable"
            targets = file_targets(name)
        except (BPFError, OSError) as e:
            errors.append((name, _message(e)))
            continue
        if ext is None or not ext.core_relos:
            continue
        assert local is not None
        try:
            rel = relocate(model, local, ext, targets, strict=False)
        except BPFError as e:
            errors.append((name, str(e)))
            continue
        for r in rel.records:
            key = (r.function, r.section, r.insn, r.relo.insn_off)
            if key not in recs:
                recs[key] = r
                order.setdefault(key, r)
    reports = []
    for key, first in order.items():
        results = []
        for name, recs in zip(names, per_target):
            rec = recs.get(key)
            results.append(_target_result(name, rec))
        res = first.result
        reports.append(
            RelocationReport(
                program=first.function,
                section=first.section,
                insn=first.insn,
                kind=first.relo.kind.name,
                local=first.local_access(),
                original=res.orig_val if res is not None else 0,
                results=tuple(results),
            )
        )
    return Report(os.fspath(obj_path), names, tuple(reports), tuple(errors))


def _message(e: BaseException) -> str:
    """One line for an error: BPFErrors say what failed; a bare OSError gets its file name."""
    if isinstance(e, OSError) and not isinstance(e, BPFError):
        return f"{e.filename}: {e.strerror}" if e.filename and e.strerror else (e.strerror or str(e))
    return str(e)


def _target_result(btf: str, r: Any) -> TargetResult:
    if r is None:
        return TargetResult(btf, ERROR, 0, "", "target BTF could not be read")
    if r.error:
        return TargetResult(btf, ERROR, 0, "", r.error)
    res = r.result
    if r.poisoned:
        why = res.reason or (
            f"target field is {res.new_sz} bytes, the instruction accesses {res.orig_sz} and the type may not change size"
        )
        return TargetResult(btf, POISONED, 0, res.target.format() if res.target is not None else "", why)
    if not res.resolved:
        return TargetResult(btf, MISSING, res.new_val, "", res.reason)
    target = res.target.format() if res.target is not None else "(local)"
    return TargetResult(btf, OK, res.new_val, target, res.target_origin)


# ---------------------------------------------------------------- command line
def _run(args: argparse.Namespace) -> int:
    """Exit status 0: portable, 1: not portable (or a target BTF cannot be read), 2: the check failed.

    With ``--json`` stdout is JSON whatever happens: a report, or
    ``{"object": ..., "btfs": [...], "portable": false, "error": MESSAGE}``.
    """
    try:
        report = check(args.object, args.btf)
    except (BPFError, OSError) as e:
        msg = _message(e)
        if args.json:
            print(json.dumps({"object": args.object, "btfs": list(args.btf), "portable": False, "error": msg}, indent=2))
        else:
            print(f"pybpfload core: {msg}")
        return 2
    print(json.dumps(report.to_json(), indent=2) if args.json else report.to_text())
    return 0 if report.portable else 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``core`` subcommand (its handler is ``args.func``, returning the exit status)."""
    p = subparsers.add_parser(
        "core",
        help="check offline that an object's CO-RE relocations resolve on given kernel BTFs",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("object", help="the BPF object file")
    p.add_argument("--btf", action="append", required=True, metavar="FILE", help="a target kernel's BTF (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_run, func=_run)
    return p


def main(argv: "Sequence[str] | None" = None) -> int:
    """``python -m pybpfload.cli.corecheck OBJ --btf FILE ...`` (same as ``pybpfload core``)."""
    parser = argparse.ArgumentParser(prog="pybpfload core")
    sub = parser.add_subparsers()
    add_parser(sub)
    args = parser.parse_args(["core", *(argv if argv is not None else __import__("sys").argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
