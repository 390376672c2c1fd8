"""The house as its imports draw it (issue 17): folders by stage, no import
circle that spans folders, no two modules with one name, a small top level,
and pure packages that never reach the syscall layer.

Every import counts: top-level, lazy (inside a function) and TYPE_CHECKING ones.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set

PKG = Path(__file__).resolve().parent.parent / "pybpfload"

# the stages whose code is pure: bytes in, models out, no syscalls
PURE = ("pybpfload.abi", "pybpfload.elf", "pybpfload.btf", "pybpfload.reloc")
# the one place of the relocation engine that performs the load
PURE_EXCEPTIONS = {"pybpfload.reloc.loader"}
IMPURE = ("pybpfload.syscall", "pybpfload.kernel", "pybpfload.link", "pybpfload.events", "pybpfload.libbpf", "pybpfload.cli.main")


def _modules() -> Dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: Set[str]) -> Set[str]:
    """Every pybpfload module ``name`` imports, wherever the import statement is."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            bases = [a.name for a in node.names]
            found.update(b for b in bases if b.startswith("pybpfload"))
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")
            if node.level > 1:
                base = base[: -(node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        if not mod.startswith("pybpfload"):
            continue
        for a in node.names:
            sub = f"{mod}.{a.name}"
            found.add(sub if sub in known else mod)
    found.discard(name)
    return {m for m in found if m in known}


def _graph() -> Dict[str, Set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _folder(mod: str) -> str:
    """A module's folder ('pybpfload.btf' for btf/...); a top-level module is a
    room of its own (errors.py at the bottom of the house, object.py near the top)."""
    parts = mod.split(".")
    path = PKG.parent.joinpath(*parts)
    if path.is_dir() or len(parts) == 2:  # a package's __init__ belongs to its own folder
        return mod
    return ".".join(parts[:-1])


def _sccs(graph: Dict[str, Set[str]]) -> List[List[str]]:
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_circle_spans_folders() -> None:
    bad = [c for c in _sccs(_graph()) if len({_folder(m) for m in c}) > 1]
    assert not bad, "import circles across folders:\n" + "\n".join(", ".join(c) for c in bad)


def test_folders_themselves_form_no_circle() -> None:
    """Between folders, arrows go one way: the folders' graph has no circle."""
    g = _graph()
    fg: Dict[str, Set[str]] = defaultdict(set)
    for a, deps in g.items():
        for b in deps:
            fa, fb = _folder(a), _folder(b)
            # a package's own __init__ re-exporting its children is not an arrow between folders
            if fa != fb and not (a == fa and fb.startswith(fa + ".")):
                fg[fa].add(fb)
    bad = _sccs(dict(fg))
    assert not bad, "circles between folders:\n" + "\n".join(", ".join(c) for c in bad)


def test_no_two_modules_share_a_name() -> None:
    names: Dict[str, List[str]] = defaultdict(list)
    for mod in _modules():
        last = mod.rsplit(".", 1)[-1]
        if last not in ("pybpfload", "__main__") and not PKG.parent.joinpath(*mod.split(".")).is_dir():
            names[last].append(mod)
    dup = {k: v for k, v in names.items() if len(v) > 1}
    assert not dup, dup


def test_small_top_level() -> None:
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 8, top


def test_pure_packages_never_reach_the_kernel() -> None:
    """elf/, btf/, abi/ and reloc/ (but for the loader) import nothing from syscall/,
    kernel/, link/, events/, libbpf/ or cli/, directly or through another module."""
    g = _graph()

    def reach(start: str) -> Set[str]:
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            for d in g.get(m, ()):
                if d not in seen and d not in PURE_EXCEPTIONS:
                    seen.add(d)
                    todo.append(d)
        return seen

    bad = {}
    for mod in g:
        if mod.startswith(PURE) and mod not in PURE_EXCEPTIONS:
            hit = sorted(d for d in reach(mod) if d.startswith(IMPURE))
            if hit:
                bad[mod] = hit
    assert not bad, bad
