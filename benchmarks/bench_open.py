#!/usr/bin/env python3
"""Open + model time for every fixture, and for a generated object with a few hundred programs.

The generated object's C source is written here and compiled with clang
when clang is available (otherwise that part is skipped).  When libbpf.so
is installed, libbpf's own bpf_object__open_file time on the same files is
measured in the same run, and figures are reported as ratios.  Objects
libbpf refuses to open are marked "refused" and left out of the ratios
(timing libbpf's error path is not timing an open).

    python3 benchmarks/bench_open.py [--programs 300] [--repeat 20]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpfload.object import Object  # noqa: E402


def generate_source(n: int) -> str:
    parts = [
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n",
        "struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u64);"
        ' __uint(max_entries, 64); } counts SEC(".maps");\n',
        "int global_counter;\nconst volatile int limit = 5;\n",
        "static __noinline int helper(int x) { return x * 3 + limit; }\n",
    ]
    secs = ["xdp", "tc", "socket", "cgroup_skb/ingress", "tracepoint/syscalls/sys_enter_openat"]
    for i in range(n):
        parts.append(
            f'SEC("{secs[i % len(secs)]}") int prog_{i}(void *ctx) {{\n'
            f"  __u32 k = {i % 64}; __u64 *v = bpf_map_lookup_elem(&counts, &k);\n"
            f"  if (v) __sync_fetch_and_add(v, helper({i}));\n"
            f"  global_counter += {i};\n  return {1 if i % 5 != 0 else 2};\n}}\n"
        )
    parts.append('char LICENSE[] SEC("license") = "GPL";\n')
    return "".join(parts)


def compile_generated(n: int, workdir: Path) -> Optional[Path]:
    clang = shutil.which("clang")
    if clang is None:
        return None
    src = workdir / "many_progs.bpf.c"
    obj = workdir / "many_progs.bpf.o"
    src.write_text(generate_source(n))
    arch = "x86" if sys.platform.startswith("linux") else "x86"
    subprocess.run(
        [
            clang,
            "-g",
            "-O2",
            "-target",
            "bpf",
            f"-D__TARGET_ARCH_{arch}",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
            str(src),
            "-o",
            str(obj),
        ],
        check=True,
    )
    return obj


def timeit(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def libbpf_opener() -> Optional[Callable[[Path], bool]]:
    name = ctypes.util.find_library("bpf")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.bpf_object__open_file.restype = ctypes.c_void_p
    lib.bpf_object__open_file.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.bpf_object__close.argtypes = [ctypes.c_void_p]
    lib.libbpf_set_print.argtypes = [ctypes.c_void_p]
    lib.libbpf_set_print(None)

    def run(path: Path) -> bool:
        """True when libbpf opened it (its failure path is not an open, and is never timed)."""
        o = lib.bpf_object__open_file(str(path).encode(), None)
        if o:
            lib.bpf_object__close(o)
        return bool(o)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--programs", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    files: List[Path] = sorted((ROOT / "fixtures").glob("*.bpf.o"))
    with tempfile.TemporaryDirectory() as tmp:
        gen = compile_generated(args.programs, Path(tmp))
        if gen is not None:
            files.append(gen)
        else:
            print("clang not found: the generated object is skipped")
        lb = libbpf_opener()
        print(f"{'object':28} {'progs':>5} {'maps':>4} {'pybpfload ms':>12} {'libbpf ms':>10} {'ratio':>6}")
        for f in files:
            try:
                obj = Object.open(f, relaxed_maps=True)
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"{f.name:28} error: {e}")
                continue
            ours = timeit(lambda f=f: Object.open(f, relaxed_maps=True), args.repeat)
            refused = lb is not None and not lb(f)
            theirs = timeit(lambda f=f: lb(f), args.repeat) if lb is not None and not refused else None
            if refused:  # libbpf's error path would make a meaningless ratio: no libbpf figure at all
                lt, ratio = " refused  ", "     -"
            else:
                ratio = f"{ours / theirs:6.1f}" if theirs else "     -"
                lt = f"{theirs * 1e3:10.3f}" if theirs is not None else "         -"
            print(f"{f.name:28} {len(obj.model.programs):5d} {len(obj.maps):4d} {ours * 1e3:12.3f} {lt} {ratio}")


if __name__ == "__main__":
    main()
