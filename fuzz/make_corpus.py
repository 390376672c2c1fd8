"""Build the committed seed corpus (``python -m fuzz make-corpus``).

Seeds come from the repository's fixtures and from the running kernel's
BTF; the result is committed, so this only needs re-running when fixtures
change.  Everything written is small (the whole corpus is well under 2 MB):

* ``corpus/elf/``: every ``fixtures/*.bpf.o`` and ``fixtures/malformed/*.o``;
* ``corpus/btf/``: the ``.BTF`` section of each fixture and the vmlinux pieces;
* ``corpus/btf_ext/``: ``<fixture index byte> + .BTF.ext`` of each CO-RE fixture;
* ``corpus/core/``: ``<fixture index byte> + target BTF`` (each CO-RE fixture
  against its own BTF, core_target_a/b's and the vmlinux pieces);
* ``corpus/prepare/``: the fixtures that exercise load-time fix-ups;
* ``data/vmlinux_piece.btf``: the kernel BTF the pure load steps resolve against.

A *vmlinux piece* is a subset of /sys/kernel/btf/vmlinux: some root types
with everything their layout needs, pointers to other structs cut down to
forward declarations, so a piece stays a few KB and still has the real
shapes (task_struct, sk_buff, the TCP congestion-control struct_ops...).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from . import CORE_FIXTURES, DATA, ROOT, SEEDS

# root type names of each vmlinux piece
PIECES: Dict[str, List[str]] = {
    "sched": ["task_struct", "perf_callchain_context", "pid_type", "btf_trace_sys_enter", "bpf_iter__task"],
    "net": ["__sk_buff", "xdp_md", "iphdr", "ethhdr", "tcphdr", "bpf_sock"],
    "struct_ops": [
        "tcp_congestion_ops",
        "bpf_struct_ops_tcp_congestion_ops",
        "bpf_dummy_ops",
        "bpf_struct_ops_bpf_dummy_ops",
        "tcp_reno_ssthresh",
        "tcp_reno_cong_avoid",
        "tcp_reno_undo_cwnd",
    ],
    "ksyms": [
        "bpf_rcu_read_lock",
        "bpf_rcu_read_unlock",
        "bpf_stats_enabled_key",
        "bpf_prog_active",
        "bpf_lsm_bpf",
        "__sys_bpf",
        "bpf_iter_task",
    ],
}
MAX_TYPES = 60  # per piece: past that, more pointer targets become forward declarations


def vmlinux_piece(spec: object, roots: Iterable[str], max_types: int = MAX_TYPES) -> bytes:
    """A small BTF holding ``roots`` (names in ``spec``) and what their layout needs."""
    from pybpfload.abi.record import replace

    from pybpfload.btf import Spec
    from pybpfload.btf import types as T
    from pybpfload.btf.encode import Builder

    assert isinstance(spec, Spec)
    b = Builder()
    done: Dict[int, int] = {}

    def fwd_for(tid: int) -> Optional[int]:
        t = spec.type(tid)
        if isinstance(t, (T.Struct, T.Union)) and t.name:
            key = -tid
            if key not in done:
                done[key] = b.add(T.Fwd(0, t.name, isinstance(t, T.Union)))
            return done[key]
        return None

    def visit(tid: int, depth: int) -> int:
        if tid == 0:
            return 0
        if tid in done:
            return done[tid]
        t = spec.type(tid)
        new_id = b.add(T.Int(0, "", 1, 0, 0, 8))  # placeholder, replaced below (cycles through pointers)
        done[tid] = new_id

        def ref(x: int, behind_pointer: bool = False) -> int:
            if behind_pointer and (depth > 2 or len(b) > max_types):
                f = fwd_for(x)
                if f is not None:
                    return f
            return visit(x, depth + (1 if behind_pointer else 0))

        new: T.Type
        if isinstance(t, T.Pointer):
            new = T.Pointer(0, t.name, ref(t.type, True))
        elif isinstance(t, (T.Typedef, T.Volatile, T.Const, T.Restrict, T.TypeTag)):
            new = replace(t, id=0, type=ref(t.type))  # type: ignore[call-arg]
        elif isinstance(t, T.Array):
            new = T.Array(0, t.name, ref(t.type), ref(t.index_type), t.nelems)
        elif isinstance(t, (T.Struct, T.Union)):
            members = tuple(replace(m, type=ref(m.type)) for m in t.members)
            new = replace(t, id=0, members=members)
        elif isinstance(t, T.FuncProto):
            params = tuple(replace(p, type=ref(p.type, True)) for p in t.params)
            new = T.FuncProto(0, t.name, ref(t.return_type, True), params)
        elif isinstance(t, (T.Func, T.Var)):
            new = replace(t, id=0, type=ref(t.type))  # type: ignore[call-arg]
        elif isinstance(t, T.DeclTag):
            new = replace(t, id=0, type=ref(t.type))
        else:  # INT, ENUM, ENUM64, FWD, FLOAT: no references
            new = replace(t, id=0)
        b.replace(new_id, replace(new, id=new_id))  # type: ignore[call-arg]
        return new_id

    for name in roots:
        for tid in spec.find_ids(name):
            visit(tid, 0)
    return b.encode()


def _section(path: Path, name: str) -> Optional[bytes]:
    from pybpfload.elf.reader import read_elf

    sec = read_elf(path.read_bytes()).section_by_name(name)
    return None if sec is None else bytes(sec.data)


def _write(directory: Path, name: str, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


def build(vmlinux: str = "/sys/kernel/btf/vmlinux") -> None:
    from pybpfload.btf import Spec

    fixtures = ROOT / "fixtures"
    for d in SEEDS.values():
        shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(DATA, ignore_errors=True)

    kernel = Spec.from_file(vmlinux)
    pieces = {name: vmlinux_piece(kernel, roots) for name, roots in PIECES.items()}
    allroots = [r for roots in PIECES.values() for r in roots]
    _write(DATA, "vmlinux_piece.btf", vmlinux_piece(kernel, allroots, max_types=1500))

    objs = sorted(fixtures.glob("*.bpf.o"))
    for p in objs + sorted((fixtures / "malformed").glob("*.o")):
        _write(SEEDS["elf"], p.name, p.read_bytes())
    for p in objs:
        btf = _section(p, ".BTF")
        if btf is not None:
            _write(SEEDS["btf"], p.name.replace(".bpf.o", ".btf"), btf)
    for name, data in pieces.items():
        _write(SEEDS["btf"], f"vmlinux_{name}.btf", data)
    for i, name in enumerate(CORE_FIXTURES):
        p = fixtures / name
        ext = _section(p, ".BTF.ext")
        if ext is not None:
            _write(SEEDS["btf_ext"], name.replace(".bpf.o", ".ext"), bytes([i]) + ext)
        targets: Dict[str, bytes] = {"own": _section(p, ".BTF") or b""}
        for other in ("core_target_a.bpf.o", "core_target_b.bpf.o"):
            targets[other.split(".")[0]] = _section(fixtures / other, ".BTF") or b""
        for pname, data in pieces.items():
            if pname in ("sched", "net"):
                targets[f"vmlinux_{pname}"] = data
        for tname, data in targets.items():
            _write(SEEDS["core"], f"{name.split('.')[0]}-{tname}.core", bytes([i]) + data)
    for name in (
        "externs.bpf.o",
        "kconfig_only.bpf.o",
        "kconfig_virtual.bpf.o",
        "core_task.bpf.o",
        "core_fields.bpf.o",
        "subprogs.bpf.o",
        "global_data.bpf.o",
        "struct_ops_tcp.bpf.o",
        "struct_ops_dummy.bpf.o",
        "attach_trace.bpf.o",
        "attach_iter.bpf.o",
        "attach_refused.bpf.o",
        "map_in_map.bpf.o",
        "linked.bpf.o",
        "btf_kinds.bpf.o",
        "xdp_count.bpf.o",
    ):
        _write(SEEDS["prepare"], name, (fixtures / name).read_bytes())
    total = sum(f.stat().st_size for d in [*SEEDS.values(), DATA] for f in d.iterdir())
    count = sum(1 for d in SEEDS.values() for _ in d.iterdir())
    print(f"seed corpus: {count} files, {total / 1024:.0f} KiB")
    for t, d in SEEDS.items():
        digest = hashlib.sha1(b"".join(sorted(f.read_bytes() for f in d.iterdir()))).hexdigest()[:12]
        print(f"  {t}: {sum(1 for _ in d.iterdir())} files ({digest})")
