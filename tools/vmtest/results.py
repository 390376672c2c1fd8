"""Results of a matrix run: pytest's JUnit XML and summary line in, results.json
and a Markdown feature-by-kernel table out."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

OUTCOMES = ("passed", "failed", "error", "skipped")


@dataclass(frozen=True)
class TestOutcome:
    """One test's outcome on one kernel, with the first line of its failure or skip message."""

    nodeid: str
    outcome: str  # one of OUTCOMES
    message: str = ""


@dataclass(frozen=True)
class KernelResult:
    """The kernel-marked tests' results on one kernel."""

    name: str  # "5.10", ..., or "host"
    release: str  # uname -r
    status: Optional[int]  # pytest's exit status; None if the guest never reported one
    seconds: float
    summary: str  # pytest's closing line, or why there is none
    tests: List[TestOutcome] = field(default_factory=list)
    package_version: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 0

    def counts(self) -> Dict[str, int]:
        c = {o: 0 for o in OUTCOMES}
        for t in self.tests:
            c[t.outcome] = c.get(t.outcome, 0) + 1
        return c


_SUMMARY = re.compile(r"^(?:\d+ \w+(?:, |(?= in )))+ in [\d.]+s\b|^no tests ran in [\d.]+s\b")


def summary_line(output: str) -> str:
    """pytest's closing line ("1 failed, 66 passed, 10 deselected in 15.52s"), or ""."""
    for line in reversed(output.splitlines()):
        s = line.strip().strip("=").strip()
        if _SUMMARY.match(s):
            return s
    return ""


def summary_counts(line: str) -> Dict[str, int]:
    """Counts of a pytest closing line: {"failed": 1, "passed": 66, "deselected": 10}."""
    counts: Dict[str, int] = {}
    for n, word in re.findall(r"(\d+) (\w+)", line.split(" in ")[0]):
        word = {"errors": "error", "warnings": "warning"}.get(word, word)
        counts[word] = counts.get(word, 0) + int(n)
    return counts


def _nodeid(classname: str, name: str) -> str:
    """pytest node id from JUnit's dotted classname: tests.test_maps.TestX + t -> tests/test_maps.py::TestX::t."""
    if not classname and "." in name and "/" not in name:  # collection error: name is the dotted module
        classname, name = name, ""
    parts = classname.split(".") if classname else []
    for i, p in enumerate(parts):
        if p.startswith("test_") or p.endswith("_test"):
            path = "/".join(parts[: i + 1]) + ".py"
            return "::".join([path, *parts[i + 1 :], *([name] if name else [])])
    return "::".join([*parts, name]) if parts else name


def _first_line(text: Optional[str]) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def parse_junit(xml_text: str) -> List[TestOutcome]:
    """Test outcomes from pytest's --junitxml output."""
    root = ET.fromstring(xml_text)
    outcomes = []
    for case in root.iter("testcase"):
        nodeid = _nodeid(case.get("classname", ""), case.get("name", ""))
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = _first_line(child.get("message")) or _first_line(child.text)
                if outcome != "skipped":
                    break
        outcomes.append(TestOutcome(nodeid, outcome, message))
    return outcomes


def feature_of(nodeid: str) -> str:
    """The table row a test belongs to: its module without test_ (tests/test_maps.py -> maps)."""
    module = nodeid.split("::")[0].rsplit("/", 1)[-1]
    module = module[:-3] if module.endswith(".py") else module
    return module[5:] if module.startswith("test_") else module


def dump(results: Sequence[KernelResult], meta: Mapping[str, str]) -> str:
    """results.json text."""
    doc = {"meta": dict(meta), "kernels": [asdict(r) for r in results]}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def load(text: str) -> List[KernelResult]:
    """KernelResults from results.json text."""
    doc = json.loads(text)
    out = []
    for k in doc.get("kernels", []):
        tests = [TestOutcome(**t) for t in k.pop("tests", [])]
        out.append(KernelResult(tests=tests, **k))
    return out


def load_meta(text: str) -> Dict[str, str]:
    return dict(json.loads(text).get("meta", {}))


def _cell(outcomes: List[TestOutcome]) -> str:
    if not outcomes:
        return "–"
    passed = sum(t.outcome == "passed" for t in outcomes)
    bad = sum(t.outcome in ("failed", "error") for t in outcomes)
    skipped = sum(t.outcome == "skipped" for t in outcomes)
    mark = "✗" if bad else ("✓" if passed else "○")
    text = f"{mark} {passed}/{len(outcomes)}"
    return text + (f" ({skipped} skipped)" if skipped else "")


def render_table(results: Sequence[KernelResult], meta: Optional[Mapping[str, str]] = None) -> str:
    """Markdown: one row per feature (test module), one column per kernel, then the failures."""
    features: Dict[str, Dict[str, List[TestOutcome]]] = {}
    for r in results:
        for t in r.tests:
            features.setdefault(feature_of(t.nodeid), {}).setdefault(r.name, []).append(t)
    head = "| feature | " + " | ".join(f"{r.name} ({r.release})" for r in results) + " |"
    lines = [head, "|" + "---|" * (len(results) + 1)]
    for feat in sorted(features):
        cells = [_cell(features[feat].get(r.name, [])) for r in results]
        lines.append(f"| {feat} | " + " | ".join(cells) + " |")
    lines.append("| **all kernel tests** | " + " | ".join(_cell(list(r.tests)) for r in results) + " |")
    notes = []
    for r in results:
        if r.status != 0 and not r.tests:
            notes.append(f"- {r.name}: no results ({r.summary or 'status ' + str(r.status)})")
        for t in r.tests:
            if t.outcome in ("failed", "error"):
                notes.append(f"- {r.name}: `{t.nodeid}` {t.outcome}: {t.message}")
    out = []
    if meta and meta.get("date"):
        out.append(
            f"Kernel-marked tests per kernel, from the matrix run of {meta['date']} "
            "(✓/✗ passed/total; guests under qemu, `host` is the CI machine's own kernel).\n"
        )
    out += lines
    if notes:
        out += ["", "Failures:", "", *notes]
    return "\n".join(out) + "\n"


def write_results(path: Path, results: Sequence[KernelResult], meta: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(results, meta))
