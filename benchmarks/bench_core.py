#!/usr/bin/env python3
"""CO-RE relocation of an object with ~200 relocations against vmlinux, cold and warm, next to libbpf.

The object is generated here: one raw_tp program reading N fields of a few
kernel structs with BPF_CORE_READ (local, flavoured definitions written
from the running kernel's BTF), compiled with clang.  Ours: relocate()
of the whole object (candidate search, matching, patching), cold in a
fresh interpreter (vmlinux BTF opened and indexed, no candidate cached) and
warm (same process, vmlinux BTF and candidates cached).  libbpf: a C
harness over Debian's libbpf measures bpf_object__load() up to the
relocated program's prepare callback (libbpf parses vmlinux BTF on every
load, so its cold and warm differ only by the page cache).  Needs root for
libbpf's part (it probes the kernel and loads the object's BTF).

    python3 benchmarks/bench_core.py [--fields 100] [--repeat 10]

(--fields 100, the default, gives ~200 relocations: an exists and an offset
relocation per field.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import child_env, describe  # noqa: E402

STRUCTS = ["task_struct", "mm_struct", "file", "inode", "sk_buff", "sock", "net_device", "super_block", "dentry", "cred"]


def pick_fields(n: int) -> List[Tuple[str, str]]:
    from pybpfload.btf import types as T
    from pybpfload.btf.vmlinux import vmlinux_spec

    spec = vmlinux_spec()
    out: List[Tuple[str, str]] = []
    per = max(1, n // len(STRUCTS) + 1)
    for s in STRUCTS:
        t = spec.find(s, T.Struct)
        got = 0
        for m in t.members:
            if got >= per or len(out) >= n:
                break
            if m.name and not m.bitfield_size and isinstance(spec.resolve(m.type), (T.Int, T.Pointer)):
                out.append((s, m.name))
                got += 1
    return out


def generate(fields: List[Tuple[str, str]]) -> str:
    by: dict = {}
    for s, f in fields:
        by.setdefault(s, []).append(f)
    src = ["#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n#include <bpf/bpf_core_read.h>\n"]
    for s, fs in by.items():
        body = "".join(f"\tunsigned long {f};\n" for f in fs)
        src.append(f"struct {s}___bench {{\n{body}}} __attribute__((preserve_access_index));\n")
    for s, fs in by.items():  # one program per struct keeps register pressure low
        src.append(f'SEC("raw_tp/sys_enter")\nint bench_{s}(void *ctx)\n{{\n\tunsigned long sum = 0;\n')
        src.append(f"\tstruct {s}___bench *p = (void *)bpf_get_current_task();\n")
        for f in fs:
            src.append(f"\tsum += bpf_core_field_exists(p->{f}) ? p->{f} : 0;\n")
        src.append("\treturn sum;\n}\n")
    src.append('char LICENSE[] SEC("license") = "GPL";\n')
    return "".join(src)


COLD = r"""
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from pybpfload.object import Object
from pybpfload.btf.ext import parse_ext
from pybpfload import core
obj = Object.open({obj!r})
ext = parse_ext(obj.model.btf_ext_raw, obj.btf.string)
t1 = time.perf_counter()
rel = core.relocate(obj.model, obj.btf, ext, core.kernel_targets())
t2 = time.perf_counter()
print(t2 - t1, len(rel.records))
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fields", type=int, default=100, help="fields read (each gives an exists and an offset relocation)")
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    print(describe())
    clang = shutil.which("clang")
    if clang is None:
        print("clang is not installed: nothing to benchmark")
        return 1
    arch = {"x86_64": "x86", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    with tempfile.TemporaryDirectory() as d:
        src, obj = Path(d) / "bench.bpf.c", Path(d) / "bench.bpf.o"
        src.write_text(generate(pick_fields(args.fields)))
        inc = f"/usr/include/{os.uname().machine}-linux-gnu"
        subprocess.run([clang, "-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{arch}", "-I", inc, "-c", str(src), "-o", str(obj)], check=True)

        cold = []
        nrel = 0
        for _ in range(max(3, args.repeat // 2)):
            out = subprocess.run([sys.executable, "-c", COLD.format(root=str(ROOT), obj=str(obj))], capture_output=True, text=True, check=True, env=child_env())
            t, nrel_s = out.stdout.split()
            cold.append(float(t))
            nrel = int(nrel_s)

        from pybpfload.reloc import co_re as core
        from pybpfload.btf.ext import parse_ext
        from pybpfload.object import Object

        o = Object.open(obj)
        ext = parse_ext(o.model.btf_ext_raw, o.btf.string)
        core.relocate(o.model, o.btf, ext, core.kernel_targets())
        warm = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            core.relocate(o.model, o.btf, ext, core.kernel_targets())
            warm.append(time.perf_counter() - t0)

        lib_times: List[float] = []
        cc = shutil.which("cc") or shutil.which("gcc") or clang
        harness = Path(d) / "harness"
        build = subprocess.run([cc, "-O2", "-o", str(harness), str(ROOT / "benchmarks" / "bench_core_libbpf.c"), "-lbpf"], capture_output=True, text=True)
        if build.returncode == 0 and os.geteuid() == 0:
            out = subprocess.run([str(harness), str(obj), str(args.repeat)], capture_output=True, text=True)
            if out.returncode == 0:
                lib_times = [int(x) / 1e9 for x in out.stdout.split()]
        med = statistics.median
        print(f"object: {nrel} CO-RE relocations against vmlinux ({len(vmlinux_types())} types)")
        print(f"pybpfload cold (fresh process, relocate only): median {med(cold) * 1e3:8.2f} ms")
        print(f"pybpfload warm (cached BTF and candidates):    median {med(warm) * 1e3:8.2f} ms")
        if lib_times:
            print(f"libbpf 1.1 load up to relocated insns, first: {lib_times[0] * 1e3:8.2f} ms, median {med(lib_times) * 1e3:8.2f} ms")
            print(f"ratios: ours cold / libbpf = {med(cold) / med(lib_times):.2f}, ours warm / libbpf = {med(warm) / med(lib_times):.3f}")
        else:
            print("libbpf column skipped (needs root, libbpf-dev and a C compiler)")
    return 0


def vmlinux_types() -> range:
    from pybpfload.btf.vmlinux import vmlinux_spec

    return range(len(vmlinux_spec()))


if __name__ == "__main__":
    raise SystemExit(main())
