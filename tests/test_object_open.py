"""Object.open / open_mem: options, naming, attributes and setters before load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfload.errors import BPFOSError, ParseError, StateError
from pybpfload.object import Object, parse_kconfig, running_kernel_version
from pybpfload.syscall import ProgType

from .conftest import fixture_path


def test_name_from_file_name(tmp_path: Path) -> None:
    data = fixture_path("xdp_count.bpf.o").read_bytes()
    long = tmp_path / "a_very_long_object_name.bpf.o"
    long.write_bytes(data)
    assert Object.open(fixture_path("xdp_count.bpf.o")).name == "xdp_count"
    assert Object.open(long).name == "a_very_long_obj"  # 15 characters first, then cut at '.'
    assert Object.open(long, object_name="given.name").name == "given.name"


@pytest.mark.parametrize(
    "opts",
    [
        {"object_name": ""},
        {"object_name": "a\0b"},
        {"pin_root_path": ""},
        {"pin_root_path": "x" * 5000},
        {"btf_custom_path": ""},
        {"kconfig": "CONFIG_A\n"},
        {"kconfig": "CONFIG_A=\n"},
        {"kconfig": 5},
        {"kernel_log_level": 8},
        {"kernel_log_level": -1},
        {"relaxed_maps": "yes"},
    ],
)
def test_options_that_make_no_sense_raise_at_open(opts: dict) -> None:
    with pytest.raises(ParseError):
        Object.open(fixture_path("xdp_count.bpf.o"), **opts)
    with pytest.raises(ParseError):
        Object.open_mem(fixture_path("xdp_count.bpf.o").read_bytes(), **opts)


def test_options_are_kept() -> None:
    obj = Object.open(
        fixture_path("externs.bpf.o"),
        kconfig="# comment\nCONFIG_HZ=250\nCONFIG_BPF_JIT=y\n",
        btf_custom_path="/tmp/vmlinux.btf",
        kernel_log_level=2,
        pin_root_path="/sys/fs/bpf/mine",
    )
    assert obj.kconfig_values == {"CONFIG_HZ": "250", "CONFIG_BPF_JIT": "y"}
    assert obj.btf_custom_path == "/tmp/vmlinux.btf"
    assert all(p.log_level == 2 for p in obj.programs.values())
    assert parse_kconfig("CONFIG_X=1\nCONFIG_X=2\n") == {"CONFIG_X": "1"}


def test_missing_file_is_an_os_error() -> None:
    with pytest.raises(BPFOSError) as ei:
        Object.open("/nonexistent/x.bpf.o")
    assert ei.value.errno == 2


def test_empty_buffer() -> None:
    with pytest.raises(ParseError):
        Object.open_mem(b"")


def test_kversion() -> None:
    obj = Object.open(fixture_path("xdp_count.bpf.o"))
    rel = os.uname().release.split(".")
    major, minor = int(rel[0]), int(rel[1])
    assert obj.kversion >> 16 == major and (obj.kversion >> 8) & 0xFF == minor
    assert obj.kversion == running_kernel_version()
    obj.kversion = 0x050A00
    assert obj.kversion == 0x050A00
    assert obj.programs["xdp_count"].kern_version == 0x050A00
    with pytest.raises(ParseError):
        obj.kversion = -1
    obj._loaded = True
    with pytest.raises(StateError):
        obj.kversion = 1


def test_program_and_map_attributes_before_load() -> None:
    obj = Object.open(fixture_path("xdp_count.bpf.o"))
    p = obj.programs["xdp_count"]
    assert (p.name, p.section_name, p.type, p.insn_cnt, p.autoload) == ("xdp_count", "xdp", ProgType.BPF_PROG_TYPE_XDP, 12, True)
    assert p.license == "GPL"
    p.type = ProgType.BPF_PROG_TYPE_SOCKET_FILTER
    p.expected_attach_type = 0
    p.flags = 0
    p.autoload = False
    p.insns = p.insns[:8] + p.insns[8:]
    assert p.type == ProgType.BPF_PROG_TYPE_SOCKET_FILTER and not p.autoload
    m = obj.maps["pkt_count"]
    assert (m.key_size, m.value_size, m.max_entries) == (4, 8, 1)
    m.max_entries = 64
    m.flags = 0
    m.pin_path = "/sys/fs/bpf/x"
    assert obj.find_map_by_name("pkt_count") is m and m.max_entries == 64
    assert obj.find_map_by_name("nope") is None
    spec = obj.program_spec("xdp_count")
    assert spec is not None and spec.relocs[0].map_name == "pkt_count"
    assert obj.btf is not None and obj.btf.find_ids("xdp_count")
    assert obj.btf_ext


def test_import_stays_cheap() -> None:
    code = "import sys, pybpfload; pybpfload.__version__; print('elftools' in sys.modules, 'construct' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    code = "import sys, pybpfload.object, pybpfload.elf.insn, pybpfload.elf; print('elftools' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


# what a load must not import (issue 20): dataclasses (which imports inspect, ast, dis...),
# the debugging modules pyelftools imports (bound to stand-ins by elf/reader.py) and the
# typed-map codecs (built on a map's first use, never by the load's initial values)
_LOAD_IMPORTS = (
    "import sys\n"
    "from pybpfload import Object\n"
    "o = Object.open({path!r}){load}\n"
    "real = lambda n: n in sys.modules and '__getattr__' not in vars(sys.modules[n])\n"
    "print('dataclasses' in sys.modules, real('inspect'), real('pprint'), real('pdb'), real('traceback'),\n"
    "      'pybpfload.btf.values' in sys.modules)\n"
)


def test_open_imports_no_dataclasses() -> None:
    code = _LOAD_IMPORTS.format(path=str(fixture_path("core_task.bpf.o")), load="")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"] * 6


@pytest.mark.kernel
def test_load_imports_no_dataclasses() -> None:
    code = _LOAD_IMPORTS.format(path=str(fixture_path("core_task.bpf.o")), load="; o.load(); o.close()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"] * 6


def test_open_makes_no_bpf_syscalls() -> None:
    """Opening never reaches bpf(2): the syscall wrapper is replaced by one that fails the test."""
    import pybpfload.syscall._raw as raw

    code = (
        "import pybpfload.syscall._raw as r\n"
        "def boom(*a, **k): raise SystemExit('bpf syscall during open')\n"
        "r.bpf = boom; r.syscall = boom\n"
        "import pybpfload.syscall.commands as c\n"
        "c.bpf = boom\n"
        "from pybpfload.object import Object\n"
        "import glob\n"
        "for f in sorted(glob.glob('fixtures/*.bpf.o')):\n"
        "    o = Object.open(f, relaxed_maps=True); o.btf; o.close()\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.stdout.strip() == "ok", out.stderr
    assert raw  # the module exists where the check patches it


def test_gc_is_paused_while_building_and_restored_as_found() -> None:
    """pybpfload pauses the cyclic collector while it imports and builds (start-up) and
    leaves it as it found it: enabled, or disabled by the application; nesting and
    threads re-enable it once, and an error inside does not leave it off."""
    import gc
    import threading

    from pybpfload._gc import paused

    seen = []
    orig = gc.isenabled()
    try:
        gc.enable()
        with paused():
            seen.append(gc.isenabled())
            with paused():
                seen.append(gc.isenabled())
            seen.append(gc.isenabled())
        seen.append(gc.isenabled())
        with pytest.raises(RuntimeError):
            with paused():
                raise RuntimeError("inside")
        seen.append(gc.isenabled())
        gc.disable()
        with paused():
            pass
        seen.append(gc.isenabled())
        gc.enable()
        inside = threading.Event()
        leave = threading.Event()

        def hold() -> None:
            with paused():
                inside.set()
                leave.wait(5)

        t = threading.Thread(target=hold)
        t.start()
        inside.wait(5)
        with paused():
            pass
        seen.append(gc.isenabled())  # the other thread is still inside
        leave.set()
        t.join()
        seen.append(gc.isenabled())
        Object.open(fixture_path("xdp_count.bpf.o")).close()
        seen.append(gc.isenabled())
    finally:
        gc.enable() if orig else gc.disable()
    assert seen == [False, False, False, True, True, False, False, True, True]
