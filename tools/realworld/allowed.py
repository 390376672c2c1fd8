"""Where pybpfload differs from current libbpf on purpose: the sweep's allow-list.

The project follows current libbpf unless the spec says otherwise (issue 21;
README, "Which libbpf we follow").  A difference between pybpfload and current
libbpf that no rule here matches fails the real-world sweep (and
tests/test_oracle_current_libbpf.py).  Each rule names the items it covers (a
regular expression over the item without program and map names, e.g. "open",
"map initial_value"), when it applies (checked on the values and the objects
as opened), whom we follow instead, and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from .threeway import NA, Context, Difference

BPF_MAP_TYPE_STRUCT_OPS = 26


@dataclass(frozen=True)
class Rule:
    name: str
    what: str  # regular expression, matched whole against Difference.what
    applies: Callable[[Context, Difference], bool]
    follows: str  # "spec", "libbpf <version>" or "libbpf's documented convention"
    reason: str


def _name_in(item: str, kind: str) -> Optional[str]:
    m = re.search(rf"{kind} '([^']*)'", item)
    return m.group(1) if m else None


def _legacy_maps(ctx: Context, d: Difference) -> bool:
    from .sweep import legacy_maps

    v = d.values
    return v.get("ours") == "ok" and v.get("1.1") == v.get("current") == "refused" and legacy_maps(ctx.path)


def _unknown_to_current(ctx: Context, prog: str) -> bool:
    """``prog``'s SEC() is one pybpfload knows and the current libbpf does not."""
    from pybpfload.elf.sections import find_sec_def

    ours = ctx.program("ours", prog)
    if ours is None:
        return False
    sec = ours["section"]
    return find_sec_def(sec) is not None and not ctx.current.knows_section(sec)


def _newer_section(ctx: Context, d: Difference) -> bool:
    """A program type (or attach type) current libbpf leaves 0 for a SEC() name newer than itself."""
    prog = _name_in(d.item, "program")
    return prog is not None and d.values.get("current") == 0 and _unknown_to_current(ctx, prog)


def _refused_for_newer_section(ctx: Context, d: Difference) -> bool:
    """Current libbpf refuses to load a program of a SEC() name newer than itself (no program type)."""
    if not (d.values.get("ours") == "ok" and d.values.get("current") == "refused"):
        return False
    alone = re.match(r"program '([^']*)' alone: load$", d.item)
    if alone:
        return _unknown_to_current(ctx, alone.group(1))
    return any(p["autoload"] and _unknown_to_current(ctx, p["name"]) for p in ctx.opened["ours"].get("programs", []))


def _struct_ops_prog_pointers(ctx: Context, d: Difference) -> bool:
    """The same bytes but in 8-byte slots where current libbpf holds a pointer and pybpfload zero."""
    ours, cur = d.values.get("ours"), d.values.get("current")
    m = ctx.map("ours", _name_in(d.item, "map") or "")
    if m is None or m["type"] != BPF_MAP_TYPE_STRUCT_OPS or not isinstance(ours, bytes) or not isinstance(cur, bytes):
        return False
    if len(ours) != len(cur) or len(ours) % 8:
        return False
    for at in range(0, len(ours), 8):
        o, c = ours[at : at + 8], cur[at : at + 8]
        if o != c and (any(o) or not any(c)):
            return False
    return True


def _optional_struct_ops(ctx: Context, d: Difference) -> bool:
    """A struct_ops map of a '?.struct_ops' section that current libbpf autocreates and pybpfload does not."""
    m = ctx.map("ours", _name_in(d.item, "map") or "")
    return (m is not None and m["type"] == BPF_MAP_TYPE_STRUCT_OPS
            and d.values.get("ours") is False and d.values.get("current") is True)  # fmt: skip


def _weak_typed_ksym_in_kallsyms_only(ctx: Context, d: Difference) -> bool:
    """Both libbpfs refuse the load; the object has a typed weak ksym the kernel's BTF lacks and kallsyms has."""
    from pybpfload.btf import types as T
    from pybpfload.btf.vmlinux import vmlinux_spec
    from pybpfload.elf.model import ExternKind
    from pybpfload.errors import BPFError
    from pybpfload.object import Object
    from pybpfload.reloc.extern_values import kallsyms

    v = d.values
    if not (v.get("ours") == "ok" and v.get("current") == "refused" and v.get("1.1", NA) in ("refused", NA)):
        return False
    try:
        with Object.open(ctx.path) as obj:
            ksyms = [e for e in obj.model.externs if e.kind is ExternKind.KSYM and not e.is_func]
        vmlinux = vmlinux_spec()
        typed_weak = [e.name for e in ksyms if e.ksym_type_id and e.is_weak
                      and not any(vmlinux.kind_of(i) == T.Kind.VAR for i in vmlinux.find_ids(e.name))]  # fmt: skip
        return any(not e.ksym_type_id for e in ksyms) and bool(typed_weak) and bool(kallsyms(typed_weak))
    except (BPFError, OSError):
        return False


RULES: Tuple[Rule, ...] = (
    Rule("legacy-maps", "open", _legacy_maps, "the spec",
         'legacy SEC("maps") definitions: libbpf 1.x refuses them; the spec is libbpf 0.8\'s API and we read them as 0.8 does'),
    Rule("newer-sec", "program (type|expected_attach_type)", _newer_section, "libbpf's newest SEC() table",
         "a SEC() name newer than this libbpf (1.5 lacks uprobe.session and fsession, which 1.7 knows; fentry.multi "
         "and tp.s are newer than 1.7): our table is libbpf's newest, this libbpf leaves the program without a type"),
    Rule("newer-sec-load", "load|program alone: load", _refused_for_newer_section, "libbpf's newest SEC() table",
         "this libbpf refuses a program whose SEC() name is newer than itself (no program type); we load it"),
    Rule("struct-ops-pointers", "map initial_value", _struct_ops_prog_pointers, "the object's bytes",
         "struct_ops function pointer members: libbpf 1.5+ stores its own `struct bpf_program *` there (its "
         "skeletons' shadow type); a Python process has no such pointer, we keep the object's zeros (other bytes equal)"),
    Rule("optional-struct-ops", "map autocreate", _optional_struct_ops, "libbpf's documented convention",
         "'?.struct_ops' sections: libbpf 1.5 and 1.7 turn autocreate off for the section's first variable only "
         "(init_struct_ops_maps advances sec_name past '?' inside its per-variable loop), against its own comment "
         "'SEC(\"?.struct_ops\") means map is not created by default'; we turn it off for every variable"),
    Rule("weak-typed-ksym", "load|program alone: load", _weak_typed_ksym_in_kallsyms_only, "libbpf's intent",
         "a typed __weak __ksym the kernel's BTF lacks (6.12: bpf_stats_enabled_key) in an object that also has an "
         "untyped ksym: libbpf 1.1 to 1.7 take its address from /proc/kallsyms (kallsyms_cb sets any ksym), then find "
         "no BTF id and emit ld_imm64 BPF_PSEUDO_BTF_ID 0, which the kernel refuses ('pseudo btf_id 0 in ldimm64'); "
         "we treat it as the unresolved weak extern it is (0) and load"),
)  # fmt: skip


def allowed(ctx: Context, d: Difference) -> Optional[Rule]:
    """The rule that allows ``d``, or None (a failure)."""
    for r in RULES:
        if re.fullmatch(r.what, d.what) and r.applies(ctx, d):
            return r
    return None
