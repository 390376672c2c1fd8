"""The generated syscall layouts agree with the running kernel's BTF."""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfload.btf import Spec
from pybpfload.btf import types as T
from pybpfload.abi import uapi as _types

ROOT = Path(__file__).resolve().parent.parent
VMLINUX = Path("/sys/kernel/btf/vmlinux")

pytestmark = pytest.mark.skipif(not VMLINUX.exists(), reason="no kernel BTF")


def _gen():
    spec = importlib.util.spec_from_file_location("gen_syscall_types", ROOT / "tools" / "gen_syscall_types.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def kbtf() -> Spec:
    return Spec.from_file(str(VMLINUX))


def _check(cls, btf_type, spec) -> int:
    """Compare every named member both sides know; return how many were compared."""
    n = 0
    names = {f[0] for f in cls._fields_}
    for m in btf_type.members:
        if not m.name:
            inner = spec.resolve(m.type)
            if isinstance(inner, (T.Struct, T.Union)):
                # anonymous union/struct: its members sit at the same base offset
                for im in inner.members:
                    if im.name and hasattr(cls, im.name) and not im.bitfield_size:
                        assert getattr(cls, im.name).offset * 8 == m.bit_offset + im.bit_offset, (cls.__name__, im.name)
                        n += 1
            continue
        if m.name in names and not m.bitfield_size:
            assert getattr(cls, m.name).offset * 8 == m.bit_offset, (cls.__name__, m.name)
            n += 1
    return n


def test_attr_layouts_match_kernel_btf(kbtf: Spec) -> None:
    gen = _gen()
    attr = kbtf.find("bpf_attr", T.Union)
    compared = 0
    seen = set()
    for m in attr.members:
        st = kbtf.resolve(m.type)
        if not isinstance(st, T.Struct):
            continue
        if m.name:
            cname = gen.NAMED_ATTR_NAMES.get(m.name)
        else:
            first = st.members[0]
            key = first.name or kbtf.resolve(first.type).members[0].name
            cname = gen.ANON_ATTR_NAMES.get(key)
        if cname is None:
            continue
        cls = getattr(_types, cname)
        assert ctypes.sizeof(cls) <= 256
        compared += _check(cls, st, kbtf)
        seen.add(cname)
    assert {"MapCreateAttr", "MapElemAttr", "ProgLoadAttr", "ObjAttr", "GetIdAttr", "BtfLoadAttr", "LinkCreateAttr"} <= seen
    assert compared > 100


@pytest.mark.parametrize("sname,cname", [("bpf_prog_info", "ProgInfo"), ("bpf_map_info", "MapInfo"), ("bpf_btf_info", "BtfInfo"), ("bpf_link_info", "LinkInfo"), ("bpf_token_info", "TokenInfo")])
def test_info_layouts_match_kernel_btf(kbtf: Spec, sname: str, cname: str) -> None:
    st = kbtf.find(sname, T.Struct)
    assert _check(getattr(_types, cname), st, kbtf) >= 3


def test_enums_match_kernel_btf(kbtf: Spec) -> None:
    for ename, cls in [("bpf_cmd", _types.Cmd), ("bpf_map_type", _types.MapType), ("bpf_prog_type", _types.ProgType), ("bpf_attach_type", _types.AttachType)]:
        e = kbtf.find(ename, T.Enum)
        kernel = {v.name: v.value for v in e.values}
        for member in cls:
            if member.name in kernel:
                assert kernel[member.name] == member.value, member.name


def test_generated_file_is_current_for_its_source_btf() -> None:
    """Regenerating from the BTF the file was made from gives the file byte for byte."""
    text = (ROOT / "pybpfload" / "abi" / "uapi.py").read_text()
    want = re.search(r"Source BTF sha256: ([0-9a-f]+)", text)
    assert want is not None
    have = hashlib.sha256(VMLINUX.read_bytes()).hexdigest()[:16]
    if have != want.group(1):
        pytest.skip("this kernel's BTF differs from the one abi/uapi.py was generated from (layouts are checked above)")
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_syscall_types.py")], capture_output=True, text=True, check=True)
    assert out.stdout == text
    stub = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_syscall_types.py"), "--pyi"], capture_output=True, text=True, check=True)
    assert stub.stdout == (ROOT / "pybpfload" / "abi" / "uapi.pyi").read_text()


def test_structs_are_made_on_first_use_once_and_all_declared() -> None:
    """uapi's structs are made when first asked for (with the structs they nest), once per
    name whatever the threads, and its stub declares every one of them."""
    code = (
        "import sys, threading\n"
        "from pybpfload.abi import uapi\n"
        "before = set(vars(uapi))\n"
        "got = []\n"
        "ts = [threading.Thread(target=lambda: got.append(uapi.LinkCreateAttr)) for _ in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "made = sorted(set(vars(uapi)) - before)\n"
        "print(len(set(map(id, got))), 'MapInfo' in before, 'LinkCreateAttr' in made, 'LinkCreateAttr_u2_tracing' in made, 'ProgInfo' in made)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "False", "True", "True", "False"]
    stub = (ROOT / "pybpfload" / "abi" / "uapi.pyi").read_text()
    declared = set(re.findall(r"^class (\w+)\(ctypes\.(?:Structure|Union)\)", stub, re.M))
    assert declared | {"MapFlag"} == set(_types._MAKE) and len(declared) > 50
    assert "class MapFlag(enum.IntFlag):" in stub
    from pybpfload.syscall import commands

    flags = _types.MapFlag
    assert (commands.BPF_F_TOKEN_FD, commands.BPF_F_NUMA_NODE, commands.BPF_F_VTYPE_BTF_OBJ_FD) == (
        flags.BPF_F_TOKEN_FD, flags.BPF_F_NUMA_NODE, flags.BPF_F_VTYPE_BTF_OBJ_FD
    )
    for name in sorted(declared):
        assert ctypes.sizeof(getattr(_types, name)) > 0
    with pytest.raises(AttributeError, match="no attribute 'NoSuchAttr'"):
        _types.NoSuchAttr  # noqa: B018
