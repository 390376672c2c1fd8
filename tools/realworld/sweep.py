"""Open and load every object of a corpus with libbpf (ORACLE) and with pybpfload; report differences."""

from __future__ import annotations

import functools
import os
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from . import oracle

View = Dict[str, Any]
# Program types a kernel may refuse as a whole here (BPF trampolines): tracing, lsm, ext.
TRAMPOLINE_TYPES = frozenset({26, 28, 29})
MAP_STACK_TRACE, MAP_CPUMAP, MAP_PERF_EVENT_ARRAY = 7, 16, 4
MAP_RINGBUF, MAP_USER_RINGBUF = 27, 31


def prepare_map(name: str, mtype: int, max_entries: int, value_size: int) -> Dict[str, int]:
    """What a tool's user space sets before load when the object leaves it open (the same for both loaders)."""
    change: Dict[str, int] = {}
    if max_entries == 0 and mtype != MAP_PERF_EVENT_ARRAY:  # libbpf sizes perf event arrays itself
        change["max_entries"] = (256 * 1024 if mtype in (MAP_RINGBUF, MAP_USER_RINGBUF)
                                 else os.cpu_count() or 1 if mtype == MAP_CPUMAP else 1024)  # fmt: skip
    if mtype == MAP_STACK_TRACE and value_size == 0:
        change["value_size"] = 127 * 8
    return change


def describe(kind: int, fd: int) -> Any:
    """The kernel's view of a loaded program (its tag) or map (definition and BTF type names)."""
    import pybpfload as bpf

    if kind == 0:
        with bpf.Program.from_fd(fd) as p:
            return p.info().tag
    with bpf.Map.from_fd(fd) as m:
        i = m.info()
        return (int(i.type), i.key_size, i.value_size, i.max_entries, i.flags, i.map_extra,
                _btf_name(i.btf_id, i.btf_key_type_id), _btf_name(i.btf_id, i.btf_value_type_id))  # fmt: skip


def _btf_name(btf_id: int, type_id: int) -> str:
    from pybpfload.syscall.btf_handle import BtfHandle

    if not btf_id or not type_id:
        return ""
    with BtfHandle.from_id(btf_id) as h:
        spec = h.spec()
        return f"{spec.kind_of(type_id).name} {spec.name_of(type_id)}"


def our_open_view(path: Path) -> View:
    from pybpfload.errors import BPFError
    from pybpfload.object import Object

    try:
        obj = Object.open(path)
    except BPFError as e:
        return {"error": f"{type(e).__name__}: {e}"}
    with obj:
        return {
            "name": obj.name, "kversion": obj.kversion,
            "programs": [{"name": p.name, "section": p.section_name, "type": int(p.type),
                          "expected_attach_type": int(p.expected_attach_type), "insns": p.insns,
                          "autoload": p.autoload} for p in obj.programs.values()],
            "maps": [{"name": m.name, "type": int(m.type), "key_size": m.key_size, "value_size": m.value_size,
                      "max_entries": m.max_entries, "flags": m.flags, "map_extra": m.map_extra,
                      "pin_path": m.pin_path, "autocreate": m.autocreate, "initial_value": m.initial_value,
                      "btf_key_type_id": m.btf_key_type_id, "btf_value_type_id": m.btf_value_type_id}
                     for m in obj.maps.values()],
        }  # fmt: skip


def our_load_view(path: Path, autoload: Callable[[str, int], bool]) -> View:
    from pybpfload.errors import BPFError
    from pybpfload.object import Object

    try:
        with Object.open(path) as obj:
            for p in obj.programs.values():
                p.autoload = autoload(p.name, int(p.type))
            for m in obj.maps.values():
                for k, v in prepare_map(m.name, int(m.type), m.max_entries, m.value_size).items():
                    setattr(m, k, v)
            obj.load()
            return {
                "programs": {p.name: describe(0, p.fd) for p in obj.programs.values() if p.loaded},
                "insns": {p.name: p.insns for p in obj.programs.values() if p.loaded},
                "maps": {m.name: describe(1, m.fd) for m in obj.maps.values() if m.fd is not None and m.fd >= 0},
            }
    except BPFError as e:
        return {"error": f"{type(e).__name__}: {e}"}


def _diff_lists(what: str, ours: List[View], theirs: List[View]) -> List[str]:
    out = []
    if [x["name"] for x in ours] != [x["name"] for x in theirs]:
        out.append(f"{what} names: ours {[x['name'] for x in ours]} libbpf {[x['name'] for x in theirs]}")
    for o, t in zip(ours, theirs):
        if what == "program" and t["type"] == 0 and o.get("type") and not oracle.knows_section(t["section"]):
            t = dict(t, type=o["type"], expected_attach_type=o["expected_attach_type"])  # newer than libbpf 1.1
        for k in t:
            if o.get(k) != t[k]:
                out.append(f"{what} {t['name']!r} {k}: ours {str(o.get(k))[:100]} libbpf {str(t[k])[:100]}")
    return out


def legacy_maps(path: Path) -> bool:
    """The object defines maps in a legacy ``maps`` section: libbpf 1.x refuses it, pybpfload reads it as libbpf 0.8."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            return ELFFile(f).get_section_by_name("maps") is not None
    except ELFError:
        return False  # not an ELF file at all: both loaders refuse it


def _debian_kversion(ours: int, theirs: int) -> bool:
    """Kept on purpose: on a Debian kernel libbpf 1.1 reads the release (6.1.0-50-amd64: 6.1.0), current
    libbpf and we the version string (Debian 6.1.176-1)."""
    import os

    from pybpfload.syscall.features import _kv

    try:
        return "Debian " in os.uname().version and theirs == _kv(os.uname().release) and ours != theirs
    except ValueError:
        return False


def diff_open(path: Path, theirs: View) -> List[str]:
    """Differences after open; ``theirs`` is ``oracle.open_view(path)``."""
    ours = our_open_view(path)
    if "error" in theirs and "error" not in ours and legacy_maps(path):
        return []  # kept on purpose (the spec is libbpf 0.8's API)
    if "error" in theirs or "error" in ours:
        if ("error" in theirs) == ("error" in ours):
            return []
        return [f"open: ours {ours.get('error', 'ok')} libbpf {theirs.get('error', 'ok')}"]
    out = [f"{k}: ours {ours[k]!r} libbpf {theirs[k]!r}" for k in ("name", "kversion") if ours[k] != theirs[k]
           and not (k == "kversion" and _debian_kversion(ours[k], theirs[k]))]  # fmt: skip
    return out + _diff_lists("program", ours["programs"], theirs["programs"]) + _diff_lists("map", ours["maps"], theirs["maps"])


POISON_CALL_KFUNC_BASE = 2002000000  # pybpfload.reloc.loader's (current libbpf's) poison for unresolved weak kfuncs


def _as_libbpf_1_1(insns: bytes) -> bytes:
    """Final instructions with map fds zeroed and the newer weak-kfunc poison written as libbpf 1.1 writes it.

    libbpf 1.1 leaves an unresolved weak kfunc call as ``call kfunc 0``;
    current libbpf and pybpfload turn it into a helper call to id 2002000000+N
    that the verifier names if it is ever reached.
    """
    out = bytearray(insns)
    for i in range(0, len(out) - 7, 8):
        code, src = out[i], out[i + 1] >> 4
        imm = int.from_bytes(out[i + 4 : i + 8], "little", signed=True)
        if code == 0x18 and src in (1, 2, 5, 6):  # ld_imm64 of a map fd (value): the fd number differs
            out[i + 4 : i + 8] = bytes(4)
        elif code == 0x85 and src == 0 and POISON_CALL_KFUNC_BASE <= imm < POISON_CALL_KFUNC_BASE + (1 << 16):
            out[i + 1] = (2 << 4) | (out[i + 1] & 0x0F)
            out[i + 2 : i + 8] = bytes(6)
    return bytes(out)


def _diff_loaded(ours: View, theirs: View) -> List[str]:
    out = []
    for what in ("programs", "maps"):
        for name in sorted(ours[what].keys() | theirs[what].keys()):
            o, t = ours[what].get(name), theirs[what].get(name)
            if o == t:
                continue
            if what == "programs" and o and t and name in ours.get("insns", {}) and name in theirs.get("insns", {}):
                if _as_libbpf_1_1(ours["insns"][name]) == _as_libbpf_1_1(theirs["insns"][name]):
                    continue  # kept on purpose: the weak-kfunc poison of current libbpf (see _as_libbpf_1_1)
            out.append(f"loaded {what[:-1]} {name!r}: ours {o} libbpf {t}")
    return out


PIN_ROOT = Path("/sys/fs/bpf")  # libbpf's (and our) default root for pin-by-name maps


def _pins() -> Set[Path]:
    if not PIN_ROOT.is_dir():
        return set()
    return {p for p in PIN_ROOT.rglob("*")}


def _isolated(load: Callable[[], View]) -> View:
    """Run one load, then remove the pins it made (objects pin maps by name under /sys/fs/bpf).

    Each loader must start from the same state (no pin to reuse), and the sweep must leave none behind.
    """
    before = _pins()
    try:
        return load()
    finally:
        for p in sorted(_pins() - before, key=lambda q: len(q.parts), reverse=True):
            try:
                p.rmdir() if p.is_dir() else p.unlink()
            except OSError:
                pass


def _both(path: Path, autoload: Callable[[str, int], bool]) -> Tuple[View, View]:
    theirs = _isolated(lambda: oracle.load_view(path, autoload, prepare_map, describe))
    ours = _isolated(lambda: our_load_view(path, autoload))
    return theirs, ours


def _only(name: str, prog: str, prog_type: int) -> bool:
    return prog == name


def diff_load(path: Path, opened: View) -> Tuple[str, List[str]]:
    """('loaded' | 'loaded-without-trampolines' | 'per-program' | 'legacy-maps', differences)."""
    if "error" in opened and legacy_maps(path):
        return "legacy-maps", []  # libbpf 1.x cannot open it: nothing to compare with
    strategies: List[Tuple[str, Callable[[str, int], bool]]] = [
        ("loaded", lambda n, t: True),
        ("loaded-without-trampolines", lambda n, t: t not in TRAMPOLINE_TYPES),
    ]
    for label, autoload in strategies:
        theirs, ours = _both(path, autoload)
        if "error" not in theirs and "error" not in ours:
            return label, _diff_loaded(ours, theirs)
        if ("error" in theirs) != ("error" in ours):
            return label, [f"load: ours {ours.get('error', 'ok')[:1500]} | libbpf {theirs.get('error', 'ok')}"]
    # both refuse the whole object: program by program (the others not loaded)
    out: List[str] = []
    names = [p["name"] for p in opened.get("programs", [])]
    for name in names:
        theirs, ours = _both(path, functools.partial(_only, name))
        if ("error" in theirs) != ("error" in ours):
            out.append(f"program {name!r} alone: ours {ours.get('error', 'ok')[:1500]} | libbpf {theirs.get('error', 'ok')}")
        elif "error" not in theirs:
            out += [d for d in _diff_loaded(ours, theirs) if "program" in d]
    return "per-program", out


def sweep(files: List[Path], load: bool, log: Callable[[str], None] = print,
          current: Optional[oracle.Libbpf] = None) -> Dict[str, Any]:  # fmt: skip
    """Each object against libbpf 1.1, and (three-way, see threeway.py) against ``current`` libbpf too."""
    if current is not None:
        return _sweep_three_way(files, load, log, current)
    results: Dict[str, Any] = {}
    for path in files:
        entry: Dict[str, Any] = {}
        try:
            opened = oracle.open_view(path)  # libbpf's view after open, used by both steps
            entry["open"] = diff_open(path, opened)
            if load:
                entry["load_mode"], entry["load"] = diff_load(path, opened)
        except Exception:  # noqa: BLE001 - a crash inside pybpfload is a finding, reported per object
            entry["crash"] = traceback.format_exc()
        results[path.name] = entry
        bad = entry.get("open") or entry.get("load") or entry.get("crash")
        log(f"{'DIFF' if bad else 'same'} {path.name} {entry.get('load_mode', '')}")
        for line in (entry.get("open") or []) + (entry.get("load") or []) + ([entry["crash"]] if "crash" in entry else []):
            log(f"    {line}")
    return results


def _sweep_three_way(files: List[Path], load: bool, log: Callable[[str], None], current: oracle.Libbpf) -> Dict[str, Any]:
    from . import allowed, threeway

    results: Dict[str, Any] = {}
    for path in files:
        entry: Dict[str, Any] = {}
        try:
            r = threeway.three_way(path, current, our_open_view, our_load_view, prepare_map, describe,
                                   allowed.allowed, load=load, isolated=_isolated)  # fmt: skip
            entry["load_mode"] = r.mode
            entry["columns"] = {"1.1": r.column("1.1"), "current": r.column("current")}
            entry["differences"] = [{"stage": d.stage, "item": d.item, "what": d.what, "verdict": d.verdict,
                                     "rule": d.rule, "follows": d.follows,
                                     "values": {k: threeway._show(v) for k, v in d.values.items()}}
                                    for d in r.differences]  # fmt: skip
            entry["fail"] = [d.line() for d in r.differences if d.verdict == "fail"]
            lines = [d.line() for d in r.differences]
        except Exception:  # noqa: BLE001 - a crash inside pybpfload is a finding, reported per object
            entry["crash"] = traceback.format_exc()
            lines = [entry["crash"]]
        results[path.name] = entry
        bad = entry.get("fail") or entry.get("crash")
        cols = entry.get("columns", {})
        log(f"{'DIFF' if bad else 'same'} {path.name} {entry.get('load_mode', '')} "
            f"| 1.1: {cols.get('1.1', '?')} | current: {cols.get('current', '?')}")  # fmt: skip
        for line in lines:
            log(f"    {line}")
    return results


def summary(results: Dict[str, Any]) -> Tuple[int, int, Dict[str, int]]:
    bad = sum(1 for e in results.values() if e.get("open") or e.get("load") or e.get("crash") or e.get("fail"))
    modes: Dict[str, int] = {}
    for e in results.values():
        if "load_mode" in e:
            modes[e["load_mode"]] = modes.get(e["load_mode"], 0) + 1
    return len(results), bad, modes


def disagreements(results: Dict[str, Any]) -> List[str]:
    """Where libbpf 1.1 and current libbpf disagree, or pybpfload differs from current: objects, and whom we follow."""
    rows: Dict[Tuple[str, str], Set[str]] = {}
    for name, e in results.items():
        for d in e.get("differences", []):
            v = d["values"]
            old, cur, ours = v.get("1.1"), v.get("current"), v.get("ours")
            follow = {"current": "current", "kept": f"{d['follows']} [{d['rule']}]", "fail": "FAIL"}[d["verdict"]]
            if d["verdict"] != "current" and ours == old:
                follow += ", as 1.1"
            who = "1.1 and current differ" if old != cur else "pybpfload differs from both"
            rows.setdefault((f"{who}: {d['what']}", follow), set()).add(name)
    out = ["| difference | objects | we follow | e.g. |", "|---|---|---|---|"]
    for (what, follow), names in sorted(rows.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        out.append(f"| {what} | {len(names)} | {follow} | {sorted(names)[0]} |")
    return out


def rules_used(results: Dict[str, Any]) -> List[str]:
    """The allow-list rules that kept a difference, with their reasons (allowed.py)."""
    from .allowed import RULES

    used = {d["rule"] for e in results.values() for d in e.get("differences", []) if d["verdict"] == "kept"}
    return [f"[{r.name}] follows {r.follows}: {r.reason}" for r in RULES if r.name in used]


def current_oracle(spec: str) -> Optional[oracle.Libbpf]:
    """``--current``: "none", "auto" (the cached or fetched trixie libbpf; none if it cannot be had) or a path."""
    from . import libbpf_current

    if spec == "none":
        return None
    if spec == "auto":
        try:
            got = libbpf_current.locate()
        except libbpf_current.CurrentLibbpfError as e:
            print(f"realworld: no current libbpf ({e}): comparing with libbpf 1.1 only")
            return None
        path = got.path
    else:
        path = Path(spec)
    lib = oracle.Libbpf(path, "current")
    lib.label = f"libbpf {lib.version()[1:]}"
    return lib


def main_sweep(corpus: Path, files: Optional[List[Path]], load: bool, current: str = "auto") -> int:
    import json

    files = files or sorted(corpus.glob("*.o"))
    cur = current_oracle(current)
    if cur is not None:
        print(f"realworld: pybpfload | libbpf {oracle.LIBBPF_1_1.version()[1:]} | {cur.label} ({cur.path})")
    results = sweep(files, load, current=cur)
    total, bad, modes = summary(results)
    if cur is not None:
        print("\n".join(disagreements(results) + rules_used(results)))
        print(f"realworld: {total} objects, {total - bad} agree with {cur.label} (or differ as allowed.py lists), "
              f"{bad} differ; load modes {modes}")  # fmt: skip
    else:
        print(f"realworld: {total} objects, {total - bad} agree with libbpf, {bad} differ; load modes {modes}")
    (corpus / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 1 if bad else 0
