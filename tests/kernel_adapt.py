"""What the running kernel offers, for tests that adapt to it (the kernel matrix).

Decisions come from the loader's own feature probes or from the kernel's BTF,
never from version numbers; a test of an absent feature then asserts the
clear error instead of skipping.
"""

from __future__ import annotations

import functools
import os


def assert_not_supported(exc: BaseException, *words: str) -> None:
    """``exc`` is the clear refusal of a type the loader's probe says is absent:
    NotSupportedError naming ``words`` (the type, the object), carrying the kernel's
    errno, whatever errno this kernel build answers (EINVAL on one, EPERM on another)."""
    from pybpfload.errors import NotSupportedError

    assert isinstance(exc, NotSupportedError), repr(exc)
    assert isinstance(exc.errno, int) and exc.errno > 0, repr(exc)
    text = str(exc)
    assert "not supported by this kernel" in text and os.strerror(exc.errno) in text, text
    for w in words:
        assert w.lower() in text.lower(), (w, text)


@functools.lru_cache(maxsize=None)
def vmlinux_has(type_name: str, member: str) -> bool:
    """Whether the kernel's BTF struct/enum ``type_name`` has ``member`` (a field or an enumerator)."""
    from pybpfload.btf import types as T
    from pybpfload.btf.vmlinux import vmlinux_spec
    from pybpfload.btf.query import field
    from pybpfload.errors import BTFError

    vm = vmlinux_spec()
    for tid in vm.find_ids(type_name):
        t = vm.type(tid)
        if isinstance(t, (T.Enum, T.Enum64)):
            if any(v.name == member for v in t.values):
                return True
        elif isinstance(t, (T.Struct, T.Union)):
            try:
                field(vm, tid, member)
                return True
            except BTFError:
                pass
    return False


def kernel_has_perf_links() -> bool:
    """BPF links over perf events (5.15+): the kernel's enum bpf_link_type says."""
    return vmlinux_has("bpf_link_type", "BPF_LINK_TYPE_PERF_EVENT")


def kernel_describes_perf_links() -> bool:
    """Whether LINK info describes perf-event links (6.6+): struct bpf_link_info has perf_event."""
    return kernel_has_perf_links() and vmlinux_has("bpf_link_info", "perf_event")


def has_bpf_loop() -> bool:
    """bpf_loop() for XDP programs (5.17+), by the loader's helper probe (subprogs.bpf.o's xdp_one uses it)."""
    from pybpfload.syscall.features import helper_supported
    from pybpfload.syscall import FuncId, ProgType

    return helper_supported(ProgType.BPF_PROG_TYPE_XDP, FuncId.BPF_FUNC_loop)


@functools.lru_cache(maxsize=None)
def vmlinux_has_func(name: str) -> bool:
    """Whether the kernel's BTF has a FUNC called ``name``."""
    from pybpfload.btf import types as T
    from pybpfload.btf.vmlinux import vmlinux_spec

    vm = vmlinux_spec()
    return any(isinstance(vm.type(tid), T.Func) for tid in vm.find_ids(name))


def hash_lookup_and_delete() -> bool:
    """BPF_MAP_LOOKUP_AND_DELETE_ELEM on hash maps (5.14+): the kernel has htab_map_lookup_and_delete_elem."""
    return vmlinux_has_func("htab_map_lookup_and_delete_elem")


def load_or_assert_refused(obj, needs: str) -> None:  # type: ignore[no-untyped-def]
    """``obj.load()``; where the kernel lacks what the programs need, assert the clear error and skip.

    ``needs``: "bpf_cookie" (bpf_get_attach_cookie, 5.15+: the verifier names the
    unknown helper), "sleepable_uprobe" (sleepable kprobe-type programs, which
    the verifier refuses by name before) or "user_ringbuf" (BPF_MAP_TYPE_USER_RINGBUF,
    6.1+: the loader names the absent map type).  Decided by probes, not versions.
    """
    import pytest

    from pybpfload.syscall import features
    from pybpfload.errors import BPFError, NotSupportedError, VerifierError
    from pybpfload.abi.uapi import FuncId, MapType

    if needs == "bpf_cookie":
        present = features.has_bpf_cookie()
    elif needs == "sleepable_uprobe":
        present = sleepable_kprobe_type()
        if present:
            return load_or_assert_refused(obj, "bpf_cookie")
    elif needs == "user_ringbuf":
        present = features.map_type_supported(MapType.BPF_MAP_TYPE_USER_RINGBUF)
    else:
        raise ValueError(needs)
    if present:
        obj.load()
        return
    with pytest.raises(BPFError) as ei:
        obj.load()
    if needs == "bpf_cookie":
        assert isinstance(ei.value, VerifierError), ei.value
        assert f"unknown#{int(FuncId.BPF_FUNC_get_attach_cookie)}" in (ei.value.log or ""), ei.value
    elif needs == "sleepable_uprobe":
        assert isinstance(ei.value, VerifierError) and "can be sleepable" in (ei.value.log or ""), ei.value
    else:
        assert isinstance(ei.value, NotSupportedError) and "user_ringbuf" in str(ei.value).lower(), repr(ei.value)
    assert not any(p.loaded for p in obj.programs.values())
    pytest.skip(f"this kernel lacks {needs}: the load is refused with the clear error (asserted)")


@functools.lru_cache(maxsize=None)
def sleepable_kprobe_type() -> bool:
    """Whether a sleepable (BPF_F_SLEEPABLE) kprobe-type program, as uprobe.s ones are, loads here."""
    from pybpfload.errors import BPFError
    from pybpfload.kernel.program import Program
    from pybpfload.abi.uapi import ProgType

    exit0 = bytes.fromhex("b700000000000000") + bytes.fromhex("9500000000000000")
    try:
        Program.load(exit0, ProgType.BPF_PROG_TYPE_KPROBE, name="sleepable", flags=1 << 4).close()
    except BPFError:
        return False
    return True


def as_libbpf_1_1_kversion(ours: int) -> int:
    """The kernel version libbpf 1.1 reports where ``ours`` is the running kernel's: 1.1 reads
    it from the release ("6.1.0-42-amd64"), current libbpf and pybpfload from a Debian
    kernel's "Debian 6.1.176" in uname's version.  Other values are returned as they are."""
    import re

    from pybpfload.syscall.features import running_kernel_version

    u = os.uname()
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", u.release)
    if ours != running_kernel_version() or "Debian " not in u.version or m is None:
        return ours
    a, b, c = (int(x) for x in m.groups())
    return (a << 16) + (b << 8) + min(c, 255)
