"""Every example runs (``python examples/<style>/<name>.py``) and prints what it should.

What an example prints about the bundled object (its name, kernel version,
BTF type count, section, instruction count, strerror text, version) is
compared with what libbpf.so itself reports (the ORACLE, through ctypes).
"""

from __future__ import annotations

import ctypes
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from pybpfload.cli.demo import bundled_object

from .conftest import ROOT
from .kernel_adapt import as_libbpf_1_1_kversion
from .test_libbpf_api import oracle

EXAMPLES = ROOT / "examples"
STYLES = ("libbpf_style", "idiomatic")
# examples that load into the kernel or mount a bpffs
NEEDS_KERNEL = {
    "set_print",
    "object_load",
    "pin_maps",
    "pin_programs",
    "pin_object",
    "object_btf_fd",
    "multi_instance",
    "ring_buffer",
}
NAMES = sorted(p.stem for p in (EXAMPLES / "libbpf_style").glob("*.py"))


def _run(style: str, name: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / style / f"{name}.py")], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, f"{style}/{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _bpffs_mounts() -> int:
    return Path("/proc/self/mounts").read_text().count("pybpfload-example-bpffs-")  # examples/_support.py


def _kv(v: int) -> str:
    return f"Kernel Version: {v >> 16 & 0xFF}.{v >> 8 & 0xFF}.{v & 0xFF}"


def _expected(name: str, style: str) -> List[str]:
    """Lines (regular expressions) the example must print, from libbpf.so where it has an answer."""
    lib = oracle()
    path = bundled_object().encode()
    obj = lib.bpf_object__open_file(path, None)
    try:
        oname = lib.bpf_object__name(obj).decode()
        kversion = lib.bpf_object__kversion(obj)
        from pybpfload.syscall.features import running_kernel_version

        if as_libbpf_1_1_kversion(running_kernel_version()) == kversion:  # a Debian kernel: 1.1 reads the release
            kversion = running_kernel_version()  # what current libbpf and we report
        type_cnt = lib.btf__type_cnt(lib.bpf_object__btf(obj))
        prog = lib.bpf_object__find_program_by_name(obj, b"xdp_count")
        sec = lib.bpf_program__section_name(prog).decode()
        insn_cnt = lib.bpf_program__insn_cnt(prog)
    finally:
        lib.bpf_object__close(obj)
    buf = ctypes.create_string_buffer(20)
    ret = lib.libbpf_strerror(4001, buf, 20)
    full = ctypes.create_string_buffer(128)
    lib.libbpf_strerror(4001, full, 128)
    version = f"{lib.libbpf_major_version()}-{lib.libbpf_minor_version()}-{lib.libbpf_version_string().decode()}"
    q = re.escape
    table: Dict[str, List[str]] = {
        "get_version": [q(version)] if style == "libbpf_style" else [rf"mirroring libbpf {q(version.split('-')[2])}"],
        "strerror": [q(f"ErrCode {ret}: info {buf.value.decode()}")]
        if style == "libbpf_style"
        else [q(f"4001: {full.value.decode()}"), q(f"ELFError: code 4001 ({full.value.decode()})")],
        "set_print": [
            r"\[DEBUG\] pybpfload: prog 'xdp_count': loaded, \d+ insns, fd \d+",
            r"\[DEBUG\] .*map 'pkt_count': created",
        ],
        "object_open": [rf"opened {q(oname)}"],
        "object_open_file": [rf"opened {q(oname)}$", r"opened with .*object_name: renamed"],
        "object_load": ["BPF object loaded successfully"],
        "pin_maps": [r"maps pinned at /\S+/map_fd: pkt_count$", "maps unpinned, left: nothing"],
        "pin_programs": [r"BPF programs pinned at /\S+/progs: xdp_count$", "BPF programs unpinned, left: nothing"],
        "pin_object": [r"BPF object pinned at /\S+/progs: pkt_count xdp_count$", "BPF object unpinned, left: nothing"],
        "object_name": [q(f"object name: {oname}")],
        "object_kversion": [q(_kv(kversion))],
        "object_set_kversion": [q(_kv(394496))],
        "object_btf": [q(f"Number of BTF types: {type_cnt}")],
        "object_btf_fd": [r"BTF file descriptor: ([3-9]|\d\d+)$"],
        "find_program_by_name": [
            q(f"found xdp_count: section {sec}, {insn_cnt} instructions"),
            r"no_such_prog: (NULL, errno 2|None)",
        ],
        "multi_instance": [
            r"instance 0: verdict 0 \(XDP_ABORTED\)",
            r"instance 1: verdict 1 \(XDP_DROP\)",
            r"instance 2: not loaded",
            r"instance 3: verdict 3 \(XDP_TX\)",
            r"pkt_count\[0\] = 3$",
        ],
        "ring_buffer": [r"(poll: 3 records|ring_buffer__poll: 3 records)", r"consume\w*: 0 records"],
    }
    return table[name]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name", NAMES)
def test_example(name: str, style: str, request: pytest.FixtureRequest) -> None:
    if name in NEEDS_KERNEL:
        request.applymarker(pytest.mark.kernel)
        from .conftest import _REASON, REQUIRE_KERNEL

        if _REASON is not None:
            if REQUIRE_KERNEL:
                pytest.fail(f"PYBPFLOAD_REQUIRE_KERNEL=1 but the kernel is unavailable: {_REASON}")
            pytest.skip(f"needs the kernel: {_REASON}")
    mounts = _bpffs_mounts()
    out = _run(style, name)
    for pattern in _expected(name, style):
        assert re.search(pattern, out, re.MULTILINE), f"{style}/{name}: no line matching {pattern!r} in:\n{out}"
    assert _bpffs_mounts() == mounts  # a private bpffs is unmounted again


def test_both_styles_cover_every_spec_demo() -> None:
    wanted = {"get_version", "strerror", "set_print", "object_open", "object_open_file", "multi_instance", "object_load",
              "pin_maps", "pin_programs", "pin_object", "object_name", "object_kversion", "object_set_kversion",
              "object_btf", "object_btf_fd", "find_program_by_name", "ring_buffer"}  # fmt: skip
    for style in STYLES:
        assert {p.stem for p in (EXAMPLES / style).glob("*.py")} == wanted, style
