#!/usr/bin/env python3
"""Build the API reference of pybpfload's public modules from their docstrings.

    python tools/apiref.py -o build/api [--format html|text]

Writes one page per public module (``pybpfload.html``, ``pybpfload.link.html``,
``pybpfload.libbpf.html``, ``pybpfload.errors.html``) and an ``index.html``,
with :mod:`pydoc` from the standard library: no network, nothing to install,
no root (nothing is loaded into the kernel).

Only the public API is documented: the names a module lists in ``__all__``
(``pybpfload`` and ``pybpfload.link`` import theirs lazily; they are resolved
here first, so that pydoc sees them), never the private modules behind them.
``missing_docstrings()`` lists the public classes and functions without one.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import pydoc
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PUBLIC_MODULES = ("pybpfload", "pybpfload.link", "pybpfload.libbpf", "pybpfload.errors")


def load(name: str) -> Any:
    """Import a public module and resolve its lazy names (so pydoc lists them)."""
    mod = importlib.import_module(name)
    for attr in getattr(mod, "__all__", ()):
        getattr(mod, attr)
    return mod


def public_objects(name: str) -> Dict[str, Any]:
    """The names of a module's ``__all__`` and their objects."""
    mod = load(name)
    return {attr: getattr(mod, attr) for attr in getattr(mod, "__all__", ())}


def missing_docstrings(modules: "tuple[str, ...]" = ("pybpfload", "pybpfload.link")) -> List[str]:
    """Public classes and functions of ``modules`` without a docstring of their own, as "module.name (defined in ...)"."""
    out = []
    for name in modules:
        for attr, obj in public_objects(name).items():
            if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)):
                continue
            doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
            if not (doc and doc.strip()):
                out.append(f"{name}.{attr} (defined in {getattr(obj, '__module__', '?')})")
    return out


class _HTMLDoc(pydoc.HTMLDoc):
    """pydoc's HTML without file links (pages are moved around) and with links between our pages."""

    def filelink(self, url: str, path: str) -> str:  # noqa: D102
        return os.path.basename(path)

    def classlink(self, object: Any, modname: str) -> str:  # noqa: A002,D102
        """A base class of a private module is named, not linked (there is no page for it)."""
        if getattr(object, "__module__", None) not in PUBLIC_MODULES:
            return object.__name__
        return super().classlink(object, modname)

    def modulelink(self, object: Any) -> str:  # noqa: A002,D102
        if object.__name__ not in PUBLIC_MODULES:
            return object.__name__
        return super().modulelink(object)


def build(outdir: "os.PathLike[str] | str", fmt: str = "html", modules: "tuple[str, ...]" = PUBLIC_MODULES) -> List[Path]:
    """Write one page per module into ``outdir`` (made if missing); returns the paths written."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    html = _HTMLDoc()
    for name in modules:
        mod = _public_view(load(name))
        if fmt == "html":
            body = html.document(mod, name)
            page = html.page(f"{name} — pybpfload API reference", body)
            # pydoc links words such as "object" to builtins.html, which we do not write
            page = re.sub(r'<a href="builtins\.html#\w+">(\w+)</a>', r"\1", page)
            path = out / f"{name}.html"
        else:
            page = pydoc.plain(pydoc.TextDoc().document(mod, name))
            path = out / f"{name}.txt"
        path.write_text(page, encoding="utf-8")
        written.append(path)
    if fmt == "html":
        import pybpfload

        items = "\n".join(
            f'<li><a href="{p.name}">{p.stem}</a> — {_first_line(importlib.import_module(p.stem))}</li>' for p in written
        )
        index = html.page(
            "pybpfload API reference",
            f"<h1>pybpfload {pybpfload.__version__} API reference</h1>\n<ul>\n{items}\n</ul>\n"
            "<p>The user guide is docs/guide/ in the repository.</p>",
        )
        (out / "index.html").write_text(index, encoding="utf-8")
        written.append(out / "index.html")
    return written


def _public_view(mod: Any) -> Any:
    """The module without ``__path__``: pydoc would list a package's private submodules."""
    import types

    view = types.ModuleType(mod.__name__, mod.__doc__)
    view.__dict__.update({k: v for k, v in vars(mod).items() if k not in ("__path__", "__getattr__", "__dir__")})
    return view


def _first_line(mod: Any) -> str:
    import html as _html

    doc = (mod.__doc__ or "").strip().splitlines()
    return _html.escape(doc[0]) if doc else ""


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    ap.add_argument("--format", choices=("html", "text"), default="html")
    ap.add_argument("--check", action="store_true", help="exit 1 when a public class or function has no docstring")
    args = ap.parse_args(argv)
    for path in build(args.output, args.format):
        print(path)
    missing = missing_docstrings()
    if missing:
        print(f"{len(missing)} public name(s) without a docstring:", file=sys.stderr)
        for m in missing:
            print(f"  {m}", file=sys.stderr)
        if args.check:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
