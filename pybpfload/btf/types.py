"""The BTF type model: one small immutable record class per kind.

Types refer to other types by id; resolve them through the owning
:class:`pybpfload.btf.Spec` (``spec.type(t.type)``).  Type id 0 is ``void``.

The records behave as frozen dataclasses did (field-wise ``==`` between
instances of one class, ``hash``, ``repr``, positional and keyword
construction, assignment refused) but are plain classes with ``__slots__``:
defining 25 dataclasses cost ~30 ms of every process's start-up.  Copy one
with a change with :func:`replace` (what ``dataclasses.replace`` did).
"""

from __future__ import annotations

from typing import ClassVar, Tuple

from ..abi.intenum import IntEnum
from ..abi.record import FrozenInstanceError as FrozenInstanceError  # re-exported
from ..abi.record import Record, _set
from ..abi.record import replace as replace  # re-exported


class Kind(IntEnum):
    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


# INT encoding bits
INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4

# FUNC linkage / VAR linkage
LINKAGE_STATIC = 0
LINKAGE_GLOBAL = 1
LINKAGE_EXTERN = 2



class Type(Record):
    __slots__ = ("id", "name")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name")
    id: int
    name: str
    kind = Kind.UNKN

    def __init__(self, id: int, name: str) -> None:
        _set(self, "id", id)
        _set(self, "name", name)


class Void(Type):
    __slots__ = ()
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name")
    kind = Kind.UNKN

    def __init__(self, id: int, name: str) -> None:
        _set(self, "id", id)
        _set(self, "name", name)


class Int(Type):
    __slots__ = ("size", "encoding", "offset", "bits")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "size", "encoding", "offset", "bits")
    size: int
    encoding: int
    offset: int
    bits: int
    kind = Kind.INT

    def __init__(self, id: int, name: str, size: int, encoding: int, offset: int, bits: int) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "encoding", encoding)
        _set(self, "offset", offset)
        _set(self, "bits", bits)

    @property
    def signed(self) -> bool:
        return bool(self.encoding & INT_SIGNED)


class Pointer(Type):
    __slots__ = ("type",)
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "type")
    type: int
    kind = Kind.PTR

    def __init__(self, id: int, name: str, type: int) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "type", type)


class Array(Type):
    __slots__ = ("type", "index_type", "nelems")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "type", "index_type", "nelems")
    type: int
    index_type: int
    nelems: int
    kind = Kind.ARRAY

    def __init__(self, id: int, name: str, type: int, index_type: int, nelems: int) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "type", type)
        _set(self, "index_type", index_type)
        _set(self, "nelems", nelems)


class Member(Record):
    __slots__ = ("name", "type", "bit_offset", "bitfield_size")
    _fields: ClassVar[Tuple[str, ...]] = ("name", "type", "bit_offset", "bitfield_size")
    name: str
    type: int
    bit_offset: int
    bitfield_size: int  # 0 when not a bitfield

    def __init__(self, name: str, type: int, bit_offset: int, bitfield_size: int) -> None:
        _set(self, "name", name)
        _set(self, "type", type)
        _set(self, "bit_offset", bit_offset)
        _set(self, "bitfield_size", bitfield_size)


class Struct(Type):
    __slots__ = ("size", "members", "kflag")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "size", "members", "kflag")
    size: int
    members: Tuple[Member, ...]
    kflag: bool  # kind_flag: member offsets carry a bitfield size; set when any member is a bitfield
    kind = Kind.STRUCT

    def __init__(self, id: int, name: str, size: int, members: Tuple[Member, ...], kflag: bool = False) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "members", members)
        _set(self, "kflag", kflag)


class Union(Type):
    __slots__ = ("size", "members", "kflag")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "size", "members", "kflag")
    size: int
    members: Tuple[Member, ...]
    kflag: bool
    kind = Kind.UNION

    def __init__(self, id: int, name: str, size: int, members: Tuple[Member, ...], kflag: bool = False) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "members", members)
        _set(self, "kflag", kflag)


class EnumValue(Record):
    __slots__ = ("name", "value")
    _fields: ClassVar[Tuple[str, ...]] = ("name", "value")
    name: str
    value: int

    def __init__(self, name: str, value: int) -> None:
        _set(self, "name", name)
        _set(self, "value", value)


class Enum(Type):
    __slots__ = ("size", "values", "signed")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "size", "values", "signed")
    size: int
    values: Tuple[EnumValue, ...]
    signed: bool
    kind = Kind.ENUM

    def __init__(self, id: int, name: str, size: int, values: Tuple[EnumValue, ...], signed: bool) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "values", values)
        _set(self, "signed", signed)


class Enum64(Type):
    __slots__ = ("size", "values", "signed")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "size", "values", "signed")
    size: int
    values: Tuple[EnumValue, ...]
    signed: bool
    kind = Kind.ENUM64

    def __init__(self, id: int, name: str, size: int, values: Tuple[EnumValue, ...], signed: bool) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "values", values)
        _set(self, "signed", signed)


class Fwd(Type):
    __slots__ = ("is_union",)
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "is_union")
    is_union: bool
    kind = Kind.FWD

    def __init__(self, id: int, name: str, is_union: bool) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "is_union", is_union)


class Typedef(Type):
    __slots__ = ("type",)
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "type")
    type: int
    kind = Kind.TYPEDEF

    def __init__(self, id: int, name: str, type: int) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "type", type)


class Volatile(Type):
    __slots__ = ("type",)
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "type")
    type: int
    kind = Kind.VOLATILE

    def __init__(self, id: int, name: str, type: int) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "type", type)


class Const(Type):
    __slots__ = ("type",)
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "type")
    type: int
    kind = Kind.CONST

    def __init__(self, id: int, name: str, type: int) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "type", type)


class Restrict(Type):
    __slots__ = ("type",)
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "type")
    type: int
    kind = Kind.RESTRICT

    def __init__(self, id: int, name: str, type: int) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "type", type)


class TypeTag(Type):
    __slots__ = ("type", "kflag")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "type", "kflag")
    type: int
    kflag: bool  # the tag is an __attribute__ rather than btf_type_tag
    kind = Kind.TYPE_TAG

    def __init__(self, id: int, name: str, type: int, kflag: bool = False) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "type", type)
        _set(self, "kflag", kflag)


class Func(Type):
    __slots__ = ("type", "linkage")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "type", "linkage")
    type: int
    linkage: int
    kind = Kind.FUNC

    def __init__(self, id: int, name: str, type: int, linkage: int) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "type", type)
        _set(self, "linkage", linkage)


class Param(Record):
    __slots__ = ("name", "type")
    _fields: ClassVar[Tuple[str, ...]] = ("name", "type")
    name: str
    type: int

    def __init__(self, name: str, type: int) -> None:
        _set(self, "name", name)
        _set(self, "type", type)


class FuncProto(Type):
    __slots__ = ("return_type", "params")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "return_type", "params")
    return_type: int
    params: Tuple[Param, ...]
    kind = Kind.FUNC_PROTO

    def __init__(self, id: int, name: str, return_type: int, params: Tuple[Param, ...]) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "return_type", return_type)
        _set(self, "params", params)


class Var(Type):
    __slots__ = ("type", "linkage")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "type", "linkage")
    type: int
    linkage: int
    kind = Kind.VAR

    def __init__(self, id: int, name: str, type: int, linkage: int) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "type", type)
        _set(self, "linkage", linkage)


class VarSecinfo(Record):
    __slots__ = ("type", "offset", "size")
    _fields: ClassVar[Tuple[str, ...]] = ("type", "offset", "size")
    type: int
    offset: int
    size: int

    def __init__(self, type: int, offset: int, size: int) -> None:
        _set(self, "type", type)
        _set(self, "offset", offset)
        _set(self, "size", size)


class Datasec(Type):
    __slots__ = ("size", "vars")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "size", "vars")
    size: int
    vars: Tuple[VarSecinfo, ...]
    kind = Kind.DATASEC

    def __init__(self, id: int, name: str, size: int, vars: Tuple[VarSecinfo, ...]) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "vars", vars)


class Float(Type):
    __slots__ = ("size",)
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "size")
    size: int
    kind = Kind.FLOAT

    def __init__(self, id: int, name: str, size: int) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "size", size)


class DeclTag(Type):
    __slots__ = ("type", "component_idx", "kflag")
    _fields: ClassVar[Tuple[str, ...]] = ("id", "name", "type", "component_idx", "kflag")
    type: int
    component_idx: int  # -1: the type itself; else the member or parameter index
    kflag: bool  # the tag is an __attribute__ rather than btf_decl_tag
    kind = Kind.DECL_TAG

    def __init__(self, id: int, name: str, type: int, component_idx: int, kflag: bool = False) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "type", type)
        _set(self, "component_idx", component_idx)
        _set(self, "kflag", kflag)


MODIFIERS = (Typedef, Volatile, Const, Restrict, TypeTag)
QUALIFIERS = (Volatile, Const, Restrict, TypeTag)
COMPOSITES = (Struct, Union)
ENUMS = (Enum, Enum64)

# The Python class of each kind.
CLASSES = {
    Kind.INT: Int,
    Kind.PTR: Pointer,
    Kind.ARRAY: Array,
    Kind.STRUCT: Struct,
    Kind.UNION: Union,
    Kind.ENUM: Enum,
    Kind.FWD: Fwd,
    Kind.TYPEDEF: Typedef,
    Kind.VOLATILE: Volatile,
    Kind.CONST: Const,
    Kind.RESTRICT: Restrict,
    Kind.FUNC: Func,
    Kind.FUNC_PROTO: FuncProto,
    Kind.VAR: Var,
    Kind.DATASEC: Datasec,
    Kind.FLOAT: Float,
    Kind.DECL_TAG: DeclTag,
    Kind.TYPE_TAG: TypeTag,
    Kind.ENUM64: Enum64,
}
