"""The BTF type model: one small frozen dataclass per kind.

Types refer to other types by id; resolve them through the owning
:class:`pybpfload.btf.Spec` (``spec.type(t.type)``).  Type id 0 is ``void``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Tuple


class Kind(enum.IntEnum):
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


@dataclass(frozen=True)
class Type:
    id: int
    name: str

    kind = Kind.UNKN


@dataclass(frozen=True)
class Void(Type):
    kind = Kind.UNKN


@dataclass(frozen=True)
class Int(Type):
    size: int
    encoding: int
    offset: int
    bits: int

    kind = Kind.INT

    @property
    def signed(self) -> bool:
        return bool(self.encoding & INT_SIGNED)


@dataclass(frozen=True)
class Pointer(Type):
    type: int
    kind = Kind.PTR


@dataclass(frozen=True)
class Array(Type):
    type: int
    index_type: int
    nelems: int
    kind = Kind.ARRAY


@dataclass(frozen=True)
class Member:
    name: str
    type: int
    bit_offset: int
    bitfield_size: int  # 0 when not a bitfield


@dataclass(frozen=True)
class Struct(Type):
    size: int
    members: Tuple[Member, ...]
    # kind_flag: member offsets carry a bitfield size; set when any member is a bitfield
    kflag: bool = False
    kind = Kind.STRUCT


@dataclass(frozen=True)
class Union(Type):
    size: int
    members: Tuple[Member, ...]
    kflag: bool = False
    kind = Kind.UNION


@dataclass(frozen=True)
class EnumValue:
    name: str
    value: int


@dataclass(frozen=True)
class Enum(Type):
    size: int
    values: Tuple[EnumValue, ...]
    signed: bool
    kind = Kind.ENUM


@dataclass(frozen=True)
class Enum64(Type):
    size: int
    values: Tuple[EnumValue, ...]
    signed: bool
    kind = Kind.ENUM64


@dataclass(frozen=True)
class Fwd(Type):
    is_union: bool
    kind = Kind.FWD


@dataclass(frozen=True)
class Typedef(Type):
    type: int
    kind = Kind.TYPEDEF


@dataclass(frozen=True)
class Volatile(Type):
    type: int
    kind = Kind.VOLATILE


@dataclass(frozen=True)
class Const(Type):
    type: int
    kind = Kind.CONST


@dataclass(frozen=True)
class Restrict(Type):
    type: int
    kind = Kind.RESTRICT


@dataclass(frozen=True)
class TypeTag(Type):
    type: int
    kflag: bool = False  # the tag is an __attribute__ rather than btf_type_tag
    kind = Kind.TYPE_TAG


@dataclass(frozen=True)
class Func(Type):
    type: int
    linkage: int
    kind = Kind.FUNC


@dataclass(frozen=True)
class Param:
    name: str
    type: int


@dataclass(frozen=True)
class FuncProto(Type):
    return_type: int
    params: Tuple[Param, ...]
    kind = Kind.FUNC_PROTO


@dataclass(frozen=True)
class Var(Type):
    type: int
    linkage: int
    kind = Kind.VAR


@dataclass(frozen=True)
class VarSecinfo:
    type: int
    offset: int
    size: int


@dataclass(frozen=True)
class Datasec(Type):
    size: int
    vars: Tuple[VarSecinfo, ...]
    kind = Kind.DATASEC


@dataclass(frozen=True)
class Float(Type):
    size: int
    kind = Kind.FLOAT


@dataclass(frozen=True)
class DeclTag(Type):
    type: int
    component_idx: int  # -1: the type itself; else the member or parameter index
    kflag: bool = False  # the tag is an __attribute__ rather than btf_decl_tag
    kind = Kind.DECL_TAG


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
