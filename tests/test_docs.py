"""The documentation is tested: every code block of docs/**/*.md runs, and the API
reference builds and covers the public API.

- ``test_chapter_runs``: each chapter's ```python blocks (not ```python no-run),
  ``pybpfload ...`` lines of ```sh blocks and ``$ pybpfload ...`` lines of
  ```console blocks (whose output is checked) run in order in one fresh child
  process, from the repository root, in private mount and network namespaces
  with a fresh bpffs on /sys/fs/bpf and ``lo`` up (tools/rundocs.py).  A
  failure names the chapter, the block and its Markdown line.
- ``test_apiref_*``: tools/apiref.py (pydoc, standard library only) writes one
  page per public module; every public name appears, and every public class
  and function of ``pybpfload`` and ``pybpfload.link`` has a docstring.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import ROOT, REQUIRE_KERNEL

DOCS = ROOT / "docs"
CHAPTERS = sorted(DOCS.rglob("*.md"))


def _tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


rundocs = _tool("rundocs")
apiref = _tool("apiref")


def test_guide_has_runnable_blocks() -> None:
    guide = [p for p in CHAPTERS if p.parent.name == "guide" and p.name[:2].isdigit()]
    assert len(guide) >= 9, guide
    for chapter in guide:
        if chapter.name.startswith("04-"):
            continue  # short, and one block
        assert len(rundocs.extract(chapter)) >= 2, f"{chapter}: fewer than 2 runnable blocks"


def test_extract_honours_no_run(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text("text\n```python\nx = 1\n```\n```python no-run\nraise SystemExit\n```\n```c\nint x;\n```\n"
                  "```sh\npybpfload --help\n```\n")
    blocks = rundocs.extract(md)
    assert [(b.lang, b.line, b.code) for b in blocks] == [("python", 3, "x = 1\n"), ("sh", 12, "pybpfload --help\n")]


@pytest.mark.kernel
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[str(p.relative_to(DOCS)) for p in CHAPTERS])
def test_chapter_runs(chapter: Path) -> None:
    if shutil.which("unshare") is None:
        if REQUIRE_KERNEL:
            pytest.fail("unshare (util-linux) is needed to run the documentation")
        pytest.skip("unshare (util-linux) is not installed")
    r = rundocs.run_chapter(chapter)
    assert r.returncode == 0, f"{chapter.relative_to(ROOT)} failed:\n{r.stderr[-6000:]}"


def test_a_lying_doc_fails(tmp_path: Path) -> None:
    """The runner reports the block and Markdown line of a failed assert (no kernel needed: no bpf)."""
    md = tmp_path / "lie.md"
    md.write_text("# lie\n\n```python\nx = 1\n```\n\nthen\n\n```python\nassert x == 2, 'the doc lies'\n```\n")
    blocks = rundocs.extract(md)
    ns: dict = {}
    assert rundocs.run_block(blocks[0], "lie.md", ns) is None
    report = rundocs.run_block(blocks[1], "lie.md", ns)
    assert report is not None
    assert "lie.md: block 2 (python, line 10)" in report and "the doc lies" in report
    assert 'File "lie.md", line 10' in report


# ---------------------------------------------------------------- API reference
@pytest.fixture(scope="module")
def apiref_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api")
    apiref.build(out)
    return out


def test_apiref_one_page_per_public_module(apiref_dir: Path) -> None:
    for mod in ("pybpfload", "pybpfload.link", "pybpfload.libbpf", "pybpfload.errors"):
        page = apiref_dir / f"{mod}.html"
        assert page.is_file() and page.stat().st_size > 1000, page
    assert "pybpfload.link.html" in (apiref_dir / "index.html").read_text()


@pytest.mark.parametrize("module", ["pybpfload", "pybpfload.link"])
def test_apiref_lists_every_public_name(apiref_dir: Path, module: str) -> None:
    import html
    import re

    text = html.unescape(re.sub(r"<[^>]+>", "", (apiref_dir / f"{module}.html").read_text()))
    names = apiref.public_objects(module)
    missing = [n for n in names if not re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", text)]
    assert not missing, f"{module}: public names missing from the API reference: {missing}"


def test_apiref_no_private_modules(apiref_dir: Path) -> None:
    import re

    for page in apiref_dir.glob("*.html"):
        text = page.read_text()
        assert "Package Contents" not in text, page
        links = set(re.findall(r'href="([^"#]+)', text))
        assert links <= {f"{m}.html" for m in apiref.PUBLIC_MODULES} | {"index.html", "."}, (page, links)


def test_public_names_have_docstrings() -> None:
    missing = apiref.missing_docstrings(("pybpfload", "pybpfload.link"))
    assert not missing, "public classes / functions without a docstring:\n  " + "\n  ".join(missing)


def test_readme_links_the_guide() -> None:
    assert "docs/guide/" in (ROOT / "README.md").read_text()
