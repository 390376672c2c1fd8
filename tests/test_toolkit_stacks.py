"""Stack trace maps (toolkit.stacks) filled by a real BPF program: perf_event sampling of a busy child.

fixtures/toolkit_stacks.bpf.o (src/toolkit_stacks.bpf.c) runs on a software
cpu-clock event of a small C program compiled here (frame pointers kept, so
the kernel can walk its user stack).  The program spends most of its time in
``busy_spin`` and the rest calling getppid() from ``busy_syscalls``: the
sampled user stacks must name ``busy_spin`` (in the binary's module) under
``main``, the kernel stacks a system call path, and the build-id stacks the
same functions as the ip stacks.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Counter, Dict, Iterator, List, Tuple

import pytest

from pybpfload import BPFError, Map, MapKeyError, MapType, Object
from pybpfload.syscall import perf
from pybpfload.toolkit import stacks, symbols

from .conftest import fixture_path

pytestmark = pytest.mark.kernel

BUSY_C = r"""
#include <unistd.h>
__attribute__((noinline)) unsigned long busy_spin(unsigned long n)
{
	volatile unsigned long x = 0;
	for (unsigned long i = 0; i < n; i++)
		x += i;
	return x;
}
__attribute__((noinline)) void busy_syscalls(int n)
{
	for (int i = 0; i < n; i++)
		getppid();
}
int main(void)
{
	for (;;) {
		busy_spin(3000000);
		busy_syscalls(3000);
	}
}
"""


@pytest.fixture(scope="module")
def busy_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("busy")
    (d / "busy.c").write_text(BUSY_C)
    exe = d / "busy_target"
    subprocess.run([cc, "-O1", "-g", "-fno-omit-frame-pointer", "-o", str(exe), str(d / "busy.c")], check=True)
    return exe


Sample = Tuple[int, int, int, int]  # pid, user stack id, kernel stack id, build-id stack id


@pytest.fixture(scope="module")
def sampled(busy_exe: Path) -> Iterator[Tuple[Object, int, Dict[Sample, int]]]:
    """The loaded object after ~1 s of sampling the busy child every 1 ms, the child's pid, and the counts."""
    obj = Object.open(fixture_path("toolkit_stacks.bpf.o"))
    child = subprocess.Popen([str(busy_exe)])
    try:
        obj.load()
        time.sleep(0.1)
        symbols.process_symbols(child.pid)  # read its mappings while it runs
        attr = perf.PerfEventAttr(type=perf.PERF_TYPE_SOFTWARE, config=0, sample_period=1_000_000)  # cpu-clock, 1 ms
        with perf.perf_event_open(attr, child.pid, -1) as pfd:
            with obj.programs["sample_stacks"].attach_perf_event(pfd):
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    time.sleep(0.25)
                    counts = obj.maps["counts"]
                    if sum(1 for _ in counts.keys()) and _total(counts) > 300:
                        break
    finally:
        child.kill()
        child.wait()
    counts = obj.maps["counts"]
    counts.key_format = "Iiii"
    counts.value_format = "Q"
    got = dict(counts.items())
    try:
        yield obj, child.pid, got
    finally:
        obj.close()


def _total(m: Map) -> int:
    return sum(int.from_bytes(v, "little") if isinstance(v, bytes) else v for v in m.values())


def _weighted(samples: Dict[Sample, int], field: int) -> Counter:
    c: Counter = collections.Counter()
    for k, n in samples.items():
        c[k[field]] += n
    return c


def test_user_stacks_name_the_busy_function(sampled: Tuple[Object, int, Dict[Sample, int]]) -> None:
    obj, pid, samples = sampled
    assert samples and all(k[0] == pid for k in samples)
    total = sum(samples.values())
    leaf: Counter = collections.Counter()
    for (_, ustack, _, _), n in samples.items():
        if ustack < 0:
            continue
        frames = stacks.symbolize(stacks.stack_ips(obj.maps["stacks"], ustack), pid)
        assert frames and all(isinstance(f, str) for f in frames)
        leaf[frames[0]] += n
        if frames[0].startswith("busy_spin+"):
            assert frames[0].endswith(" [busy_target]") and any(f.startswith("main+") and f.endswith("[busy_target]") for f in frames[1:])
    busy = sum(n for f, n in leaf.items() if f.startswith("busy_spin+0x"))
    assert busy > 0.5 * total, leaf.most_common(5)
    # the syscall loop shows up too: getppid in libc, called from busy_syscalls or main
    assert any(f.startswith(("getppid", "busy_syscalls")) for f in leaf), leaf.most_common(10)


def test_ips_agree_with_nm(sampled: Tuple[Object, int, Dict[Sample, int]], busy_exe: Path) -> None:
    """The busy_spin frames' offsets lie inside busy_spin's size as nm gives it."""
    obj, pid, samples = sampled
    out = subprocess.run(["nm", "-S", str(busy_exe)], capture_output=True, text=True).stdout
    (size,) = [int(line.split()[1], 16) for line in out.splitlines() if line.endswith(" busy_spin")]
    ps = symbols.process_symbols(pid)
    seen = 0
    for (_, ustack, _, _) in samples:
        if ustack >= 0:
            s = ps.resolve(stacks.stack_ips(obj.maps["stacks"], ustack)[0])
            if s.name == "busy_spin":
                assert 0 <= s.offset < size
                seen += 1
    assert seen


def test_kernel_stacks_name_the_syscall_path(sampled: Tuple[Object, int, Dict[Sample, int]]) -> None:
    obj, _pid, samples = sampled
    kernel = [k for k in _weighted(samples, 2) if k >= 0]
    if not kernel:
        pytest.skip("no sample landed in the kernel")
    names = set()
    for kid in kernel:
        ips = stacks.stack_ips(obj.maps["stacks"], kid)
        assert ips and all(ip > 0xFFFF000000000000 for ip in ips)
        text = stacks.format_stack(obj.maps["stacks"], kid, kernel=True)
        assert text.count("\n") == len(ips) and "[kernel]" in text
        names.update(f.split("+")[0] for f in stacks.symbolize(ips, kernel=True))
    assert names & {"do_syscall_64", "entry_SYSCALL_64", "entry_SYSCALL_64_after_hwframe", "__x64_sys_getppid"}, sorted(names)[:30]
    # samples taken in user mode have no kernel stack: bpf_get_stackid said -EFAULT
    user_only = [k for k in _weighted(samples, 2) if k < 0]
    if user_only:
        with pytest.raises(BPFError, match=r"stack id -14 is bpf_get_stackid's error EFAULT"):
            stacks.stack_ips(obj.maps["stacks"], user_only[0])


def test_build_id_stacks_match_ip_stacks(sampled: Tuple[Object, int, Dict[Sample, int]], busy_exe: Path) -> None:
    obj, pid, samples = sampled
    bmap = obj.maps["build_id_stacks"]
    es = symbols.elf_symbols(str(busy_exe))  # the binary is known by its build id from here on
    compared = 0
    for (_, ustack, _, bstack) in samples:
        if ustack < 0 or bstack < 0:
            continue
        frames = stacks.stack_build_ids(bmap, bstack)
        ips = stacks.stack_ips(obj.maps["stacks"], ustack)
        assert frames and len(frames) == len(ips)
        assert all(f.status in (stacks.BPF_STACK_BUILD_ID_VALID, stacks.BPF_STACK_BUILD_ID_IP) for f in frames)
        by_ip = stacks.symbolize(ips, pid)
        by_bid = stacks.symbolize(frames, pid)
        for a, b, f in zip(by_ip, by_bid, frames):
            if f.status == stacks.BPF_STACK_BUILD_ID_IP:
                assert a == b
            elif a.startswith("busy_spin+") or a.startswith("main+"):
                assert f.build_id_hex == es.build_id and b == a, (a, b)
                compared += 1
    if compared == 0:
        pytest.skip("the kernel gave no valid build-id frames in the busy binary (it may fall back to ips in NMI context)")
    assert list(stacks.walk(bmap, next(k[3] for k in samples if k[3] >= 0)))  # bcc's walk: VALID frames


def test_walk_resolves_like_bcc(sampled: Tuple[Object, int, Dict[Sample, int]]) -> None:
    obj, pid, samples = sampled
    ustack = max((k for k in samples if k[1] >= 0), key=lambda k: samples[k])[1]
    ips = stacks.stack_ips(obj.maps["stacks"], ustack)
    assert list(stacks.walk(obj.maps["stacks"], ustack)) == ips
    assert list(stacks.walk(obj.maps["stacks"], ustack, lambda ip: symbols.sym(ip, pid))) == stacks.symbolize(ips, pid, show_module=False, show_offset=False)
    assert stacks.stack_frames(obj.maps["stacks"], ustack) == ips


def test_refusals(sampled: Tuple[Object, int, Dict[Sample, int]]) -> None:
    obj, _pid, samples = sampled
    used = {k[1] for k in samples} | {k[2] for k in samples}
    missing = next(i for i in range(4096) if i not in used)
    with pytest.raises(MapKeyError):
        stacks.stack_ips(obj.maps["stacks"], missing)
    with pytest.raises(BPFError, match="was not made with BPF_F_STACK_BUILD_ID"):
        stacks.stack_build_ids(obj.maps["stacks"], 0)
    with pytest.raises(BPFError, match="'counts' is not a stack trace map"):
        stacks.stack_ips(obj.maps["counts"], 0)
    with pytest.raises(BPFError, match="EEXIST"):
        stacks.stack_ips(obj.maps["stacks"], -17)


def test_empty_stack_map_by_hand() -> None:
    with Map.create(MapType.BPF_MAP_TYPE_STACK_TRACE, 4, 127 * 8, 16, name="st") as m:
        with pytest.raises(KeyError):
            stacks.stack_ips(m, 3)
    with Map.create(MapType.BPF_MAP_TYPE_STACK_TRACE, 4, 127 * 32, 16, flags=stacks.BPF_F_STACK_BUILD_ID, name="bst") as m:
        with pytest.raises(KeyError):
            stacks.stack_build_ids(m, 3)
        assert stacks._is_build_id_map(m)


def _frames_text(lines: List[str]) -> str:
    return "\n".join(lines)


def test_symbolize_after_exit_uses_the_cached_process(sampled: Tuple[Object, int, Dict[Sample, int]]) -> None:
    """The child is gone by now: its stacks still resolve (its mappings were read while it ran)."""
    obj, pid, samples = sampled
    assert not os.path.exists(f"/proc/{pid}/maps")
    ustack = max((k for k in samples if k[1] >= 0), key=lambda k: samples[k])[1]
    text = _frames_text(stacks.symbolize(stacks.stack_ips(obj.maps["stacks"], ustack), pid))
    assert "[busy_target]" in text and "[unknown]" not in text.split("\n")[0]
