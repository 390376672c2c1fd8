"""BTF in the kernel: BTF_LOAD with its log, reading BTF back by id, feature probes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pybpfload.btf import Spec
from pybpfload.btf import types as T
from pybpfload.btf.encode import Builder
from pybpfload.syscall.btf_features import PROBES, probe
from pybpfload.btf.fixup import BtfFeatures
from pybpfload.syscall.btf_handle import BtfHandle, iter_kernel_btf
from pybpfload.btf.vmlinux import vmlinux_spec
from pybpfload import Object
from pybpfload.btf.fixup import needs_sanitizing
from pybpfload.errors import BPFError, StateError, VerifierError

from .conftest import FIXTURES, require_tool
from .kernel_adapt import vmlinux_has
from .test_btf_decode import VMLINUX, elf_section

pytestmark = pytest.mark.kernel


def _small() -> bytes:
    b = Builder()
    i = b.add(T.Int(0, "int", 4, T.INT_SIGNED, 0, 32))
    b.add(T.Struct(0, "pair", 8, (T.Member("a", i, 0, 0), T.Member("b", i, 32, 0))))
    return b.encode()


def test_load_and_read_back() -> None:
    blob = _small()
    with BtfHandle.load(Spec.from_bytes(blob)) as h:
        info = h.info()
        assert info.id > 0 and not info.kernel_btf and info.size == len(blob)
        assert h.raw() == blob
        with BtfHandle.from_id(info.id) as again:
            assert again.raw() == blob
            assert again.spec().find("pair", T.Struct).size == 8
    assert h.closed
    with pytest.raises(StateError):
        h.info()


def test_load_keeps_the_log_when_asked() -> None:
    with BtfHandle.load(_small(), log_level=1) as h:
        assert "pair" in h.log or h.log == ""  # some kernels log only on failure
    with BtfHandle.load(_small()) as h:
        assert h.log == ""


def test_rejection_raises_with_the_kernel_log() -> None:
    b = Builder()
    b.add(T.Pointer(0, "", 42))  # dangling type id
    with pytest.raises(VerifierError) as e:
        BtfHandle.load(b.encode())
    assert e.value.errno and e.value.log


def test_vmlinux_read_back_by_id_equals_sysfs() -> None:
    if not os.path.exists(VMLINUX):
        pytest.skip("no kernel BTF")
    if not vmlinux_has("bpf_btf_info", "kernel_btf"):
        # before 5.11 vmlinux BTF had no id (nor BTF info names): no BTF object by id is vmlinux
        sysfs = Path(VMLINUX).read_bytes()
        for h in iter_kernel_btf():
            with h:
                assert h.info().size != len(sysfs) or h.raw() != sysfs
        return
    for h in iter_kernel_btf():
        with h:
            info = h.info()
            if info.kernel_btf and info.name == "vmlinux":
                assert h.raw() == Path(VMLINUX).read_bytes()
                assert len(h.spec()) == len(vmlinux_spec())
                return
    pytest.fail("no vmlinux BTF object found by id")


def _last_json(text: str) -> dict:
    """bpftool's JSON; on 5.10 bpftool 7.1 prints an {"error": ...} object first (its BTF info is too big there)."""
    dec = json.JSONDecoder()
    value, end = dec.raw_decode(text)
    while "error" in value and end < len(text.rstrip()):
        value, end = dec.raw_decode(text, end + 1 if text[end] == "," else end)
    return value


def test_btf_of_a_program_loaded_by_bpftool(bpffs: Path) -> None:
    """The BTF of a loaded program, read by id, decodes like bpftool's dump of the same id."""
    from .test_btf_decode import as_bpftool, normalise_oracle

    tool = require_tool("bpftool")
    fixture, pname = FIXTURES / "btf_kinds.bpf.o", "btf_kinds_prog"
    res = subprocess.run([tool, "prog", "loadall", str(fixture), str(bpffs / "p")], capture_output=True, text=True)
    if res.returncode != 0:
        # libbpf cannot load btf_kinds here (an older kernel): neither can we; compare xdp_count's BTF instead
        with Object.open(fixture) as ours:
            with pytest.raises(BPFError):
                ours.load()
        fixture, pname = FIXTURES / "xdp_count.bpf.o", "xdp_count"
        subprocess.run([tool, "prog", "loadall", str(fixture), str(bpffs / "p")], check=True)
    prog = json.loads(subprocess.run([tool, "-j", "prog", "show", "pinned", str(bpffs / "p" / pname)], check=True, capture_output=True, text=True).stdout)
    oracle = _last_json(subprocess.run([tool, "-j", "btf", "dump", "id", str(prog["btf_id"])], check=True, capture_output=True, text=True).stdout)["types"]
    with BtfHandle.from_id(prog["btf_id"]) as h:
        spec = h.spec()
    assert len(spec) == len(oracle) + 1
    for want in oracle:
        assert as_bpftool(spec, spec.type(want["id"])) == normalise_oracle(want)
    local = Spec.from_bytes(elf_section(fixture, ".BTF") or b"")
    if not needs_sanitizing(probe()):  # sanitising renames what it replaces
        assert [t.name for t in spec] == [t.name for t in local]
    else:
        assert len(spec) == len(local)


def test_feature_probes() -> None:
    feats = probe()
    assert probe() is feats  # cached per process
    # oracle: every kind this kernel's own BTF uses (bpftool reads it) must probe as supported
    dump = subprocess.run(
        [require_tool("bpftool"), "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], check=True, capture_output=True, text=True
    ).stdout
    kinds = {ln.split()[1] for ln in dump.splitlines() if ln.startswith("[")}
    uses = {
        "func": "FUNC" in kinds,
        "func_global": "linkage=global" in dump,
        "datasec": "DATASEC" in kinds,
        "float": "FLOAT" in kinds,
        "decl_tag": "DECL_TAG" in kinds,
        "type_tag": "TYPE_TAG" in kinds,
        "enum64": "ENUM64" in kinds,
    }
    assert uses["func"]  # every kernel with BTF has FUNCs (5.10's may have no DATASEC)
    for name, used in uses.items():
        if used:
            assert getattr(feats, name), name
    if feats.qmark_datasec:  # '?' names came after DATASEC itself
        assert feats.datasec
    assert set(PROBES) == set(BtfFeatures._fields)
    # a blob of a kind the kernel does not know must fail (the probe can fail)
    b = Builder()
    b.add(T.Int(0, "int", 4, T.INT_SIGNED, 0, 32))
    blob = bytearray(b.encode())
    blob[24 + 7] = 25  # kind 25 does not exist
    with pytest.raises(VerifierError):
        BtfHandle.load(bytes(blob))
