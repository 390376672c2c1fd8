"""pybpfload against libbpf 1.1 AND current libbpf on one object: every item the three report, side by side.

Each loader's view of an object (after open, then after load) is flattened
into items ("program 'x' type", "loaded map 'm' flags", ...).  An item where
the three do not all agree is a difference, classified:

* ``current``: pybpfload agrees with current libbpf, libbpf 1.1 differs (we follow current);
* ``kept``: pybpfload differs from current libbpf and ``allowed.py`` lists why (the spec, or 1.1);
* ``fail``: pybpfload differs from current libbpf and nothing allows it.

A loader that refused the object (or the load) reports that item only; its
other items are left out of the comparison (``n/a``).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from . import oracle

View = Dict[str, Any]
NA = "n/a"  # the loader refused the object, so it has no such item
LOADERS = ("ours", "1.1", "current")


@dataclass
class Difference:
    """One item on which the three loaders do not all agree."""

    stage: str  # "open" or the load mode ("loaded", "loaded-without-trampolines", "per-program")
    item: str  # e.g. "program 'handle_exec' type", "loaded map 'events' flags"
    values: Dict[str, Any]  # loader -> value (NA where that loader refused)
    verdict: str = ""  # "current" | "kept" | "fail"
    rule: str = ""  # for "kept": the allow-list rule's name (allowed.py)
    follows: str = ""  # for "kept": whom we follow instead of current libbpf

    @property
    def what(self) -> str:
        """The item without the program or map names: "program type", "loaded map flags"."""
        return re.sub(r"'[^']*' ", "", self.item)

    def line(self) -> str:
        vals = " | ".join(f"{w} {_show(self.values.get(w, NA))}" for w in LOADERS)
        tail = {"current": "we follow current", "kept": f"kept [{self.rule}]", "fail": "FAIL"}[self.verdict]
        return f"{self.item}: {vals}  -> {tail}"


@dataclass
class ObjectResult:
    mode: str = ""
    differences: List[Difference] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(d.verdict == "fail" for d in self.differences)

    def column(self, loader: str) -> str:
        """'same' or 'differs (what, ...)' for pybpfload against ``loader``."""
        whats = sorted({d.what for d in self.differences if _differs(d.values, "ours", loader)})
        return "same" if not whats else f"differs ({', '.join(whats)})"


def _show(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes {hashlib.sha256(v).hexdigest()[:8]}>"
    return str(v)[:120]


def _differs(values: Dict[str, Any], a: str, b: str) -> bool:
    va, vb = values.get(a, NA), values.get(b, NA)
    return va is not NA and vb is not NA and va != vb


def flat_open(view: View) -> Dict[str, Any]:
    if "error" in view:
        return {"open": "refused"}
    items: Dict[str, Any] = {"open": "ok", "object name": view["name"], "kversion": view["kversion"],
                             "program names": tuple(p["name"] for p in view["programs"]),
                             "map names": tuple(m["name"] for m in view["maps"])}  # fmt: skip
    for kind, things in (("program", view["programs"]), ("map", view["maps"])):
        for t in things:
            for k, v in t.items():
                if k != "name":
                    items[f"{kind} {t['name']!r} {k}"] = v
    return items


MAP_FIELDS = ("type", "key_size", "value_size", "max_entries", "flags", "map_extra", "btf key", "btf value")


def flat_load(view: View, prefix: str = "") -> Dict[str, Any]:
    if "error" in view:
        return {f"{prefix}load": "refused"}
    items: Dict[str, Any] = {f"{prefix}load": "ok"}
    for name, tag in view["programs"].items():
        items[f"{prefix}loaded program {name!r} tag"] = tag
    for name, desc in view["maps"].items():
        for k, v in zip(MAP_FIELDS, desc):
            items[f"{prefix}loaded map {name!r} {k}"] = v
    return items


def compare(stage: str, flats: Dict[str, Dict[str, Any]]) -> List[Difference]:
    """Items on which the loaders that have them disagree (a refusal hides the rest of that loader's items)."""
    keys: List[str] = []
    for f in flats.values():
        keys += [k for k in f if k not in keys]
    out = []
    for k in keys:
        values: Dict[str, Any] = {}
        for w, f in flats.items():
            refused = any(v == "refused" for v in f.values())
            values[w] = f.get(k, None) if not refused or k in f else NA
        present = [v for v in values.values() if v is not NA]
        if any(v != present[0] for v in present[1:]):
            out.append(Difference(stage, k, values))
    return out


Load = Callable[[Path, Callable[[str, int], bool]], View]


class Loads:
    """Each loader's load views of one object, computed once per (loader, strategy)."""

    def __init__(self, path: Path, loaders: Dict[str, Load]) -> None:
        self.path = path
        self.loaders = loaders
        self._memo: Dict[Tuple[str, str], View] = {}

    def get(self, who: str, strategy: str) -> View:
        key = (who, strategy)
        if key not in self._memo:
            self._memo[key] = self.loaders[who](self.path, _autoload(strategy))
        return self._memo[key]


def _autoload(strategy: str) -> Callable[[str, int], bool]:
    from .sweep import TRAMPOLINE_TYPES

    if strategy == "loaded":
        return lambda n, t: True
    if strategy == "loaded-without-trampolines":
        return lambda n, t: t not in TRAMPOLINE_TYPES
    assert strategy.startswith("only:")
    return functools.partial(_only, strategy[len("only:") :])


def _only(name: str, prog: str, prog_type: int) -> bool:
    return prog == name


def load_differences(loads: Loads, programs: List[str]) -> Tuple[str, List[Difference]]:
    """The first strategy that some loader gets through; program by program when every one refuses both."""
    who = list(loads.loaders)
    for strategy in ("loaded", "loaded-without-trampolines"):
        views = {w: loads.get(w, strategy) for w in who}
        if not all("error" in v for v in views.values()):
            return strategy, compare(strategy, {w: flat_load(v) for w, v in views.items()})
    out: List[Difference] = []
    for name in programs:
        views = {w: loads.get(w, f"only:{name}") for w in who}
        flats = {w: flat_load(v, f"program {name!r} alone: ") for w, v in views.items()}
        out += compare("per-program", {w: {k: v for k, v in f.items() if "loaded map" not in k} for w, f in flats.items()})
    return "per-program", out


@dataclass
class Context:
    """What an allow-list rule may consult: the object, the current libbpf, each loader's view after open."""

    path: Path
    current: oracle.Libbpf
    opened: Dict[str, View]

    def program(self, who: str, name: str) -> Optional[View]:
        return next((p for p in self.opened[who].get("programs", []) if p["name"] == name), None)

    def map(self, who: str, name: str) -> Optional[View]:
        return next((m for m in self.opened[who].get("maps", []) if m["name"] == name), None)


class RuleLike(Protocol):
    name: str
    follows: str


Allowed = Callable[[Context, Difference], Optional[RuleLike]]


def judge(ctx: Context, differences: List[Difference], allowed: Optional[Allowed]) -> None:
    """Set each difference's verdict (see the module's docstring)."""
    for d in differences:
        ours, cur = d.values.get("ours", NA), d.values.get("current", NA)
        if ours is NA or cur is NA or ours == cur:
            d.verdict = "current"
            continue
        rule = allowed(ctx, d) if allowed else None
        if rule is None:
            d.verdict = "fail"
        else:
            d.verdict, d.rule, d.follows = "kept", rule.name, rule.follows


def autocreate_as_ours(opened: Dict[str, View]) -> Dict[str, bool]:
    """Maps whose autocreate current libbpf sets otherwise than pybpfload after open (see allowed.py)."""
    ours = {m["name"]: m.get("autocreate") for m in opened["ours"].get("maps", [])}
    return {m["name"]: bool(ours[m["name"]]) for m in opened["current"].get("maps", [])
            if m["name"] in ours and m.get("autocreate") != ours[m["name"]]}  # fmt: skip


def three_way(path: Path, current: oracle.Libbpf, our_open: Callable[[Path], View], our_load: Load,
              prep: oracle.Prep, describe: Callable[[int, int], Any],
              allowed: Optional[Allowed], load: bool = True,
              isolated: Callable[[Callable[[], View]], View] = lambda f: f(), load_1_1: bool = True) -> ObjectResult:  # fmt: skip
    """Open (and ``load``) ``path`` with pybpfload, libbpf 1.1 and ``current``; every difference, judged.

    Without ``load_1_1`` libbpf 1.1 only opens the object (its load items are then n/a).
    """
    old = oracle.LIBBPF_1_1
    opened = {"ours": our_open(path), "1.1": old.open_view(path), "current": current.open_view(path)}
    res = ObjectResult()
    res.differences = compare("open", {w: flat_open(v) for w, v in opened.items()})
    if "error" in opened["1.1"] and "error" in opened["current"]:
        res.mode = "refused-by-libbpf"  # nothing to load with libbpf
    elif load:
        # current libbpf loads with pybpfload's autocreate where the two differ after open (the
        # difference itself is reported above): its load is then compared on the same maps
        fix = autocreate_as_ours(opened)

        def cur_prep(name: str, mtype: int, max_entries: int, value_size: int) -> Dict[str, int]:
            change = prep(name, mtype, max_entries, value_size)
            return {**change, "autocreate": fix[name]} if name in fix else change

        loaders: Dict[str, Load] = {
            "1.1": lambda p, a: isolated(lambda: old.load_view(p, a, prep, describe)),
            "current": lambda p, a: isolated(lambda: current.load_view(p, a, cur_prep, describe)),
            "ours": lambda p, a: isolated(lambda: our_load(p, a)),
        }
        if not load_1_1:
            del loaders["1.1"]
        names: List[str] = []
        for v in opened.values():
            names += [p["name"] for p in v.get("programs", []) if p["name"] not in names]
        res.mode, diffs = load_differences(Loads(path, loaders), names)
        res.differences += diffs
    judge(Context(path, current, opened), res.differences, allowed)
    return res
