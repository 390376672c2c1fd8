"""C dump: diffed against ``bpftool btf dump file F format c``; vmlinux.h compiles
with clang and a CO-RE program built against it loads (through bpftool/libbpf)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from pybpfload.btf import Spec
from pybpfload.btf import types as T
from pybpfload.btf.cdump import CDumper, dump_c
from pybpfload.btf.encode import Builder
from pybpfload.errors import BTFError

from .conftest import require_tool
from .test_btf_decode import VMLINUX, btf_fixtures, elf_section

# bpftool 7.1 here carries an older libbpf btf_dump than the one pybpfload
# follows: that one marks 1- and 8-byte enums with mode(byte)/mode(word)
# (without them clang makes such enums 4 bytes, changing struct layouts)
# and spells prototypes without parameters "(void)".  Those are the only
# differences allowed.
_NEWER_LIBBPF = [
    (re.compile(r" __attribute__\(\(mode\((byte|word)\)\)\)"), ""),
    (re.compile(r"\(void\)"), "()"),
]


def older_libbpf_spelling(text: str) -> str:
    for pat, repl in _NEWER_LIBBPF:
        text = pat.sub(repl, text)
    return text


def bpftool_c(path: str) -> str:
    tool = require_tool("bpftool")
    return subprocess.run([tool, "btf", "dump", "file", path, "format", "c"], check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("obj", btf_fixtures(), ids=lambda p: p.name)
def test_fixture_dump_matches_bpftool(obj: Path) -> None:
    mine = dump_c(Spec.from_bytes(elf_section(obj, ".BTF") or b""))
    assert older_libbpf_spelling(mine) == older_libbpf_spelling(bpftool_c(str(obj)))


def test_vmlinux_dump_matches_bpftool(tmp_path: Path) -> None:
    if not os.path.exists(VMLINUX):
        pytest.skip("no kernel BTF")
    mine = dump_c(Spec.from_file(VMLINUX))
    ref = bpftool_c(VMLINUX)
    assert older_libbpf_spelling(mine) == older_libbpf_spelling(ref)
    (tmp_path / "vmlinux.h").write_text(mine)


def test_dump_of_the_kinds_fixture_has_what_it_should() -> None:
    from .conftest import FIXTURES

    text = dump_c(Spec.from_bytes(elf_section(FIXTURES / "btf_kinds.bpf.o", ".BTF") or b""))
    assert "} __attribute__((packed));" in text  # packed_s
    assert "\tunsigned long long d: 40;" in text  # bitfields
    assert "\tlong: 64;\n\tlong long l;" in text  # explicit padding of aligned_s
    assert "void (* (*fnret)(int))(long);" in text  # function returning a function pointer
    assert "typedef struct {\n\tint x;\n\tint y;\n} point_t;" in text  # anonymous struct behind a typedef
    assert "enum small_enum {\n\tSMALL_A = 0,\n\tSMALL_B = 200,\n} __attribute__((mode(byte)));" in text


def test_enum64_signed_enums_and_name_clashes() -> None:
    b = Builder()
    i = b.add(T.Int(0, "int", 4, T.INT_SIGNED, 0, 32))
    b.add(T.Enum64(0, "wide", 8, (T.EnumValue("W_BIG", 1 << 40), T.EnumValue("W_MAX", (1 << 64) - 1)), False))
    b.add(T.Enum64(0, "wide_small", 8, (T.EnumValue("WS_A", 1),), False))
    b.add(T.Enum(0, "sgn", 4, (T.EnumValue("NEG", -5),), True))
    b.add(T.Struct(0, "dup", 4, (T.Member("a", i, 0, 0),)))
    b.add(T.Struct(0, "dup", 8, (T.Member("b", i, 0, 0), T.Member("c", i, 32, 0))))
    b.add(T.Enum(0, "", 4, (T.EnumValue("ANON_TOP", 3),), False))  # top-level anonymous enum
    text = dump_c(b.spec(), header=False)
    assert "W_BIG = 1099511627776ULL," in text and "W_MAX = 18446744073709551615ULL," in text
    assert "enum wide_small {\n\tWS_A = 1ULL,\n} __attribute__((mode(word)));" in text
    assert "NEG = -5," in text
    assert "struct dup {" in text and "struct dup___2 {" in text
    assert "enum {\n\tANON_TOP = 3,\n};" in text


def test_forward_declarations_break_pointer_cycles() -> None:
    b = Builder()
    a_ptr_slot = b.add(T.Int(0, "int", 4, T.INT_SIGNED, 0, 32))
    # struct a { struct b *b; };  struct b { struct a a; int x; };
    a = b.add(T.Struct(0, "a", 8, ()))
    bb = b.add(T.Struct(0, "b", 16, ()))
    pa = b.add(T.Pointer(0, "", bb))
    b.replace(a, T.Struct(0, "a", 8, (T.Member("b", pa, 0, 0),)))
    b.replace(bb, T.Struct(0, "b", 16, (T.Member("a", a, 0, 0), T.Member("x", a_ptr_slot, 64, 0))))
    text = dump_c(b.spec(), header=False)
    assert text.index("struct b;") < text.index("struct a {") < text.index("struct b {")


def test_value_cycle_is_an_error() -> None:
    b = Builder()
    s = b.add(T.Struct(0, "loop", 4, ()))
    b.replace(s, T.Struct(0, "loop", 4, (T.Member("self", s, 0, 0),)))
    with pytest.raises(BTFError, match="cycle"):
        CDumper(b.spec()).dump_type(s)


@pytest.mark.kernel
def test_vmlinux_h_compiles_and_a_core_program_built_on_it_loads(tmp_path: Path, bpffs: Path) -> None:
    if not os.path.exists(VMLINUX):
        pytest.skip("no kernel BTF")
    clang = require_tool("clang")
    tool = require_tool("bpftool")
    (tmp_path / "vmlinux.h").write_text(dump_c(Spec.from_file(VMLINUX)))
    src = tmp_path / "core.bpf.c"
    src.write_text(
        """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

int seen_pid, seen_ppid, comm_len;
char comm[16];

SEC("raw_tp/sys_enter")
int core_prog(void *ctx)
{
\tstruct task_struct *t = (void *)bpf_get_current_task();
\tseen_pid = BPF_CORE_READ(t, pid);
\tseen_ppid = BPF_CORE_READ(t, real_parent, tgid);
\tcomm_len = bpf_core_field_size(t->comm);
\tBPF_CORE_READ_STR_INTO(&comm, t, comm);
\treturn 0;
}
char LICENSE[] SEC("license") = "GPL";
"""
    )
    obj = tmp_path / "core.bpf.o"
    arch = os.uname().machine
    target = {"x86_64": "x86", "aarch64": "arm64"}.get(arch, arch)
    subprocess.run(
        [clang, "-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{target}", f"-I/usr/include/{arch}-linux-gnu", "-c", str(src), "-o", str(obj)],
        check=True,
        cwd=tmp_path,
    )
    r = subprocess.run([tool, "prog", "load", str(obj), str(bpffs / "core")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (bpffs / "core").exists()

