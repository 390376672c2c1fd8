"""The pybpfload command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfload import Map, MapType as MT
from pybpfload.cli.main import run

from .conftest import require_tool
from .kernel_adapt import has_bpf_loop


@pytest.mark.kernel
def test_map_list_and_dump_agree_with_bpftool(bpffs: Path, capsys: pytest.CaptureFixture) -> None:
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 4, 8, name="cli_map") as m:
        m[1] = 100
        m[2] = 200
        info = m.info()
        assert run(["map", "list", "--json"]) == 0
        rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows[info.id]["name"] == "cli_map" and rows[info.id]["type"] == "hash"
        m.pin(str(bpffs / "m"))
        assert run(["map", "dump", str(bpffs / "m"), "--json"]) == 0
        ours = {e["key"]: e["value"] for e in json.loads(capsys.readouterr().out)}
        tool = require_tool("bpftool")
        theirs = json.loads(subprocess.run([tool, "map", "dump", "id", str(info.id), "-j"], capture_output=True, text=True, check=True).stdout)
        assert ours == {"".join(x[2:] for x in e["key"]): "".join(x[2:] for x in e["value"]) for e in theirs}
        assert run(["map", "dump", str(info.id)]) == 0
        text = capsys.readouterr().out
        assert "key: 01 00 00 00  value: 64 00 00 00" in text and "Found 2 elements" in text
        m.unpin()


@pytest.mark.kernel
def test_prog_list_json(capsys: pytest.CaptureFixture) -> None:
    assert run(["prog", "list", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


def test_errors_are_one_line_and_nonzero() -> None:
    out = subprocess.run([sys.executable, "-m", "pybpfload", "map", "dump", "/nonexistent/pin"], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.startswith("pybpfload: error:") and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_no_command_prints_help() -> None:
    out = subprocess.run([sys.executable, "-m", "pybpfload"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage" in out.stderr


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpfload", *args], capture_output=True, text=True)


@pytest.mark.kernel
def test_demo_is_the_readme_main_job() -> None:
    out = _cli("demo", "--packets", "4")
    assert out.returncode == 0, out.stderr
    assert "pkt_count[0] = 4" in out.stdout
    assert "read through the pin: pkt_count[0] = 4" in out.stdout
    assert "unpinned: []" in out.stdout


def test_demo_object_is_shipped_in_the_package() -> None:
    from pybpfload.cli.demo import bundled_object

    assert Path(bundled_object()).read_bytes() == (FIXTURES / "xdp_count.bpf.o").read_bytes()


def test_inspect_agrees_with_the_model() -> None:
    from pybpfload import Object

    out = _cli("inspect", str(FIXTURES / "subprogs.bpf.o"), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    model = Object.open(FIXTURES / "subprogs.bpf.o").model
    assert [p["name"] for p in info["programs"]] == [p.name for p in model.programs]
    assert [p["insns"] for p in info["programs"]] == [p.insn_cnt for p in model.programs]
    assert {m["name"] for m in info["maps"]} == {m.name for m in model.maps}
    text = _cli("inspect", str(FIXTURES / "subprogs.bpf.o")).stdout
    assert "static_helper" in text and "subprogram" in text and "results" in text


def test_disasm_names_helpers_and_fails_cleanly() -> None:
    out = _cli("disasm", str(FIXTURES / "xdp_count.bpf.o"), "xdp_count")
    assert out.returncode == 0 and "call 1\t; bpf_map_lookup_elem" in out.stdout
    bad = _cli("disasm", str(FIXTURES / "xdp_count.bpf.o"), "nope")
    assert bad.returncode == 1 and "no program 'nope'" in bad.stderr
    broken = _cli("inspect", str(FIXTURES / "malformed" / sorted(p.name for p in (FIXTURES / "malformed").iterdir())[0]))
    assert broken.returncode == 1 and broken.stderr.startswith("pybpfload: error:") and "Traceback" not in broken.stderr


@pytest.mark.kernel
def test_load_mirrors_bpftool_loadall(bpffs: Path) -> None:
    out = _cli("load", str(FIXTURES / "subprogs.bpf.o"), str(bpffs / "progs"), "--pinmaps", str(bpffs / "maps"))
    if not has_bpf_loop():  # xdp_one calls bpf_loop (5.17+): a clear error naming it, no traceback
        assert out.returncode == 1 and "xdp_one" in out.stderr and "Traceback" not in out.stderr
        return
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (bpffs / "progs").iterdir()) == sorted(["tc_first", "tc_second", "xdp_one", "xdp_two", "sock_plain"])
    assert [p.name for p in (bpffs / "maps").iterdir()] == ["results"]
    tool = require_tool("bpftool")
    shown = json.loads(subprocess.run([tool, "prog", "show", "pinned", str(bpffs / "progs" / "xdp_two"), "-j"], capture_output=True, text=True, check=True).stdout)
    assert shown["name"] == "xdp_two"
    for d in ("progs", "maps"):
        for p in (bpffs / d).iterdir():
            p.unlink()


@pytest.mark.kernel
def test_verifier_errors_print_the_log() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = _cli("load", str(FIXTURES / "verifier_reject.bpf.o"), d)
    assert out.returncode == 1
    assert "unchecked_read" in out.stderr and "verifier log:" in out.stderr and "invalid access to packet" in out.stderr
    assert "Traceback" not in out.stderr


# ---------------------------------------------------------------- start-up (issue 20)
@pytest.mark.parametrize(
    "argv",
    [
        ["load", "a.o", "/p"],
        ["--debug", "load", "a.o", "/p"],
        ["load", "a.o", "/p", "--pinmaps", "/m"],
        ["load", "--pinmaps=/m", "a.o", "/p"],
        ["load", "a.o", "--pinmaps", "/m", "/p"],
        ["load", "a.o", "/p", "--pinmaps", "/m1", "--pinmaps", "/m2"],
        ["inspect", "a.o"],
        ["inspect", "--json", "a.o"],
        ["inspect", "a.o", "--json", "--json"],
    ],
)
def test_plain_command_lines_read_as_argparse_reads_them(argv: list) -> None:
    from pybpfload.cli.main import build_parser, parse_plain

    plain = parse_plain(argv)
    assert plain is not None
    assert vars(plain) == vars(build_parser(argv[1] if argv[0] == "--debug" else argv[0]).parse_args(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["load", "a.o"],  # missing
        ["load", "a.o", "/p", "extra"],
        ["load", "-h"],
        ["load", "a.o", "/p", "--pin", "/m"],  # an abbreviation argparse accepts
        ["load", "a.o", "/p", "--pinmaps"],
        ["load", "a.o", "/p", "--pinmaps", "--debug"],
        ["load", "a.o", "/p", "--debug"],  # --debug belongs before the subcommand
        ["load", "--", "a.o", "/p"],
        ["inspect", "a.o", "--json=1"],
        ["disasm", "a.o"],
        ["--debug"],
        [],
    ],
)
def test_anything_else_is_left_to_argparse(argv: list) -> None:
    from pybpfload.cli.main import parse_plain

    assert parse_plain(argv) is None


def test_the_command_imports_no_argparse_for_a_plain_line() -> None:
    code = (
        "import sys\nfrom pybpfload.__main__ import main\n"
        f"rc = main(['inspect', {str(FIXTURES / 'xdp_count.bpf.o')!r}])\n"
        "print('ARGPARSE', 'argparse' in sys.modules, rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "ARGPARSE False 0"
    out = subprocess.run([sys.executable, "-c", code.replace("'inspect', ", "'inspect', '--js', ")], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "ARGPARSE True 0"  # abbreviated: argparse read it


def test_console_exit_flushes_and_keeps_the_status(tmp_path: Path) -> None:
    """console() ends the process without interpreter teardown: buffered output still
    arrives whole (to a pipe and to a file), and the status is the command's."""
    code = "import sys; sys.argv = ['pybpfload'] + sys.argv[1:]; from pybpfload.__main__ import console; console()"
    big = str(FIXTURES / "subprogs.bpf.o")
    piped = subprocess.run([sys.executable, "-c", code, "inspect", big, "--json"], capture_output=True, text=True)
    assert piped.returncode == 0
    assert json.loads(piped.stdout) == json.loads(_cli("inspect", big, "--json").stdout)
    out = tmp_path / "out.json"
    with out.open("w") as f:
        assert subprocess.run([sys.executable, "-c", code, "inspect", big, "--json"], stdout=f).returncode == 0
    assert json.loads(out.read_text()) == json.loads(piped.stdout)
    bad = subprocess.run([sys.executable, "-c", code, "disasm", big, "nope"], capture_output=True, text=True)
    assert bad.returncode == 1 and "no program 'nope'" in bad.stderr
    usage = subprocess.run([sys.executable, "-c", code, "load"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr
