"""Global variables by name (obj.rodata.x, obj.bss.y, obj.globals[".data.custom"].z).

Before load the values live in the internal maps' initial images; after load
in the live maps: what the API writes, the BPF program (BPF_PROG_TEST_RUN)
reads, and what the program writes, the API reads.  Both the clang 14 and the
clang 19 build of fixtures/src/global_data.bpf.c.
"""

from __future__ import annotations

import struct

import pytest

from pybpfload.errors import BPFError, StateError, UnknownAttributeError
from pybpfload.object import Object

from .conftest import fixture_path

BUILDS = ["global_data.bpf.o", "global_data.clang19.bpf.o"]


@pytest.fixture(params=BUILDS)
def obj(request: pytest.FixtureRequest) -> Object:
    o = Object.open(fixture_path(request.param))
    yield o  # type: ignore[misc]
    o.close()


def test_read_before_load(obj: Object) -> None:
    assert obj.rodata.threshold == 100
    assert obj.rodata.banner == b"hello" and obj.rodata.banner.raw == b"hello\0\0\0"
    assert obj.data.counter == 7
    assert obj.bss.hits == 0
    assert obj.globals[".data.custom"].custom_val == 42
    assert obj.globals[".rodata.custom"].custom_ro == 9
    assert obj.globals[".data.a_rather_long_name"].big_array[:3] == b"\x01\x02\x03"
    assert set(obj.globals) >= {".data", ".rodata", ".bss", ".data.custom", ".rodata.custom"}


def test_write_before_load_goes_into_the_image(obj: Object) -> None:
    obj.rodata.threshold = 5
    obj.rodata.banner = "hi"
    ro = obj.maps[".rodata"].initial_value
    assert ro is not None
    off = {n: o for n, o in _layout(obj, ".rodata").items()}
    assert struct.unpack_from("i", ro, off["threshold"])[0] == 5
    assert ro[off["banner"] : off["banner"] + 8] == b"hi" + bytes(6)
    assert obj.rodata.threshold == 5 and obj.rodata["banner"] == b"hi"


def _layout(obj: Object, section: str) -> dict:
    btf = obj.btf
    assert btf is not None
    ds = btf.type(btf.find_id(section))
    return {btf.name_of(v.type): v.offset for v in ds.vars}  # type: ignore[attr-defined]


def test_unknown_names_and_values_that_do_not_fit(obj: Object) -> None:
    image = obj.maps[".rodata"].initial_value
    with pytest.raises(UnknownAttributeError, match="threshold") as e:
        obj.rodata.thresold = 1
    assert isinstance(e.value, AttributeError) and isinstance(e.value, BPFError)
    with pytest.raises(UnknownAttributeError, match="its variables: threshold, banner"):
        _ = obj.rodata.nothing
    with pytest.raises(BPFError, match=r"^\.rodata\.threshold: 1099511627776 does not fit int"):
        obj.rodata.threshold = 2**40
    with pytest.raises(BPFError, match=r"^\.rodata\.banner: 9 bytes do not fit"):
        obj.rodata.banner = b"123456789"
    assert obj.maps[".rodata"].initial_value == image  # nothing written
    assert not hasattr(obj.rodata, "thresold")
    with pytest.raises(UnknownAttributeError, match="no .kconfig section"):
        obj._section(".kconfig")


@pytest.mark.kernel
def test_globals_round_trip_through_the_program(obj: Object) -> None:
    obj.rodata.threshold = 5
    obj.load()
    assert obj.rodata.threshold == 5
    prog = obj.programs["use_globals"]
    prog.test_run(bytes(64))
    assert obj.bss.hits == 1
    assert obj.data.counter == 7 + 5 + ord("h") + 9 + 2 + 5
    assert obj.globals[".data.custom"].custom_val == 43
    # written through the API (mmap for these BPF_F_MMAPABLE maps), read by the program
    obj.bss.hits = 1000
    obj.data.counter = 0
    obj.globals[".data.a_rather_long_name"].big_array = bytes([0, 50])
    prog.test_run(bytes(64))
    assert obj.bss.hits == 1001
    assert obj.data.counter == 5 + ord("h") + 9 + 50 + 5
    assert obj.bss._asdict()["hits"] == 1001
    with pytest.raises(StateError, match="frozen"):
        obj.rodata.threshold = 6
    assert obj.rodata.threshold == 5


@pytest.mark.kernel
def test_globals_without_mmap_use_element_zero() -> None:
    with Object.open(fixture_path("global_data.bpf.o")) as o:
        m = o.maps[".bss"]
        m.flags &= ~(1 << 10)  # no BPF_F_MMAPABLE: lookup / update of element 0
        o.load()
        o.programs["use_globals"].test_run(bytes(64))
        assert o.bss.hits == 1
        o.bss.hits = 41
        o.programs["use_globals"].test_run(bytes(64))
        assert o.bss.hits == 42
        assert o.bss._mm is None


def test_struct_globals_take_dicts() -> None:
    with Object.open(fixture_path("btf_kinds.bpf.o")) as o:
        assert o.data.all_data.color.name == "GREEN"
        o.data.all_data = {"pt": {"x": 4}}  # only pt.x changes
        v = o.data.all_data
        assert v.pt.x == 4 and v.color.name == "GREEN"
        assert o.bss.all_bss.pt == {"x": 0, "y": 0}


@pytest.mark.kernel
def test_kconfig_is_read_only() -> None:
    kconfig = 'CONFIG_BPF_SYSCALL=y\nCONFIG_BPF_JIT=m\nCONFIG_DEFAULT_HOSTNAME="pyhost"\n'
    with Object.open(fixture_path("kconfig_only.bpf.o"), kconfig=kconfig) as o:
        kc = o.globals[".kconfig"]
        with pytest.raises(StateError, match="set by the loader"):
            kc.CONFIG_BPF_JIT = 1
        o.load()
        assert kc.CONFIG_BPF_SYSCALL is True and kc.CONFIG_BPF_JIT.name == "TRI_MODULE"
        assert kc.CONFIG_DEFAULT_HOSTNAME == b"pyhost" and kc.LINUX_KERNEL_VERSION > 0
        o.programs["read_kconfig"].test_run(bytes(64))
        assert o.bss.seen == [kc.LINUX_KERNEL_VERSION, 1, 2, 0, ord("p")]
        with pytest.raises(StateError):
            kc.CONFIG_BPF_JIT = 1


def _image(o: Object, section: str) -> bytes:
    m = o.maps[section]
    return bytes(m.raw[0]) if m.created else bytes(m.initial_value or b"")


@pytest.mark.parametrize("stage", ["before load", "loaded, mmapped", "loaded, element 0"])
def test_nested_writes_reach_the_map(stage: str) -> None:
    """obj.data.s.inner.x = 1 changes the variable, not a copy of it: struct members, array
    elements, members of anonymous unions, at any depth; nothing else in the section moves."""
    with Object.open(fixture_path("btf_kinds.bpf.o")) as o:
        if stage != "before load":
            if stage == "loaded, element 0":
                o.maps[".data"].flags &= ~(1 << 10)  # no BPF_F_MMAPABLE
            try:
                o.load()
            except BPFError as e:  # the fixture is for the BTF decoder: it may not load everywhere
                pytest.skip(f"btf_kinds does not load here: {e}")
        before = _image(o, ".data")
        d = o.data
        d.all_data.pt.x = 4  # a member of a typedef'd anonymous struct
        d.all_data.nested.matrix[2][1] = 21  # an element of a 2-D array in a nested struct
        d.all_data.nested.halves.hi = -3  # through an anonymous union
        d.all_data.nested.inner.name = b"abc"
        v = o.data.all_data
        assert (v.pt.x, v.nested.matrix[2][1], v.nested.halves.hi, v.nested.inner.name) == (4, 21, -3, b"abc")
        assert v.color.name == "GREEN"  # untouched
        after = _image(o, ".data")
        assert after != before and len(after) == len(before)
        # the same value written as a whole gives the same bytes: nothing else changed
        with Object.open(fixture_path("btf_kinds.bpf.o")) as ref:
            ref.data.all_data = v
            assert _image(ref, ".data") == after
        with pytest.raises(BPFError, match=r"\.data\.all_data\.pt\.x"):
            d.all_data.pt.x = 2**40  # does not fit an int: refused, nothing written
        assert _image(o, ".data") == after


def test_struct_values_are_plain_python() -> None:
    """A decoded struct: ==, hash, repr, _asdict, bytes(), copies that do not alias the map."""
    with Object.open(fixture_path("btf_kinds.bpf.o")) as o:
        a, b = o.data.all_data, o.data.all_data
        assert a == b and hash(a) == hash(b) and a is not b
        assert a == a._asdict() and "color=" in repr(a)
        assert len(bytes(a)) == o.btf.size(o.btf.find_id("all"))
        a.pt.y = 99  # a's home is the variable: this writes it
        assert o.data.all_data.pt.y == 99
        assert type(a).from_buffer_copy(bytes(a)) == a  # bytes(v) is the C layout: a copy from it is equal
        with pytest.raises(AttributeError):
            a.no_such_member = 1  # type: ignore[attr-defined]
