"""Map attributes after creation (issue 15 items 6-8).

- key_format / value_format set on a created map take effect at once;
- initial_value of a created array is its live element 0 (libbpf's
  bpf_map__initial_value shows the mmapped map), and setting it then is
  refused (libbpf: -EBUSY);
- a misspelt attribute raises UnknownAttributeError instead of being stored
  where nothing reads it.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, Iterator

import pytest

from pybpfload import Map, MapType as MT, Object
from pybpfload import libbpf as L
from pybpfload.errors import BPFError, StateError, UnknownAttributeError
from pybpfload.kernel.maps import possible_cpus

from .conftest import FIXTURES, open_fds
from .kernel_adapt import hash_lookup_and_delete

kernel = pytest.mark.kernel


# ---------------------------------------------------------------- formats
@kernel
def test_formats_set_after_creation_take_effect() -> None:
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 8, 8, name="fmt") as m:
        m[struct.pack("I", 3)] = struct.pack("Q", 30)
        assert m[struct.pack("I", 3)] == struct.pack("Q", 30)
        m.value_format = "Q"
        assert m.value_format == "Q"
        assert m[struct.pack("I", 3)] == 30
        m.key_format = "I"
        assert m[3] == 30
        m[(4,)] = 40  # a one-field key as a tuple too
        assert sorted(m.keys()) == [3, 4]
        assert m.dump() == {3: 30, 4: 40}
        assert dict(m.lookup_batch()) == {3: 30, 4: 40}
        if hash_lookup_and_delete():  # hash maps have it from 5.14 (the kernel's own functions say)
            assert m.lookup_and_delete(4) == 40
        else:
            assert m[4] == 40
            del m[4]
        m.value_format = "=HHI"  # several fields: tuples
        assert m[3] == (30, 0, 0)
        m.key_format = m.value_format = None  # back to bytes
        assert m.dump() == {struct.pack("I", 3): struct.pack("Q", 30)}


@kernel
def test_format_of_the_wrong_size_is_refused_and_the_old_one_kept() -> None:
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 8, 2, name="fmtsz", value_format="Q") as m:
        m[0] = 5
        with pytest.raises(BPFError, match=r"map 'fmtsz': value_format 'I' is 4 bytes, value is 8"):
            m.value_format = "I"
        with pytest.raises(BPFError, match=r"key_format 'Q' is 8 bytes, key is 4"):
            m.key_format = "Q"
        assert (m.key_format, m.value_format) == (None, "Q")
        assert m[0] == 5


@kernel
def test_percpu_value_format_after_creation() -> None:
    ncpu = possible_cpus()
    with Map.create(MT.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 2, name="fmtpc") as m:
        m[1] = [struct.pack("I", c) for c in range(ncpu)]
        m.value_format = "I"
        assert m[1] == list(range(ncpu))
        m[1] = 7
        assert m[1] == [7] * ncpu


def test_bad_formats_are_refused_when_set() -> None:
    m = Map("bad", MT.BPF_MAP_TYPE_HASH, 4, 8, 1)
    with pytest.raises(BPFError, match=r"map 'bad': bad value_format 'Z'"):
        m.value_format = "Z"
    with pytest.raises(BPFError, match="bad key_format"):
        Map("bad2", MT.BPF_MAP_TYPE_HASH, 4, 8, 1, key_format="?!")
    with pytest.raises(BPFError, match="must be a struct format string or None, not int"):
        m.key_format = 4  # type: ignore[assignment]
    assert m.value_format is None


@kernel
def test_format_set_before_creation_is_checked_at_creation() -> None:
    m = Map("late", MT.BPF_MAP_TYPE_HASH, 4, 8, 4)
    m.value_format = "I"  # the sizes may still change: only the syntax is checked now
    with pytest.raises(BPFError, match="value_format 'I' is 4 bytes, value is 8"):
        m._create()
    assert not m.created
    m.value_format = "Q"
    with m._create():
        m[1] = 11
        assert m[1] == 11


# ---------------------------------------------------------------- initial_value
def _by_section(obj: Object) -> Dict[str, Map]:
    return {obj.map_spec(n).real_name: obj.maps[n] for n in obj.maps}


def _var(obj: Object, sec: str, name: str, fmt: str, image: bytes) -> Any:
    ds = obj.model.datasec(sec)
    assert ds is not None
    off = next(v.offset for v in ds.vars if v.name == name)
    return struct.unpack_from(fmt, image, off)[0]


@kernel
def test_initial_value_is_live_after_load() -> None:
    with Object.open(FIXTURES / "global_data.bpf.o") as obj:
        maps = _by_section(obj)
        data, bss, rodata = maps[".data"], maps[".bss"], maps[".rodata"]
        image = data.initial_value
        assert image is not None and _var(obj, ".data", "counter", "<i", image) == 7
        assert bss.initial_value == bytes(bss.value_size)
        obj.load()
        assert data.initial_value == image == data[0]
        assert _var(obj, ".rodata", "threshold", "<i", rodata.initial_value or b"") == 100
        obj.programs["use_globals"].test_run(b"\0" * 64)
        # counter += threshold + banner[0] + custom_ro + big_array[1] + only_static
        live = data.initial_value
        assert live is not None and live != image
        assert _var(obj, ".data", "counter", "<i", live) == 7 + 100 + ord("h") + 9 + 2 + 5
        assert _var(obj, ".bss", "hits", "<Q", bss.initial_value or b"") == 1
        assert maps[".data.custom"].initial_value == struct.pack("<i", 43)
        # and what the libbpf API reports is the same live value
        assert L.bpf_map__initial_value(data) == live
        # user space writes show too
        data[0] = bytes(data.value_size)
        assert data.initial_value == bytes(data.value_size)


@kernel
def test_initial_value_cannot_be_set_after_load() -> None:
    with Object.open(FIXTURES / "global_data.bpf.o") as obj:
        data = _by_section(obj)[".data"]
        data.initial_value = bytes(data.value_size)  # before load: the image to load
        obj.load()
        assert data.initial_value == bytes(data.value_size)
        with pytest.raises(StateError, match=r"cannot change initial_value after the map was created \(write element 0"):
            data.initial_value = b"\1" * data.value_size
        assert data.initial_value == bytes(data.value_size)
        assert L.bpf_map__set_initial_value(data, b"\1" * data.value_size) < 0


@kernel
def test_hand_made_array_starts_with_its_initial_value() -> None:
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 8, 2, name="init", initial_value=struct.pack("Q", 42), value_format="Q") as m:
        assert m[0] == 42 and m[1] == 0
        assert m.initial_value == struct.pack("Q", 42)
        m[0] = 43
        assert m.initial_value == struct.pack("Q", 43)  # raw bytes, whatever value_format says
    assert m.initial_value == struct.pack("Q", 42)  # closed: the image again


@kernel
def test_initial_value_of_the_wrong_size_is_refused_before_creation() -> None:
    before = open_fds()
    m = Map("init", MT.BPF_MAP_TYPE_ARRAY, 4, 8, 1, initial_value=b"abc")
    with pytest.raises(BPFError, match="initial value is 3 bytes, the map's value is 8"):
        m._create()
    assert not m.created and open_fds() == before


@kernel
def test_initial_value_write_failure_leaves_a_definition() -> None:
    before = open_fds()
    # BPF_F_RDONLY: user space may not write the map, so the initial value cannot be written
    m = Map("ro", MT.BPF_MAP_TYPE_ARRAY, 4, 8, 1, 1 << 3, initial_value=bytes(8))
    with pytest.raises(BPFError, match="initial value"):
        m._create()
    assert not m.created and m.fd == -1 and open_fds() == before


@kernel
def test_initial_value_of_other_maps_is_what_was_set() -> None:
    with Map.create(MT.BPF_MAP_TYPE_HASH, 4, 8, 2, name="h", initial_value=b"12345678") as m:
        assert m.initial_value == b"12345678"
        assert len(m) == 0


def test_initial_value_must_be_bytes_like() -> None:
    m = Map("x", MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1, initial_value=bytearray(b"abcd"))
    assert m.initial_value == b"abcd" and type(m.initial_value) is bytes
    with pytest.raises(BPFError, match="initial_value must be bytes-like or None, not str"):
        m.initial_value = "abcd"  # type: ignore[assignment]


# ---------------------------------------------------------------- unknown attributes
def test_misspelt_attribute_is_refused_with_a_suggestion() -> None:
    m = Map("counts", MT.BPF_MAP_TYPE_HASH, 4, 8, 16)
    with pytest.raises(UnknownAttributeError) as ei:
        m.value_fromat = "Q"  # type: ignore[attr-defined]
    e = ei.value
    assert isinstance(e, BPFError) and isinstance(e, AttributeError)
    assert str(e).startswith("map 'counts' has no attribute 'value_fromat'; did you mean 'value_format'")
    assert not hasattr(m, "value_fromat")
    with pytest.raises(UnknownAttributeError, match="did you mean 'max_entries'"):
        m.max_entires = 5  # type: ignore[attr-defined]


def test_unknown_attribute_without_close_match_lists_the_names() -> None:
    m = Map("counts", MT.BPF_MAP_TYPE_HASH, 4, 8, 16)
    with pytest.raises(UnknownAttributeError) as ei:
        m.zzzzzz = 1  # type: ignore[attr-defined]
    msg = str(ei.value)
    assert msg.startswith("map 'counts' has no attribute 'zzzzzz'; its settable attributes are ")
    for name in ("autocreate", "initial_value", "key_format", "max_entries", "pin_path", "value_format"):
        assert name in msg


def test_known_and_private_attributes_still_set() -> None:
    m = Map("ok", MT.BPF_MAP_TYPE_HASH, 4, 8, 16)
    m.max_entries = 32
    m.pin_path = "/sys/fs/bpf/ok"
    m.autocreate = False
    m.key_format = "I"
    m.struct_ops_value = None
    m._private = 1  # type: ignore[attr-defined]
    m.lookup = lambda *a: None  # type: ignore[method-assign]  # instance patching (mocks)
    assert (m.max_entries, m.pin_path, m.autocreate, m.key_format) == (32, "/sys/fs/bpf/ok", False, "I")


@kernel
def test_created_and_object_maps_refuse_unknown_attributes() -> None:
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="made") as m:
        with pytest.raises(UnknownAttributeError, match="map 'made' has no attribute 'valu_format'"):
            m.valu_format = "I"  # type: ignore[attr-defined]
        m.value_format = "I"
        assert m[0] == 0
    with Map.create(MT.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="src") as src:
        for dup in (Map.from_fd(src.fd), Map.from_id(src.id)):
            with dup, pytest.raises(UnknownAttributeError):
                dup.keyformat = "I"  # type: ignore[attr-defined]
    with Object.open(FIXTURES / "global_data.bpf.o") as obj:
        m3 = next(iter(obj.maps.values()))
        with pytest.raises(UnknownAttributeError, match="did you mean 'initial_value'"):
            m3.inital_value = b""  # type: ignore[attr-defined]


class Tagged(Map):
    """A subclass whose __init__ sets attributes of its own."""

    def __init__(self, *args: Any, tag: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tag = tag
        self.hits = 0


class Plain(Map):
    pass


@pytest.fixture
def tagged() -> Iterator[Tagged]:
    yield Tagged("t", MT.BPF_MAP_TYPE_HASH, 4, 4, 1, tag="x")


def test_subclasses_keep_their_own_attributes(tagged: Tagged) -> None:
    assert tagged.tag == "x"
    tagged.hits += 1
    tagged.tag = "y"
    with pytest.raises(UnknownAttributeError, match="did you mean 'hits'"):
        tagged.hit = 2  # type: ignore[attr-defined]
    p = Plain("p", MT.BPF_MAP_TYPE_HASH, 4, 4, 1)
    with pytest.raises(UnknownAttributeError):
        p.flag = 1  # type: ignore[attr-defined]

@kernel
def test_subclass_create_and_open() -> None:
    with Plain.create(MT.BPF_MAP_TYPE_HASH, 4, 4, 1, name="pc") as p:
        assert type(p) is Plain
        with Tagged.from_fd(p.fd, tag="dup") as t:
            assert t.tag == "dup" and t.max_entries == 1
            t[1] = 2
            assert p[1] == t[1]
            with pytest.raises(UnknownAttributeError):
                t.tga = "x"  # type: ignore[attr-defined]


def test_libbpf_setters_still_work() -> None:
    m = Map("lb", MT.BPF_MAP_TYPE_HASH, 4, 8, 16)
    assert L.bpf_map__set_max_entries(m, 64) == 0
    assert L.bpf_map__set_value_size(m, 16) == 0
    assert L.bpf_map__set_map_flags(m, 1) == 0
    assert L.bpf_map__set_autocreate(m, False) == 0
    assert (m.max_entries, m.value_size, m.flags, m.autocreate) == (64, 16, 1, False)
