"""Misspelt attributes and unknown names are refused with errors that say what
there is (issue 15 items 7, 9, 12)."""

from __future__ import annotations

import pytest

from pybpfload import Object
from pybpfload.errors import BPFError, StateError, UnknownAttributeError, UnknownNameError
from pybpfload.link import Link

from .conftest import fixture_path


@pytest.fixture
def obj() -> Object:
    with Object.open(fixture_path("global_data.bpf.o")) as o:
        yield o


def test_program_rejects_misspelt_attribute(obj: Object) -> None:
    prog = obj.programs["use_globals"]
    with pytest.raises(UnknownAttributeError, match=r"program 'use_globals' has no attribute 'auto_load'; did you mean 'autoload'\?"):
        prog.auto_load = False
    assert isinstance(UnknownAttributeError("x"), AttributeError) and isinstance(UnknownAttributeError("x"), BPFError)
    assert not hasattr(prog, "auto_load") and prog.autoload
    prog.autoload = False  # real names still work, and so do private ones
    prog._scratch = 1
    assert not prog.autoload


def test_object_rejects_misspelt_attribute(obj: Object) -> None:
    with pytest.raises(UnknownAttributeError, match="'kernel_log_lvl'.*kernel_log_level"):
        obj.kernel_log_lvl = 2
    obj.kernel_log_level = 2
    obj.kversion = 5  # a property with a setter
    assert obj.kversion == 5


def test_link_rejects_misspelt_attribute() -> None:
    link = Link(None, kind="test", target="nowhere")
    with pytest.raises(UnknownAttributeError, match="link"):
        link.taget = "x"
    link.close()


def test_internal_maps_by_section(obj: Object) -> None:
    ro = obj.maps[".rodata"]
    assert ro is obj.maps[f"{obj.name[:8]}.rodata"] and ".rodata" in obj.maps
    assert obj.find_map_by_name(".bss") is obj.maps[f"{obj.name[:8]}.bss"]
    assert obj.maps[".rodata.custom"].name == ".rodata.custom"
    assert len(list(obj.maps)) == len(obj.maps) == len(set(obj.maps))  # each map once, by name


def test_unknown_names_list_what_there_is(obj: Object) -> None:
    with pytest.raises(KeyError) as ei:
        obj.maps["rodta"]
    e = ei.value
    assert isinstance(e, UnknownNameError) and isinstance(e, BPFError)
    text = str(e)
    assert "no map 'rodta'" in text and "did you mean '.rodata'" in text
    assert all(repr(n) in text for n in obj.maps)
    with pytest.raises(UnknownNameError, match="no program 'nope'.*'use_globals'"):
        obj.programs["nope"]
    assert obj.maps.get("rodta") is None and "rodta" not in obj.maps


def test_spec_fields_still_frozen_after_load_message() -> None:
    """The older rule (no definition change after load) is kept alongside."""
    from pybpfload import ProgType
    from pybpfload.kernel.program import Program

    p = Program("p", ProgType.BPF_PROG_TYPE_XDP, b"")
    with pytest.raises(UnknownAttributeError):
        p.kern_versoin = 1
    assert not isinstance(StateError("x"), AttributeError)
