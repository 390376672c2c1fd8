"""Maps on the real kernel, without any ELF object."""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import pybpfload as bpf
from pybpfload import Map, MapType as MT
from pybpfload.errors import BPFError, NotSupportedError, PinError, StateError, SyscallError
from pybpfload.kernel.maps import BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, possible_cpus

from .conftest import require_tool
from .kernel_adapt import assert_not_supported, hash_lookup_and_delete

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parent.parent


def _int_btf() -> bytes:
    """A BTF blob with one type: [1] INT 'int' size 4 signed."""
    strings = b"\0int\0"
    types = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


# type -> (key_size, value_size, max_entries, flags, extra kwargs)
CREATABLE = {
    MT.BPF_MAP_TYPE_HASH: (4, 8, 16, 0, {}),
    MT.BPF_MAP_TYPE_ARRAY: (4, 8, 16, 0, {}),
    MT.BPF_MAP_TYPE_PERCPU_HASH: (4, 8, 16, 0, {}),
    MT.BPF_MAP_TYPE_PERCPU_ARRAY: (4, 8, 16, 0, {}),
    MT.BPF_MAP_TYPE_LRU_HASH: (4, 8, 16, 0, {}),
    MT.BPF_MAP_TYPE_LRU_PERCPU_HASH: (4, 8, 16, 0, {}),
    MT.BPF_MAP_TYPE_LPM_TRIE: (8, 8, 16, BPF_F_NO_PREALLOC, {}),
    MT.BPF_MAP_TYPE_PROG_ARRAY: (4, 4, 16, 0, {}),
    MT.BPF_MAP_TYPE_PERF_EVENT_ARRAY: (4, 4, 16, 0, {}),
    MT.BPF_MAP_TYPE_RINGBUF: (0, 0, 4096 * 4, 0, {}),
    MT.BPF_MAP_TYPE_USER_RINGBUF: (0, 0, 4096 * 4, 0, {}),
    MT.BPF_MAP_TYPE_QUEUE: (0, 8, 16, 0, {}),
    MT.BPF_MAP_TYPE_STACK: (0, 8, 16, 0, {}),
    MT.BPF_MAP_TYPE_BLOOM_FILTER: (0, 8, 16, 0, {"map_extra": 3}),
    MT.BPF_MAP_TYPE_DEVMAP: (4, 4, 16, 0, {}),
    MT.BPF_MAP_TYPE_DEVMAP_HASH: (4, 4, 16, 0, {}),
    MT.BPF_MAP_TYPE_CPUMAP: (4, 4, 2, 0, {}),
    MT.BPF_MAP_TYPE_SOCKMAP: (4, 4, 16, 0, {}),
    MT.BPF_MAP_TYPE_SOCKHASH: (4, 4, 16, 0, {}),
    MT.BPF_MAP_TYPE_CGROUP_ARRAY: (4, 4, 16, 0, {}),
    MT.BPF_MAP_TYPE_STACK_TRACE: (4, 8 * 16, 16, 0, {}),
    MT.BPF_MAP_TYPE_XSKMAP: (4, 4, 16, 0, {}),
    MT.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: (4, 4, 16, 0, {}),
    MT.BPF_MAP_TYPE_ARENA: (0, 0, 1, 1 << 10, {}),
}
OF_MAPS = (MT.BPF_MAP_TYPE_ARRAY_OF_MAPS, MT.BPF_MAP_TYPE_HASH_OF_MAPS)
# local storages need BTF for key and value and BPF_F_NO_PREALLOC
STORAGES = (
    MT.BPF_MAP_TYPE_SK_STORAGE,
    MT.BPF_MAP_TYPE_INODE_STORAGE,
    MT.BPF_MAP_TYPE_TASK_STORAGE,
    MT.BPF_MAP_TYPE_CGRP_STORAGE,
)


def _refused_when_absent(mtype: MT) -> bool:
    """True when this kernel lacks ``mtype`` (the loader's own probe); then creating one must fail clearly.

    The clear error is NotSupportedError naming the type and the map, with the kernel's errno.
    """
    from pybpfload.syscall.features import map_type_supported

    return not map_type_supported(mtype)


def _assert_create_refused(mtype: MT, *args: object, **kw: object) -> None:
    with pytest.raises((SyscallError, NotSupportedError)) as ei:
        Map.create(mtype, *args, **kw).close()  # type: ignore[arg-type]
    assert_not_supported(ei.value, f"map type {mtype.name[13:].lower()}", "BPF_MAP_CREATE", str(kw.get("name", "")))


def _bpftool_map(map_id: int) -> dict:
    tool = require_tool("bpftool")
    out = subprocess.run([tool, "map", "show", "id", str(map_id), "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("mtype", list(CREATABLE), ids=lambda t: t.name[13:].lower())
def test_create_every_type_as_bpftool_sees_it(mtype: MT) -> None:
    ks, vs, n, flags, kw = CREATABLE[mtype]
    if mtype == MT.BPF_MAP_TYPE_ARENA:
        kw = dict(kw, map_extra=0)
    name = "t_" + mtype.name[13:].lower()[:12]
    if _refused_when_absent(mtype):
        _assert_create_refused(mtype, ks, vs, n, flags, name=name, **kw)
        return
    with Map.create(mtype, ks, vs, n, flags, name="t_" + mtype.name[13:].lower()[:12], **kw) as m:
        info = m.info()
        seen = _bpftool_map(info.id)
        assert seen["id"] == info.id
        assert seen["type"] in (info.type_name, info.type)  # bpftool 7.1 prints numbers for types newer than it
        assert (seen["bytes_key"], seen["bytes_value"], seen["max_entries"]) == (ks, vs, n)
        assert seen["flags"] == info.flags and info.flags & flags == flags  # the kernel may add some (devmap)
        assert seen["name"] == m.name[:15]


@pytest.mark.parametrize("mtype", OF_MAPS, ids=lambda t: t.name[13:].lower())
def test_maps_of_maps(mtype: MT) -> None:
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="inner") as inner, Map.create(
        mtype, 4, 4, 4, name="outer", inner_map=inner
    ) as outer:
        outer[0] = inner  # an fd in, an id out
        assert int.from_bytes(outer[0], sys.byteorder) == inner.info().id
        assert _bpftool_map(outer.info().id)["type"] == mtype.name[13:].lower()
    # an inner map given as a template (never created) works as in libbpf
    tmpl = Map("tmpl", MT.BPF_MAP_TYPE_HASH, 4, 8, 2)
    with Map.create(mtype, 4, 4, 2, name="outer2", inner_map=tmpl) as outer2:
        assert outer2.info().type == mtype
    assert tmpl.fd == -1


@pytest.mark.parametrize("mtype", STORAGES, ids=lambda t: t.name[13:].lower())
def test_local_storage_with_btf(mtype: MT) -> None:
    from pybpfload.syscall import commands

    btf, _ = commands.btf_load(_int_btf())
    with btf:
        if _refused_when_absent(mtype):
            args = dict(name="stor", btf_fd=btf.fileno(), btf_key_type_id=1, btf_value_type_id=1)
            _assert_create_refused(mtype, 4, 4, 0, BPF_F_NO_PREALLOC, **args)
            return
        with Map.create(
            mtype, 4, 4, 0, BPF_F_NO_PREALLOC, name="stor", btf_fd=btf.fileno(), btf_key_type_id=1, btf_value_type_id=1
        ) as m:
            info = m.info()
            assert info.btf_id != 0 and info.btf_key_type_id == 1 and info.btf_value_type_id == 1
            assert _bpftool_map(info.id)["type"] in (mtype.name[13:].lower(), int(mtype))


def test_hash_operations_and_flags() -> None:
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 8, 8, name="h") as m:
        m[1] = 10
        m.update(2, 20, bpf.BPF_NOEXIST)
        with pytest.raises(SyscallError) as ei:
            m.update(2, 21, bpf.BPF_NOEXIST)
        assert ei.value.errno == errno.EEXIST
        with pytest.raises(KeyError):
            m.update(3, 30, bpf.BPF_EXIST)
        m.update(2, 22, bpf.BPF_EXIST)
        assert int.from_bytes(m[2], sys.byteorder) == 22
        assert m.get(99) is None and 1 in m and 99 not in m
        assert sorted(int.from_bytes(k, sys.byteorder) for k in m.keys()) == [1, 2]
        assert len(m) == 2
        if hash_lookup_and_delete():
            assert int.from_bytes(m.lookup_and_delete(1), sys.byteorder) == 10
        else:  # before 5.14 only queues and stacks had it: the kernel's ENOTSUPP, naming the command
            with pytest.raises(SyscallError, match="BPF_MAP_LOOKUP_AND_DELETE_ELEM") as nse:
                m.lookup_and_delete(1)
            assert nse.value.errno in (524, errno.EOPNOTSUPP, errno.EINVAL)
            del m[1]
        del m[2]
        with pytest.raises(bpf.MapKeyError) as ke:
            del m[2]
        assert ke.value.errno == errno.ENOENT and isinstance(ke.value, KeyError)
        assert len(m) == 0
        for i in range(8):
            m[i] = i
        with pytest.raises(SyscallError) as full:
            m[100] = 1
        assert full.value.errno == errno.E2BIG


def test_formats_bytes_and_sizes() -> None:
    with Map.create(MT.BPF_MAP_TYPE_HASH, 8, 16, 4, name="f", key_format="<II", value_format="<qQ") as m:
        m[(1, 2)] = (-5, 7)
        assert m[(1, 2)] == (-5, 7)
        assert list(m.items()) == [((1, 2), (-5, 7))]
        assert m.lookup(struct.pack("<II", 1, 2)) == (-5, 7)
        with pytest.raises(BPFError, match="key is 3 bytes"):
            m.lookup(b"abc")
        with pytest.raises(BPFError, match="value is 2 bytes"):
            m[(3, 4)] = b"xx"
    with pytest.raises(BPFError, match="key_format"):
        Map.create(MT.BPF_MAP_TYPE_HASH, 4, 4, 1, key_format="<Q")


def test_lock_flag_needs_spin_lock() -> None:
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 8, 4, name="nolock") as m:
        m[1] = 1
        with pytest.raises(SyscallError) as ei:
            m.update(1, 2, bpf.BPF_F_LOCK)  # no bpf_spin_lock in the value: the kernel says EINVAL
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(SyscallError):
            m.lookup(1, bpf.BPF_F_LOCK)


def test_array_semantics() -> None:
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 4, name="a", value_format="I") as a:
        assert [a[i] for i in range(4)] == [0, 0, 0, 0]
        a[3] = 9
        assert a.dump() == {0: 0, 1: 0, 2: 0, 3: 9} or a.dump() == {
            b"\0\0\0\0": 0,
            b"\1\0\0\0": 0,
            b"\2\0\0\0": 0,
            b"\3\0\0\0": 9,
        }
        with pytest.raises(SyscallError) as ei:
            del a[0]
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(KeyError):
            a[4]


@pytest.mark.parametrize("mtype", [MT.BPF_MAP_TYPE_PERCPU_ARRAY, MT.BPF_MAP_TYPE_PERCPU_HASH, MT.BPF_MAP_TYPE_LRU_PERCPU_HASH])
def test_percpu_values(mtype: MT) -> None:
    n = possible_cpus()
    assert n == len(os.sched_getaffinity(0)) or n >= 1
    with Map.create(mtype, 4, 4, 4, name="pc", key_format="I", value_format="I") as m:
        vals = list(range(100, 100 + n))
        m[1] = vals
        assert m[1] == vals
        m[2] = 7  # one value for every CPU
        assert m[2] == [7] * n
        with pytest.raises(BPFError, match="per-CPU values"):
            m[1] = [1] * (n + 1)
        dumped = m.dump()
        assert dumped[1] == vals and dumped[2] == [7] * n
    # raw: values come back padded to 8 bytes per CPU, trimmed to value_size
    with Map.create(mtype, 4, 4, 4, name="pcraw") as m:
        m[0] = [i.to_bytes(4, sys.byteorder) for i in range(n)]
        assert m[0] == [i.to_bytes(4, sys.byteorder) for i in range(n)]


def test_possible_cpus_matches_sysfs() -> None:
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    cpus = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    assert possible_cpus() == len(cpus)


@pytest.mark.parametrize("mtype,order", [(MT.BPF_MAP_TYPE_QUEUE, [1, 2, 3]), (MT.BPF_MAP_TYPE_STACK, [3, 2, 1])])
def test_queue_and_stack(mtype: MT, order: list) -> None:
    with Map.create(mtype, 0, 8, 3, name="q", value_format="Q") as q:
        for v in (1, 2, 3):
            q.push(v)
        with pytest.raises(SyscallError) as ei:
            q.push(4)
        assert ei.value.errno == errno.E2BIG
        assert q.peek() == order[0]
        assert [q.pop() for _ in range(3)] == order
        with pytest.raises(KeyError):
            q.pop()
        with pytest.raises(KeyError):
            q.peek()


def test_bloom_filter() -> None:
    if _refused_when_absent(MT.BPF_MAP_TYPE_BLOOM_FILTER):  # 5.16+
        _assert_create_refused(MT.BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 64, name="bf", map_extra=3)
        return
    with Map.create(MT.BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 64, name="bf", map_extra=3, value_format="Q") as bf:
        for v in range(10):
            bf.push(v)
        assert all(bf.contains_value(v) for v in range(10))
        misses = sum(not bf.contains_value(v) for v in range(1000, 1100))
        assert misses > 50  # false positives are possible, not the rule


def test_lpm_trie() -> None:
    # key: u32 prefixlen + 4 bytes of IPv4 address
    with Map.create(MT.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 16, BPF_F_NO_PREALLOC, name="lpm", value_format="I") as t:
        t[struct.pack("<I4B", 8, 10, 0, 0, 0)] = 1
        t[struct.pack("<I4B", 24, 10, 1, 2, 0)] = 2
        assert t[struct.pack("<I4B", 32, 10, 1, 2, 3)] == 2
        assert t[struct.pack("<I4B", 32, 10, 9, 9, 9)] == 1
        with pytest.raises(KeyError):
            t[struct.pack("<I4B", 32, 11, 0, 0, 0)]


def test_batch_operations() -> None:
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 8, 1000, name="b", key_format="I", value_format="Q") as m:
        keys = list(range(700))
        assert m.update_batch(keys, [k * 3 for k in keys]) == 700
        got = dict(m.lookup_batch(chunk=64))
        assert got == {k: k * 3 for k in keys}
        assert m.delete_batch(keys[:100]) == 100
        assert len(m) == 600
        drained = dict(m.lookup_and_delete_batch(chunk=50))
        assert drained == {k: k * 3 for k in keys[100:]}
        assert len(m) == 0
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 100, name="ba", key_format="I", value_format="I") as a:
        a.update_batch(list(range(100)), list(range(100, 200)))
        assert a.dump(chunk=7) == {k: k + 100 for k in range(100)}


def test_freeze_and_mmap() -> None:
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 8, 4, BPF_F_MMAPABLE, name="mm", value_format="Q") as a:
        mm = a.mmap()
        try:
            mm[8:16] = (77).to_bytes(8, sys.byteorder)
            assert a[1] == 77
            a[2] = 5
            assert int.from_bytes(mm[16:24], sys.byteorder) == 5
        finally:
            mm.close()
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 8, 4, BPF_F_RDONLY_PROG, name="fr") as a:
        a[0] = 1
        a.freeze()
        with pytest.raises(SyscallError) as ei:
            a[0] = 2
        assert ei.value.errno == errno.EPERM
        assert int.from_bytes(a[0], sys.byteorder) == 1
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 8, 4, name="nomm") as a:
        with pytest.raises(BPFError, match="MMAPABLE"):
            a.mmap()


def test_info_ids_and_open_by_id() -> None:
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 8, 5, name="byid") as m:
        info = m.info()
        assert info.id in set(Map.ids())
        with Map.from_id(info.id) as again:
            assert again.info() == info
            again[1] = 5
            assert m[1] == again[1]
        with Map.from_fd(m.fileno()) as dup:
            assert dup.fd != m.fd and dup.info().id == info.id
    with pytest.raises(SyscallError) as ei:
        Map.from_id(0x7FFFFFF0)
    assert ei.value.errno == errno.ENOENT


def test_ids_of_every_kind_are_listed() -> None:
    from pybpfload.syscall import commands

    for kind in ("prog", "map", "btf", "link"):
        ids = list(commands.iter_ids(kind))
        assert ids == sorted(set(ids))
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1) as m:
        assert m.info().id in commands.iter_ids("map")


def test_pin_and_open_from_pin(bpffs: Path) -> None:
    path = str(bpffs / "m1")
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 8, 5, name="pinme", value_format="Q") as m:
        m.pin(path)
        m.pin(path)  # again at the same path: a no-op
        with pytest.raises(PinError, match="already has pin path"):
            m.pin(str(bpffs / "other"))
        m[3] = 33
        # read it through the pin in another process
        code = (
            "import sys; from pybpfload import Map; m = Map.from_pin(sys.argv[1], value_format='Q'); "
            "print(m[3]); m[4] = 44; m.close()"
        )
        out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "33"
        assert m[4] == 44
        m.unpin()
        assert not os.path.exists(path)


def test_pin_path_errors(bpffs: Path, tmp_path: Path) -> None:
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="pe") as m:
        with pytest.raises(PinError) as ei:
            m.pin(str(tmp_path / "notbpffs"))
        assert ei.value.errno == errno.EINVAL and "notbpffs" in str(ei.value) and "bpffs" in str(ei.value)
        with pytest.raises(PinError) as ei:
            m.pin(str(bpffs / "missing" / "two-levels" / "x"))  # only the parent is created, as libbpf
        assert ei.value.errno == errno.ENOENT
        assert m.pin_path is None and m.pinned_at is None
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="pe2") as m:
        m.pin(str(bpffs / "new-dir" / "x"))  # the parent directory is created
        assert (bpffs / "new-dir" / "x").exists()
        m.unpin()
        taken = bpffs / "taken"
        with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1) as first:
            first.pin(str(taken))
            with pytest.raises(PinError) as ei:
                with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1) as other:
                    other.pin(str(taken))
            assert ei.value.errno == errno.EEXIST
            first.unpin()
    with pytest.raises(PinError):
        Map.from_pin(str(bpffs / "nothing"))


def test_closed_and_uncreated_maps_raise_state_errors() -> None:
    m = Map("def", MT.BPF_MAP_TYPE_HASH, 4, 4, 1)
    assert m.fd == -1
    with pytest.raises(StateError, match="not created"):
        m[1]
    m.max_entries = 2  # a definition can change until created
    m._create()
    assert m.info().max_entries == 2
    with pytest.raises(StateError):
        m.max_entries = 3
    with pytest.raises(StateError, match="already created"):
        m._create()
    m.close()
    for op in (lambda: m[1], lambda: m.update(1, 1), lambda: list(m.keys()), lambda: m.info(), lambda: m.push(1)):
        with pytest.raises(StateError, match="closed"):
            op()


def test_closed_map_never_touches_a_reused_fd() -> None:
    a = Map.create(MT.BPF_MAP_TYPE_HASH, 4, 4, 4, name="a")
    old = a.fd
    a.close()
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 4, 4, name="b") as b:
        assert b.fd == old  # the kernel reuses the lowest free fd
        with pytest.raises(StateError):
            a[1] = 1
        assert len(b) == 0


def test_create_errors_name_the_map() -> None:
    with pytest.raises(SyscallError) as ei:
        Map.create(MT.BPF_MAP_TYPE_HASH, 0, 8, 4, name="badkey")
    assert ei.value.errno == errno.EINVAL
    assert "BPF_MAP_CREATE" in str(ei.value) and "badkey" in str(ei.value)
    assert isinstance(ei.value, OSError) and isinstance(ei.value, bpf.BPFError)


def test_reuse_fd() -> None:
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 8, 7, name="orig") as orig:
        orig[1] = 2
        m = Map("other", MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
        m.reuse_fd(orig.fileno())
        with m:
            assert (m.type, m.key_size, m.value_size, m.max_entries) == (MT.BPF_MAP_TYPE_HASH, 4, 8, 7)
            assert m[1] == orig[1]


def test_map_in_map_with_a_value_format_takes_maps() -> None:
    """An outer map with value_format still takes a Map (an fd in, an id out); a value
    that does not fit the format is a BPFError naming the map, not struct.error."""
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="inner") as inner, Map.create(
        MT.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 2, name="outer", inner_map=inner, value_format="I"
    ) as outer:
        outer[0] = inner
        assert outer[0] == inner.info().id
        with pytest.raises(BPFError, match="'outer'.*value_format"):
            outer[1] = "not a number"
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 4, 2, name="kf", key_format="I") as m:
        with pytest.raises(BPFError, match="'kf'.*key_format"):
            m[-1] = 0


def test_from_pin_knows_its_pin(bpffs: Path) -> None:
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="pinned") as m:
        m.pin(str(bpffs / "m"))
    with Map.from_pin(str(bpffs / "m")) as again:
        assert again.pinned and again.pinned_at == str(bpffs / "m") and again.name == "pinned"
        again.unpin()
    assert not (bpffs / "m").exists()


def test_initial_value_of_a_frozen_map_says_so() -> None:
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1, BPF_F_RDONLY_PROG, name="ro") as m:
        with pytest.raises(StateError, match="frozen at load"):
            m.initial_value = b"\1\0\0\0"
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="rw") as m:
        with pytest.raises(StateError, match="write element 0"):
            m.initial_value = b"\1\0\0\0"
