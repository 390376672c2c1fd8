"""struct_ops maps against the kernel's BTF (pure: BTF in, plan out, no syscalls).

What libbpf does at load in bpf_map__init_kern_struct_ops and
bpf_object_adjust_struct_ops_autoload: for each struct_ops map to create,
find ``struct <name>`` (flavour suffix ``___x`` stripped) and its value type
``struct bpf_struct_ops_<name>`` in vmlinux or a module, map the object's
members to the kernel's by name, copy data members into the kernel value
layout and note where each program's fd goes; each program gets the kernel
struct's type id as attach_btf_id and the kernel member's index as
expected_attach_type.  Errors carry libbpf's messages.
"""

from __future__ import annotations

import errno
import sys
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..abi.record import Record, _set
from ..btf import Spec
from ..btf import types as T
from ..errors import BPFError, StructOpsError
from ..log import debug, info

__all__ = [
    "STRUCT_OPS_VALUE_PREFIX",
    "KernTypes",
    "KernStructOps",
    "ProgAttach",
    "Plan",
    "MapInput",
    "essential_name",
    "find_kern_types",
    "plan_struct_ops",
    "fill_prog_fds",
]

STRUCT_OPS_VALUE_PREFIX = "bpf_struct_ops_"

KernelBtfs = Callable[[], Iterable[Tuple[str, Spec]]]


class KernTypes(Record):
    __slots__ = _fields = ("btf_name", "btf", "type_id", "vtype_id", "data_offset")
    btf_name: str  # "vmlinux" or the module's name
    btf: Spec
    type_id: int  # struct <name>
    vtype_id: int  # struct bpf_struct_ops_<name>
    data_offset: int  # byte offset of the <name> member in the value type

    def __init__(self, btf_name: str, btf: Spec, type_id: int, vtype_id: int, data_offset: int) -> None:
        _set(self, "btf_name", btf_name)
        _set(self, "btf", btf)
        _set(self, "type_id", type_id)
        _set(self, "vtype_id", vtype_id)
        _set(self, "data_offset", data_offset)


class KernStructOps(Record):
    """One struct_ops map as the kernel will take it."""

    __slots__ = _fields = ("map_name", "btf_name", "kern_type_id", "kern_vtype_id", "value", "prog_slots")
    map_name: str
    btf_name: str  # where the kernel types are: "vmlinux" or a module
    kern_type_id: int
    kern_vtype_id: int
    value: bytes  # the kernel's value type, data members copied, program slots zero
    prog_slots: Tuple[Tuple[str, int], ...]  # (program, byte offset of its fd in value)

    def __init__(
        self,
        map_name: str,
        btf_name: str,
        kern_type_id: int,
        kern_vtype_id: int,
        value: bytes,
        prog_slots: Tuple[Tuple[str, int], ...],
    ) -> None:
        _set(self, "map_name", map_name)
        _set(self, "btf_name", btf_name)
        _set(self, "kern_type_id", kern_type_id)
        _set(self, "kern_vtype_id", kern_vtype_id)
        _set(self, "value", value)
        _set(self, "prog_slots", prog_slots)


class ProgAttach(Record):
    __slots__ = _fields = ("btf_name", "attach_btf_id", "member_idx")
    btf_name: str
    attach_btf_id: int  # the kernel struct
    member_idx: int  # expected_attach_type

    def __init__(self, btf_name: str, attach_btf_id: int, member_idx: int) -> None:
        _set(self, "btf_name", btf_name)
        _set(self, "attach_btf_id", attach_btf_id)
        _set(self, "member_idx", member_idx)


class Plan(Record):
    __slots__ = _fields = ("maps", "progs", "autoload")
    maps: Dict[str, KernStructOps]
    progs: Dict[str, ProgAttach]
    autoload: Dict[str, bool]  # struct_ops programs referenced by some map: load or not

    def __init__(self, maps: Dict[str, KernStructOps], progs: Dict[str, ProgAttach], autoload: Dict[str, bool]) -> None:
        _set(self, "maps", maps)
        _set(self, "progs", progs)
        _set(self, "autoload", autoload)


def essential_name(name: str) -> str:
    """The name without a ``___flavour`` suffix (bpf_core_essential_name_len)."""
    i = name.rfind("___")
    return name[:i] if i > 0 else name


def _skip(btf: Spec, tid: int) -> Tuple[int, T.Type]:
    from ..elf.btfutil import skip_mods

    return skip_mods(btf, tid)


def _size(btf: Spec, tid: int) -> int:
    from ..elf.btfutil import resolve_size

    return resolve_size(btf, tid)


def _find_struct(btf: Spec, name: str, own_only: bool) -> int:
    first = getattr(btf, "first_id", 1) if own_only else 1
    for tid in sorted(btf.find_ids(name)):
        if tid >= first and btf.kind_of(tid) == T.Kind.STRUCT:
            return tid
    return -1


def find_kern_types(type_name: str, kernel_btfs: KernelBtfs) -> KernTypes:
    """The kernel's struct and struct_ops value type for the object's ``type_name`` (find_struct_ops_kern_types)."""
    tname = essential_name(type_name)
    stname = STRUCT_OPS_VALUE_PREFIX + tname
    # the value type decides which BTF: vmlinux first, then each module's own types (find_ksym_btf_id)
    for btf_name, btf in kernel_btfs():
        vtid = _find_struct(btf, stname, own_only=btf_name != "vmlinux")
        if vtid > 0:
            break
    else:
        raise StructOpsError(f"struct_ops init_kern: struct {stname} is not found in kernel BTF", errno.ENOENT)
    tid = _find_struct(btf, tname, own_only=False)
    if tid < 0:
        raise StructOpsError(f"struct_ops init_kern: struct {tname} is not found in kernel BTF", errno.ENOENT)
    vtype = btf.type(vtid)
    assert isinstance(vtype, T.Struct)
    for m in vtype.members:
        if m.type == tid:
            return KernTypes(btf_name, btf, tid, vtid, m.bit_offset // 8)
    raise StructOpsError(f"struct_ops init_kern: struct {tname} data is not found in struct {stname}", errno.EINVAL)


def _init_kern(
    map_name: str,
    obj_btf: Spec,
    type_id: int,
    data: bytes,
    programs: Sequence[Optional[str]],
    kt: KernTypes,
    prog_attach: Dict[str, ProgAttach],
    is_struct_ops_prog: Callable[[str], bool],
) -> KernStructOps:
    st = obj_btf.type(type_id)
    assert isinstance(st, T.Struct)
    kbtf = kt.btf
    ktype = kbtf.type(kt.type_id)
    assert isinstance(ktype, T.Struct)
    vtype = kbtf.type(kt.vtype_id)
    assert isinstance(vtype, T.Struct)
    value = bytearray(vtype.size)
    kmembers = {m.name: (i, m) for i, m in reversed(list(enumerate(ktype.members)))}  # first of a name wins
    slots: List[Tuple[str, int]] = []
    for i, m in enumerate(st.members):
        moff = m.bit_offset // 8
        try:
            msize = _size(obj_btf, m.type)
        except BPFError as e:
            raise StructOpsError(f"struct_ops init_kern {map_name}: failed to resolve the size of member {m.name}") from e
        mdata = data[moff : moff + msize]
        prog = programs[i] if i < len(programs) else None
        km = kmembers.get(m.name)
        if km is None:
            # a program in a function pointer makes the member non-zero, as libbpf's shadow pointer does
            if any(mdata) or prog is not None:
                raise StructOpsError(f"struct_ops init_kern {map_name}: Cannot find member {m.name} in kernel BTF")
            info("struct_ops %s: member %s not found in kernel, skipping it as it's set to zero", map_name, m.name)
            continue
        kidx, kmember = km
        if m.bitfield_size or kmember.bitfield_size:
            raise StructOpsError(f"struct_ops init_kern {map_name}: bitfield {m.name} is not supported")
        kmoff = kmember.bit_offset // 8
        _, mtype = _skip(obj_btf, m.type)
        kmtid, kmtype = _skip(kbtf, kmember.type)
        if mtype.kind != kmtype.kind:
            raise StructOpsError(
                f"struct_ops init_kern {map_name}: Unmatched member type {m.name} {int(mtype.kind)} != {int(kmtype.kind)}(kernel)"
            )
        if isinstance(mtype, T.Pointer):
            if prog is None:
                continue
            if not is_struct_ops_prog(prog):
                raise StructOpsError(f"struct_ops init_kern {map_name}: member {m.name} is not a struct_ops program")
            _, kproto = _skip(kbtf, kmtype.type) if isinstance(kmtype, T.Pointer) else (0, kmtype)
            if not isinstance(kproto, T.FuncProto):
                raise StructOpsError(f"struct_ops init_kern {map_name}: kernel member {m.name} is not a func ptr")
            want = ProgAttach(kt.btf_name, kt.type_id, kidx)
            have = prog_attach.setdefault(prog, want)
            if have.attach_btf_id != want.attach_btf_id or have.btf_name != want.btf_name:
                raise StructOpsError(
                    f"struct_ops init_kern {map_name} func ptr {m.name}: invalid reuse of prog {prog}: "
                    f"attach_btf_id {have.attach_btf_id} != kern_type_id {kt.type_id}",
                    errno.EINVAL,
                )
            if have.member_idx != kidx:
                raise StructOpsError(
                    f"struct_ops init_kern {map_name} func ptr {m.name}: invalid reuse of prog {prog}: "
                    f"expected_attach_type {have.member_idx} != kern_member_idx {kidx}",
                    errno.EINVAL,
                )
            slots.append((prog, kt.data_offset + kmoff))
            debug(
                "struct_ops init_kern %s: func ptr %s is set to prog %s from data(+%d) to kern_data(+%d)",
                map_name,
                m.name,
                prog,
                moff,
                kmoff,
            )
            continue
        try:
            kmsize = _size(kbtf, kmtid)
        except BPFError:
            kmsize = -1
        if kmsize != msize:
            raise StructOpsError(
                f"struct_ops init_kern {map_name}: Error in size of member {m.name}: {msize} != {kmsize}(kernel)"
            )
        off = kt.data_offset + kmoff
        value[off : off + msize] = mdata
    return KernStructOps(map_name, kt.btf_name, kt.type_id, kt.vtype_id, bytes(value), tuple(slots))


class MapInput(Record):
    """A struct_ops map as the loader hands it over: the object's declaration and the user's current data."""

    __slots__ = _fields = ("name", "type_name", "type_id", "data", "programs", "autocreate")
    name: str
    type_name: str
    type_id: int
    data: bytes
    programs: Tuple[Optional[str], ...]
    autocreate: bool

    def __init__(
        self,
        name: str,
        type_name: str,
        type_id: int,
        data: bytes,
        programs: Tuple[Optional[str], ...],
        autocreate: bool,
    ) -> None:
        _set(self, "name", name)
        _set(self, "type_name", type_name)
        _set(self, "type_id", type_id)
        _set(self, "data", data)
        _set(self, "programs", programs)
        _set(self, "autocreate", autocreate)


def plan_struct_ops(
    maps: Sequence[MapInput],
    obj_btf: Spec,
    kernel_btfs: KernelBtfs,
    struct_ops_progs: Iterable[str],
) -> Plan:
    """Every struct_ops map to create, checked against the kernel's BTF; the programs' attach ids and autoload.

    ``struct_ops_progs`` names the object's programs of type STRUCT_OPS.
    Maps with autocreate off are skipped.  A program is autoloaded when
    at least one map that will be created refers to it, and not when only
    maps that won't do; programs no map refers to keep their autoload
    (libbpf then refuses to load them).
    """
    progs = set(struct_ops_progs)
    out: Dict[str, KernStructOps] = {}
    attach: Dict[str, ProgAttach] = {}
    cache: Dict[str, KernTypes] = {}
    for m in maps:
        if not m.autocreate:
            continue
        kt = cache.get(m.type_name)
        if kt is None:
            kt = cache[m.type_name] = find_kern_types(m.type_name, kernel_btfs)
        debug("struct_ops init_kern %s: type_id:%d kern_type_id:%d kern_vtype_id:%d", m.name, m.type_id, kt.type_id, kt.vtype_id)
        out[m.name] = _init_kern(m.name, obj_btf, m.type_id, m.data, m.programs, kt, attach, progs.__contains__)
    autoload: Dict[str, bool] = {}
    for m in maps:
        created = m.name in out
        for p in m.programs:
            if p is None or p not in progs:
                continue
            used = created and any(q == p for q, _ in out[m.name].prog_slots)
            autoload[p] = autoload.get(p, False) or used
    return Plan(out, attach, autoload)


def fill_prog_fds(ks: KernStructOps, fds: Mapping[str, int]) -> bytes:
    """The map value with each program's fd in its slot (libbpf's bpf_map_prepare_vdata)."""
    value = bytearray(ks.value)
    for prog, off in ks.prog_slots:
        value[off : off + 8] = fds[prog].to_bytes(8, sys.byteorder)  # an unsigned long
    return bytes(value)
