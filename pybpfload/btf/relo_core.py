"""The CO-RE relocation engine: libbpf's relo_core semantics, pure.

One relocation is computed in three steps, as libbpf does:

1. :func:`parse_spec` turns a ``.BTF.ext`` record (root type, access string,
   kind) into a :class:`CoreSpec` over the object's own BTF;
2. :class:`Candidates` lists the target types whose *essential* name (the
   name without a ``___flavour`` suffix) equals the local type's, and
   :func:`calc_relo_insn` matches the local spec against each of them,
   producing a :class:`CoreResult` (original and new value, or a poison
   decision) that every matching candidate must agree on;
3. :func:`patch_insn` applies a result to instruction bytes: ALU/ALU64
   immediates, LDX/ST/STX offsets (and the load/store size when the
   target field's size differs), LD_IMM64 values, or libbpf's poison
   ``call 0xbad2310`` for relocations that cannot be resolved.

Nothing here makes a system call.  Candidate search never decodes a whole
BTF: names are found by scanning the string section and then the type
section for the name's offset, and results are cached per target.

Differences from libbpf 1.1 that follow later libbpf: negative access
indices are refused, FIELD_SIGNED on a non-integer field is 0 (libbpf 1.1
read the integer encoding of whatever type it was), and the memory size of
an array field is that of its element.
"""

from __future__ import annotations

import re
import struct
import _thread  # allocate_lock is threading.Lock, without importing threading (~1 ms)
import weakref
from typing import Callable, Dict, Iterable, List, MutableSequence, Optional, Sequence, Set, Tuple, Union

from ..abi.record import Record, _set, replace
from ..errors import BTFError, RelocationError
from . import types as T
from .ext import CoreRelo, CoreReloKind
from .query import describe, sizeof
from .spec import Spec

__all__ = [
    "POISON_IMM",
    "SPEC_MAX_LEN",
    "Accessor",
    "CoreSpec",
    "Candidate",
    "Candidates",
    "CoreResult",
    "essential_name",
    "parse_spec",
    "types_are_compat",
    "fields_are_compat",
    "types_match",
    "spec_match",
    "calc_relo_insn",
    "patch_insn",
    "kind_str",
]

POISON_IMM = 195896080  # 0xbad2310, "bad relo": the verifier says "invalid func unknown#195896080"
SPEC_MAX_LEN = 64  # BPF_CORE_SPEC_MAX_LEN
MAX_DEPTH = 32
_U64 = (1 << 64) - 1
_INSN = struct.Struct("<BBhi")

K = CoreReloKind
_FIELD_KINDS = frozenset(
    {K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_EXISTS, K.FIELD_SIGNED, K.FIELD_LSHIFT_U64, K.FIELD_RSHIFT_U64}
)
_TYPE_KINDS = frozenset({K.TYPE_ID_LOCAL, K.TYPE_ID_TARGET, K.TYPE_EXISTS, K.TYPE_MATCHES, K.TYPE_SIZE})
_ENUMVAL_KINDS = frozenset({K.ENUMVAL_EXISTS, K.ENUMVAL_VALUE})
_KIND_STR = {
    K.FIELD_BYTE_OFFSET: "byte_off",
    K.FIELD_BYTE_SIZE: "byte_sz",
    K.FIELD_EXISTS: "field_exists",
    K.FIELD_SIGNED: "signed",
    K.FIELD_LSHIFT_U64: "lshift_u64",
    K.FIELD_RSHIFT_U64: "rshift_u64",
    K.TYPE_ID_LOCAL: "local_type_id",
    K.TYPE_ID_TARGET: "target_type_id",
    K.TYPE_EXISTS: "type_exists",
    K.TYPE_MATCHES: "type_matches",
    K.TYPE_SIZE: "type_size",
    K.ENUMVAL_EXISTS: "enumval_exists",
    K.ENUMVAL_VALUE: "enumval_value",
}


def kind_str(kind: CoreReloKind) -> str:
    """libbpf's short name of a relocation kind (``byte_off``, ``type_exists``...)."""
    return _KIND_STR.get(kind, "unknown")


def is_field_based(kind: CoreReloKind) -> bool:
    return kind in _FIELD_KINDS


def is_type_based(kind: CoreReloKind) -> bool:
    return kind in _TYPE_KINDS


def is_enumval_based(kind: CoreReloKind) -> bool:
    return kind in _ENUMVAL_KINDS


class _Fail(Exception):
    """An error that makes the whole relocation fail (libbpf's negative return)."""


# ---------------------------------------------------------------- names
def _is_flavor_sep(name: str, i: int) -> bool:
    return name[i] != "_" and name[i + 1 : i + 4] == "___" and name[i + 4] != "_"


def essential_name(name: str) -> str:
    """``name`` without its ``___flavour`` suffix (after the last ``X___Y`` separator)."""
    for i in range(len(name) - 5, -1, -1):
        if _is_flavor_sep(name, i):
            return name[: i + 1]
    return name


# ---------------------------------------------------------------- type helpers
def _skip(btf: Spec, tid: int) -> Tuple[int, T.Type]:
    """(id, type) behind typedefs and modifiers (skip_mods_and_typedefs)."""
    for _ in range(MAX_DEPTH):
        t = btf.type(tid)
        if not isinstance(t, T.MODIFIERS):
            return tid, t
        tid = t.type
    raise _Fail(f"type [{tid}]: modifier chain too long")


def _kind(t: T.Type) -> int:
    return int(t.kind)


def _is_enum(t: T.Type) -> bool:
    return isinstance(t, T.ENUMS)


def _kind_core_compat(a: T.Type, b: T.Type) -> bool:
    return a.kind == b.kind or (_is_enum(a) and _is_enum(b))


def _kind_core_compat_k(a: int, b: int) -> bool:
    enums = (int(T.Kind.ENUM), int(T.Kind.ENUM64))
    return a == b or (a in enums and b in enums)


def _vlen(t: T.Type) -> int:
    if isinstance(t, T.COMPOSITES):
        return len(t.members)
    if isinstance(t, T.ENUMS):
        return len(t.values)
    if isinstance(t, T.FuncProto):
        return len(t.params)
    return 0


def _size(btf: Spec, tid: int) -> int:
    try:
        return sizeof(btf, tid)
    except BTFError as e:
        raise _Fail(str(e)) from None


def _enum_raw_value(t: T.Type, idx: int) -> int:
    """The value libbpf reads: ENUM's 32-bit value sign-extended, ENUM64's as unsigned 64-bit."""
    assert isinstance(t, T.ENUMS)
    v = t.values[idx].value
    if isinstance(t, T.Enum):
        v &= 0xFFFFFFFF
        if v >= 1 << 31:
            v -= 1 << 32
    return v & _U64


# ---------------------------------------------------------------- specs
class Accessor(Record):
    """One high-level step of an access: a named member, or an array index (name None)."""

    __slots__ = _fields = ("type_id", "idx", "name")
    type_id: int
    idx: int
    name: Optional[str]

    def __init__(self, type_id: int, idx: int, name: Optional[str]) -> None:
        _set(self, "type_id", type_id)
        _set(self, "idx", idx)
        _set(self, "name", name)


class CoreSpec(Record):
    """A parsed (local) or matched (target) access: libbpf's struct bpf_core_spec."""

    __slots__ = _fields = ("btf", "root_type_id", "kind", "raw", "accessors", "bit_offset")
    _compare = ("root_type_id", "kind", "raw", "accessors", "bit_offset")
    _no_repr = ("btf",)
    btf: Spec
    root_type_id: int
    kind: CoreReloKind
    raw: Tuple[int, ...]  # the low-level access, one index per step (anonymous members included)
    accessors: Tuple[Accessor, ...]  # the high-level access: named members and array indices
    bit_offset: int

    def __init__(
        self,
        btf: Spec,
        root_type_id: int,
        kind: CoreReloKind,
        raw: Tuple[int, ...] = (),
        accessors: Tuple[Accessor, ...] = (),
        bit_offset: int = 0,
    ) -> None:
        _set(self, "btf", btf)
        _set(self, "root_type_id", root_type_id)
        _set(self, "kind", kind)
        _set(self, "raw", raw)
        _set(self, "accessors", accessors)
        _set(self, "bit_offset", bit_offset)

    def format(self) -> str:
        """libbpf's rendering: ``<byte_off> [5] struct s.a[3].b (0:1:3:0 @ offset 16)``."""
        btf = self.btf
        t = btf.type(self.root_type_id)
        name = t.name or "<anon>"
        out = f"<{kind_str(self.kind)}> [{self.root_type_id}] {t.kind.name.lower()} {name}"
        if is_type_based(self.kind):
            return out
        if is_enumval_based(self.kind):
            try:
                _, et = _skip(btf, self.root_type_id)
            except _Fail:
                return out
            if isinstance(et, T.ENUMS) and self.raw and self.raw[0] < len(et.values):
                ev = et.values[self.raw[0]]
                return out + f"::{ev.name} = {ev.value}"
            return out
        for i, acc in enumerate(self.accessors):
            if acc.name:
                out += f".{acc.name}"
            elif i > 0 or acc.idx > 0:
                out += f"[{acc.idx}]"
        raw = ":".join(str(x) for x in self.raw)
        if self.bit_offset % 8:
            return out + f" ({raw} @ offset {self.bit_offset // 8}.{self.bit_offset % 8})"
        return out + f" ({raw} @ offset {self.bit_offset // 8})"

    def c_access(self) -> str:
        """A C-like view of the access, e.g. ``struct task_struct->real_parent->tgid`` parts: ``.a[3].b``."""
        parts = []
        for i, acc in enumerate(self.accessors):
            if acc.name:
                parts.append(f".{acc.name}")
            elif i > 0 or acc.idx > 0:
                parts.append(f"[{acc.idx}]")
        return "".join(parts)


def _parse_access(s: str) -> List[int]:
    if not s or s[0] == ":":
        raise _Fail(f"bad access string {s!r}")
    out: List[int] = []
    for part in s.split(":"):
        m = re.match(r"\s*([+-]?\d+)", part)
        if m is None:
            raise _Fail(f"bad access string {s!r}")
        v = int(m.group(1))
        if v < 0 or v > 0x7FFFFFFF:
            raise _Fail(f"bad access index {v} in {s!r}")
        if len(out) == SPEC_MAX_LEN:
            raise _Fail(f"access string {s!r} too long")
        out.append(v)
    return out


def _is_flex_arr(btf: Spec, parent: Optional[Accessor], arr: T.Array) -> bool:
    """A zero-length array that is the last member of its struct."""
    if parent is None or not parent.name or arr.nelems > 0:
        return False
    return parent.idx == _vlen(btf.type(parent.type_id)) - 1


def parse_spec(btf: Spec, relo: CoreRelo) -> CoreSpec:
    """The local spec of a relocation (bpf_core_parse_spec); RelocationError when malformed."""
    try:
        return _parse_spec(btf, relo)
    except (_Fail, BTFError) as e:
        raise RelocationError(f"bad CO-RE relocation for [{relo.type_id}] + {relo.access!r}: {e}") from None


def _parse_spec(btf: Spec, relo: CoreRelo) -> CoreSpec:
    s = relo.access
    if not s or s[0] == ":":
        raise _Fail(f"bad access string {s!r}")
    kind = relo.kind
    if is_type_based(kind):
        if s != "0":
            raise _Fail(f"type relocation with access string {s!r} (expected '0')")
        return CoreSpec(btf, relo.type_id, kind)
    raw = _parse_access(s)
    tid, t = _skip(btf, relo.type_id)
    acc: List[Accessor] = []
    if is_enumval_based(kind):
        if not isinstance(t, T.ENUMS) or len(raw) > 1 or raw[0] >= len(t.values):
            raise _Fail(f"enum value relocation {s!r} on {describe(btf, relo.type_id)}")
        acc.append(Accessor(tid, raw[0], t.values[raw[0]].name))
        return CoreSpec(btf, relo.type_id, kind, tuple(raw), tuple(acc))
    if not is_field_based(kind):
        raise _Fail(f"unknown relocation kind {kind}")
    acc.append(Accessor(tid, raw[0], None))
    bit = raw[0] * _size(btf, tid) * 8
    for i in range(1, len(raw)):
        tid, t = _skip(btf, tid)
        idx = raw[i]
        if isinstance(t, T.COMPOSITES):
            if idx >= len(t.members):
                raise _Fail(f"member index {idx} out of range for {describe(btf, tid)}")
            m = t.members[idx]
            bit += m.bit_offset
            if m.name:
                acc.append(Accessor(tid, idx, m.name))
            tid = m.type
        elif isinstance(t, T.Array):
            elem, _ = _skip(btf, t.type)
            if not _is_flex_arr(btf, acc[-1] if acc else None, t) and idx >= t.nelems:
                raise _Fail(f"array index {idx} out of range for {describe(btf, tid)}")
            acc.append(Accessor(elem, idx, None))
            bit += idx * _size(btf, elem) * 8
            tid = elem
        else:
            raise _Fail(f"access {s!r} (at idx {i}) captures type [{tid}] of unexpected kind {t.kind.name.lower()}")
    return CoreSpec(btf, relo.type_id, kind, tuple(raw), tuple(acc), bit)


# ---------------------------------------------------------------- compatibility
def types_are_compat(lbtf: Spec, lid: int, tbtf: Spec, tid: int, level: int = MAX_DEPTH) -> bool:
    """libbpf's bpf_core_types_are_compat (type-based relocations); names of roots already matched.

    Function prototype parameters recurse with ``level`` (32) as in libbpf;
    results are remembered for the call (with the level they needed) so that
    prototypes sharing parameter types are compared once, not once per path.
    """
    return _TypesCompat(lbtf, tbtf).run(lid, tid, level)


class _TypesCompat:
    """One bpf_core_types_are_compat computation, memoised (see :class:`_TypesMatch`)."""

    def __init__(self, lbtf: Spec, tbtf: Spec) -> None:
        self.lbtf, self.tbtf = lbtf, tbtf
        # (local id, target id) -> (result, the smallest level that computes it)
        self.memo: Dict[Tuple[int, int], Tuple[bool, int]] = {}

    def run(self, lid: int, tid: int, level: int) -> bool:
        hit = self.memo.get((lid, tid))
        if hit is not None:
            if hit[1] > level:
                raise _Fail("function prototypes nested too deep")
            return hit[0]
        ok, needed = self._compat(lid, tid, level)
        self.memo[(lid, tid)] = (ok, needed)
        return ok

    def _compat(self, lid: int, tid: int, level: int) -> Tuple[bool, int]:
        lbtf, tbtf = self.lbtf, self.tbtf
        needed = 0
        if not _kind_core_compat(lbtf.type(lid), tbtf.type(tid)):
            return False, needed
        for _ in range(MAX_DEPTH):
            lid, lt = _skip(lbtf, lid)
            tid, tt = _skip(tbtf, tid)
            if not _kind_core_compat(lt, tt):
                return False, needed
            if isinstance(lt, (T.Void, T.Struct, T.Union, T.Enum, T.Enum64, T.Fwd)):
                return True, needed
            if isinstance(lt, T.Int):
                assert isinstance(tt, T.Int)
                return lt.offset == 0 and tt.offset == 0, needed
            if isinstance(lt, T.Pointer):
                assert isinstance(tt, T.Pointer)
                lid, tid = lt.type, tt.type
                continue
            if isinstance(lt, T.Array):
                assert isinstance(tt, T.Array)
                lid, tid = lt.type, tt.type
                continue
            if isinstance(lt, T.FuncProto):
                assert isinstance(tt, T.FuncProto)
                if len(lt.params) != len(tt.params):
                    return False, needed
                for lp, tp in zip(lt.params, tt.params):
                    if level <= 0:
                        raise _Fail("function prototypes nested too deep")
                    a, _ = _skip(lbtf, lp.type)
                    b, _ = _skip(tbtf, tp.type)
                    ok = self.run(a, b, level - 1)
                    needed = max(needed, self.memo[(a, b)][1] + 1)
                    if not ok:
                        return False, needed
                lid, _ = _skip(lbtf, lt.return_type)
                tid, _ = _skip(tbtf, tt.return_type)
                continue
            return False, needed
        raise _Fail("type chain too deep")


def _names_essentially_equal(a: str, b: str) -> bool:
    return essential_name(a) == essential_name(b)


def fields_are_compat(lbtf: Spec, lid: int, tbtf: Spec, tid: int) -> bool:
    """libbpf's bpf_core_fields_are_compat: may a local field be relocated to this target field?"""
    for _ in range(MAX_DEPTH):
        lid, lt = _skip(lbtf, lid)
        tid, tt = _skip(tbtf, tid)
        if isinstance(lt, T.COMPOSITES) and isinstance(tt, T.COMPOSITES):
            return True
        if not _kind_core_compat(lt, tt):
            return False
        if isinstance(lt, (T.Pointer, T.Float)):
            return True
        if isinstance(lt, (T.Fwd, T.Enum, T.Enum64)):
            ln, tn = essential_name(lt.name), essential_name(tt.name)
            return not ln or not tn or ln == tn
        if isinstance(lt, T.Int):
            assert isinstance(tt, T.Int)
            return lt.offset == 0 and tt.offset == 0
        if isinstance(lt, T.Array):
            assert isinstance(tt, T.Array)
            lid, tid = lt.type, tt.type
            continue
        return False
    raise _Fail("array nesting too deep")


def _core_names_match(local: str, targ: str) -> bool:
    if not targ:
        return not local
    return essential_name(local) == essential_name(targ)


def _enums_match(lt: T.Type, tt: T.Type) -> bool:
    assert isinstance(lt, T.ENUMS) and isinstance(tt, T.ENUMS)
    if lt.size != tt.size or len(lt.values) > len(tt.values):
        return False
    for lv in lt.values:
        if not any(_core_names_match(lv.name, tv.name) for tv in tt.values):
            return False
    return True


def types_match(lbtf: Spec, lid: int, tbtf: Spec, tid: int, behind_ptr: bool = False, level: int = MAX_DEPTH) -> bool:
    """libbpf's bpf_core_types_match (TYPE_MATCHES): the stricter, layout-level relation.

    As in libbpf, recursion into members and parameters is bounded by
    ``level`` (32) and fails beyond it.  Unlike libbpf, the result for each
    (local type, target type, behind a pointer) is remembered for the
    duration of the call: every local anonymous member is tried against
    every target anonymous member, which is exponential in the nesting
    depth without it.  Each result is kept with the recursion depth it
    needed, so a remembered result is used only where libbpf would have had
    the depth to compute it (and the bound fails where libbpf's would).
    """
    return _TypesMatch(lbtf, tbtf).run(lid, tid, behind_ptr, level)


class _TypesMatch:
    """One bpf_core_types_match computation, memoised."""

    def __init__(self, lbtf: Spec, tbtf: Spec) -> None:
        self.lbtf, self.tbtf = lbtf, tbtf
        # (local id, target id, behind_ptr) -> (result, the smallest level that computes it)
        self.memo: Dict[Tuple[int, int, bool], Tuple[bool, int]] = {}

    def run(self, lid: int, tid: int, behind_ptr: bool, level: int) -> bool:
        if level <= 0:
            raise _Fail("types nested too deep")
        key = (lid, tid, behind_ptr)
        hit = self.memo.get(key)
        if hit is not None:
            if hit[1] > level:
                raise _Fail("types nested too deep")
            return hit[0]
        ok, needed = self._match(lid, tid, behind_ptr, level)
        self.memo[key] = (ok, needed)
        return ok

    def _sub(self, lid: int, tid: int, behind_ptr: bool, level: int, needed: List[int]) -> bool:
        ok = self.run(lid, tid, behind_ptr, level - 1)
        needed[0] = max(needed[0], self.memo[(lid, tid, behind_ptr)][1] + 1)
        return ok

    def _match(self, lid: int, tid: int, behind_ptr: bool, level: int) -> Tuple[bool, int]:
        lbtf, tbtf = self.lbtf, self.tbtf
        needed = [1]  # this call itself needs level >= 1
        for _ in range(MAX_DEPTH):
            lid, lt = _skip(lbtf, lid)
            tid, tt = _skip(tbtf, tid)
            if not _core_names_match(lt.name, tt.name):
                return False, needed[0]
            if isinstance(lt, T.Void):
                return isinstance(tt, T.Void), needed[0]
            if isinstance(lt, T.Fwd):
                if behind_ptr:
                    if isinstance(tt, T.Fwd):
                        return lt.is_union == tt.is_union, needed[0]
                    ok = (isinstance(tt, T.Struct) and not lt.is_union) or (isinstance(tt, T.Union) and lt.is_union)
                    return ok, needed[0]
                return isinstance(tt, T.Fwd) and lt.is_union == tt.is_union, needed[0]
            if isinstance(lt, T.ENUMS):
                return isinstance(tt, T.ENUMS) and _enums_match(lt, tt), needed[0]
            if isinstance(lt, T.COMPOSITES):
                if behind_ptr:
                    if lt.kind == tt.kind:
                        return True, needed[0]
                    if not isinstance(tt, T.Fwd):
                        return False, needed[0]
                    return isinstance(lt, T.Union) == tt.is_union, needed[0]
                if lt.kind != tt.kind:
                    return False, needed[0]
                assert isinstance(tt, T.COMPOSITES)
                if len(lt.members) > len(tt.members):
                    return False, needed[0]
                for lm in lt.members:
                    found = False
                    for tm in tt.members:
                        if not _core_names_match(lm.name, tm.name):
                            continue
                        if self._sub(lm.type, tm.type, behind_ptr, level, needed):
                            found = True
                            break
                    if not found:
                        return False, needed[0]
                return True, needed[0]
            if isinstance(lt, T.Int):
                if not isinstance(tt, T.Int):
                    return False, needed[0]
                return lt.size == tt.size and (lt.encoding & T.INT_SIGNED) == (tt.encoding & T.INT_SIGNED), needed[0]
            if isinstance(lt, T.Pointer):
                if not isinstance(tt, T.Pointer):
                    return False, needed[0]
                behind_ptr = True
                lid, tid = lt.type, tt.type
                continue
            if isinstance(lt, T.Array):
                if not isinstance(tt, T.Array) or lt.nelems != tt.nelems:
                    return False, needed[0]
                lid, tid = lt.type, tt.type
                continue
            if isinstance(lt, T.FuncProto):
                if not isinstance(tt, T.FuncProto) or len(lt.params) != len(tt.params):
                    return False, needed[0]
                for lp, tp in zip(lt.params, tt.params):
                    if not self._sub(lp.type, tp.type, behind_ptr, level, needed):
                        return False, needed[0]
                lid, tid = lt.return_type, tt.return_type
                continue
            return False, needed[0]
        raise _Fail("type chain too deep")


# ---------------------------------------------------------------- matching
class _Builder:
    """A target spec being built while matching."""

    def __init__(self, btf: Spec, root: int, kind: CoreReloKind) -> None:
        self.btf, self.root, self.kind = btf, root, kind
        self.raw: List[int] = []
        self.acc: List[Accessor] = []
        self.bit = 0
        self.anon: Dict[str, _AnonReach] = {}  # member name -> what searching anonymous members can reach

    def freeze(self) -> CoreSpec:
        return CoreSpec(self.btf, self.root, self.kind, tuple(self.raw), tuple(self.acc), self.bit)


_UNBOUNDED = 1 << 30


class _AnonReach:
    """What the search for member ``name`` through the anonymous members of a target type can meet.

    For a type: whether a member called ``name`` is reachable through
    anonymous members, how many levels of calls the search makes below it
    and how deep the deepest struct/union with members lies.  A subtree
    without the name can then be skipped when the search would find nothing
    there and hit neither depth bound: the same outcome, without walking it
    (anonymous members shared by several parents are otherwise searched
    once per path, exponentially).
    """

    def __init__(self, tbtf: Spec, name: str) -> None:
        self.tbtf, self.name = tbtf, name
        self.memo: Dict[int, Tuple[bool, int, int]] = {}
        self.active: Set[int] = set()

    def info(self, tid: int, level: int = 0) -> Tuple[bool, int, int]:
        hit = self.memo.get(tid)
        if hit is not None:
            return hit
        unknown = (True, _UNBOUNDED, _UNBOUNDED)  # never skipped: the search itself decides
        if tid in self.active or level > SPEC_MAX_LEN + MAX_DEPTH:
            return unknown  # a loop, or beyond where the search fails anyway
        try:
            _, t = _skip(self.tbtf, tid)
        except (_Fail, BTFError):
            return unknown
        if not isinstance(t, T.COMPOSITES):
            res = (False, 0, -1)
        else:
            self.active.add(tid)
            try:
                has, calls, deepest = False, 0, (0 if t.members else -1)
                for m in t.members:
                    if m.name:
                        has = has or m.name == self.name
                        continue
                    h, c, d = self.info(m.type, level + 1)
                    has = has or h
                    calls = max(calls, c + 1)
                    if d >= 0:
                        deepest = max(deepest, d + 1)
            finally:
                self.active.discard(tid)
            res = (has, calls, deepest)
        self.memo[tid] = res
        return res

    def skippable(self, tid: int, depth: int, raw_len: int) -> bool:
        """Searching ``tid`` at this depth with this raw spec length would find nothing and fail nowhere."""
        has, calls, deepest = self.info(tid)
        return not has and depth + calls <= MAX_DEPTH and raw_len + deepest < SPEC_MAX_LEN


def _match_member(lbtf: Spec, lacc: Accessor, tbtf: Spec, tid: int, b: _Builder, depth: int = 0) -> Optional[int]:
    """Find the local named member in target type ``tid`` (anonymous members searched).

    Returns the target member's type id, or None when there is no compatible
    member of that name.  As in libbpf, a member of that name that is not
    compatible ends the search in its struct (its raw spec entry stays).
    """
    if depth > MAX_DEPTH:
        raise _Fail("anonymous members nested too deep")
    tid, tt = _skip(tbtf, tid)
    if not isinstance(tt, T.COMPOSITES):
        return None
    lt = lbtf.type(lacc.type_id)
    assert isinstance(lt, T.COMPOSITES)
    lm = lt.members[lacc.idx]
    reach = b.anon.get(lm.name)
    if reach is None:
        reach = b.anon[lm.name] = _AnonReach(tbtf, lm.name)
    for i, m in enumerate(tt.members):
        if len(b.raw) == SPEC_MAX_LEN:
            raise _Fail("struct/union/array nesting too deep")
        b.bit += m.bit_offset
        b.raw.append(i)
        if not m.name:
            if not reach.skippable(m.type, depth + 1, len(b.raw)):
                found = _match_member(lbtf, lacc, tbtf, m.type, b, depth + 1)
                if found is not None:
                    return found
        elif m.name == lm.name:
            if fields_are_compat(lbtf, lm.type, tbtf, m.type):
                b.acc.append(Accessor(tid, i, m.name))
                return m.type
            return None
        b.bit -= m.bit_offset
        b.raw.pop()
    return None


def spec_match(local: CoreSpec, tbtf: Spec, tid: int) -> Optional[CoreSpec]:
    """Match a local spec against one candidate (bpf_core_spec_match): the target spec, or None."""
    kind = local.kind
    b = _Builder(tbtf, tid, kind)
    if is_type_based(kind):
        if kind == K.TYPE_MATCHES:
            ok = types_match(local.btf, local.root_type_id, tbtf, tid)
        else:
            ok = types_are_compat(local.btf, local.root_type_id, tbtf, tid)
        return b.freeze() if ok else None
    if is_enumval_based(kind):
        etid, et = _skip(tbtf, tid)
        if not isinstance(et, T.ENUMS):
            return None
        lname = essential_name(local.accessors[0].name or "")
        for i, v in enumerate(et.values):
            if essential_name(v.name) == lname:
                b.acc.append(Accessor(etid, i, v.name))
                b.raw.append(i)
                return b.freeze()
        return None
    cur = tid
    for i, lacc in enumerate(local.accessors):
        cur, tt = _skip(tbtf, cur)
        if lacc.name:
            nxt = _match_member(local.btf, lacc, tbtf, cur, b)
            if nxt is None:
                return None
            cur = nxt
            continue
        if i > 0:
            if not isinstance(tt, T.Array):
                return None
            if not _is_flex_arr(tbtf, b.acc[-1] if b.acc else None, tt) and lacc.idx >= tt.nelems:
                return None
            cur, _ = _skip(tbtf, tt.type)
        if len(b.raw) == SPEC_MAX_LEN:
            raise _Fail("struct/union/array nesting too deep")
        b.acc.append(Accessor(cur, lacc.idx, None))
        b.raw.append(lacc.idx)
        b.bit += lacc.idx * _size(tbtf, cur) * 8
    return b.freeze()


# ---------------------------------------------------------------- results
class Candidate(Record):
    """A target type a local type may relocate to; ``origin`` names its BTF ("vmlinux", a module, a file)."""

    __slots__ = _fields = ("btf", "id", "origin")
    _compare = ("id", "origin")
    _no_repr = ("btf",)
    btf: Spec
    id: int
    origin: str

    def __init__(self, btf: Spec, id: int, origin: str) -> None:
        _set(self, "btf", btf)
        _set(self, "id", id)
        _set(self, "origin", origin)

    def describe(self) -> str:
        return f"[{self.id}] {describe(self.btf, self.id)} in {self.origin}"


class CoreResult(Record):
    """The outcome of one relocation (bpf_core_relo_res), with what it was matched to."""

    __slots__ = _fields = (
        "kind", "orig_val", "new_val", "poison", "validate", "fail_memsz_adjust", "orig_sz", "new_sz",
        "orig_type_id", "new_type_id", "local", "target", "target_origin", "candidates", "reason",
    )  # fmt: skip
    _compare = tuple(f for f in _fields if f not in ("local", "target"))
    kind: CoreReloKind
    orig_val: int
    new_val: int
    poison: bool
    validate: bool
    fail_memsz_adjust: bool
    orig_sz: int
    new_sz: int
    orig_type_id: int
    new_type_id: int
    local: Optional[CoreSpec]
    target: Optional[CoreSpec]
    target_origin: str
    candidates: Tuple[str, ...]  # every candidate considered, described
    reason: str  # why no target was found (existence relocations and poisoned ones)

    def __init__(
        self,
        kind: CoreReloKind,
        orig_val: int,
        new_val: int,
        poison: bool = False,
        validate: bool = True,
        fail_memsz_adjust: bool = False,
        orig_sz: int = 0,
        new_sz: int = 0,
        orig_type_id: int = 0,
        new_type_id: int = 0,
        local: Optional[CoreSpec] = None,
        target: Optional[CoreSpec] = None,
        target_origin: str = "",
        candidates: Tuple[str, ...] = (),
        reason: str = "",
    ) -> None:
        for name, v in zip(
            self._fields,
            (kind, orig_val, new_val, poison, validate, fail_memsz_adjust, orig_sz, new_sz,
             orig_type_id, new_type_id, local, target, target_origin, candidates, reason),
        ):  # fmt: skip
            _set(self, name, v)

    @property
    def resolved(self) -> bool:
        """A target was found (the relocation means the same thing on the target)."""
        return self.target is not None or self.kind == K.TYPE_ID_LOCAL


def _calc_field(relo: CoreRelo, spec: Optional[CoreSpec], validate: bool) -> Tuple[int, int, int, bool]:
    """(value, field size, field type id, validate) of a field relocation; _Poison when no spec."""
    kind = relo.kind
    if kind == K.FIELD_EXISTS:
        return (1 if spec is not None else 0), 0, 0, validate
    if spec is None:
        raise _Poison()
    btf = spec.btf
    acc = spec.accessors[-1]
    if not acc.name:
        if kind == K.FIELD_BYTE_OFFSET:
            elem, et = _skip(btf, acc.type_id)
            while isinstance(et, T.Array):
                elem, et = _skip(btf, et.type)
            return spec.bit_offset // 8, _size(btf, elem), acc.type_id, True
        if kind == K.FIELD_BYTE_SIZE:
            return _size(btf, acc.type_id), 0, 0, True
        raise _Fail(f"relocation {kind_str(kind)} at insn #{relo.insn} can't be applied to an array access")
    t = btf.type(acc.type_id)
    assert isinstance(t, T.COMPOSITES)
    m = t.members[acc.idx]
    ftid, mt = _skip(btf, m.type)
    bit_off = spec.bit_offset
    bit_sz = m.bitfield_size
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = getattr(mt, "size", 0)
        if byte_sz <= 0:
            raise _Fail(f"bitfield of {describe(btf, ftid)}")
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise _Fail(f"bitfield at insn #{relo.insn} can't be read with a 64-bit load")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = _size(btf, ftid)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    validate = not bitfield
    field_sz = 0
    field_tid = 0
    if kind == K.FIELD_BYTE_OFFSET:
        val = byte_off
        if not bitfield:
            elem, et = ftid, mt
            while isinstance(et, T.Array):
                elem, et = _skip(btf, et.type)
            field_sz = _size(btf, elem)
            field_tid = ftid
    elif kind == K.FIELD_BYTE_SIZE:
        val = byte_sz
    elif kind == K.FIELD_SIGNED:
        val = int((isinstance(mt, T.ENUMS) and mt.signed) or (isinstance(mt, T.Int) and bool(mt.encoding & T.INT_SIGNED)))
        validate = True
    elif kind == K.FIELD_LSHIFT_U64:
        val = 64 - (bit_off + bit_sz - byte_off * 8)
    elif kind == K.FIELD_RSHIFT_U64:
        val = 64 - bit_sz
        validate = True
    else:  # pragma: no cover - every field kind is handled above
        raise _Fail(f"unrecognized CO-RE relocation {kind}")
    return val & _U64, field_sz, field_tid, validate


class _Poison(Exception):
    pass


def _calc_type(relo: CoreRelo, spec: Optional[CoreSpec]) -> Tuple[int, bool]:
    if spec is None:
        return 0, True
    if relo.kind == K.TYPE_ID_TARGET:
        return spec.root_type_id, False
    if relo.kind in (K.TYPE_EXISTS, K.TYPE_MATCHES):
        return 1, True
    if relo.kind == K.TYPE_SIZE:
        return _size(spec.btf, spec.root_type_id), True
    raise _Fail(f"unrecognized CO-RE relocation {kind_str(relo.kind)}")


def _calc_enumval(relo: CoreRelo, spec: Optional[CoreSpec]) -> int:
    if relo.kind == K.ENUMVAL_EXISTS:
        return 1 if spec is not None else 0
    if spec is None:
        raise _Poison()
    acc = spec.accessors[0]
    return _enum_raw_value(spec.btf.type(acc.type_id), acc.idx)


def _calc_relo(relo: CoreRelo, local: CoreSpec, targ: Optional[CoreSpec]) -> CoreResult:
    """Original and new value of one relocation for one candidate (bpf_core_calc_relo)."""
    kind = relo.kind
    try:
        if is_field_based(kind):
            ov, osz, otid, validate = _calc_field(relo, local, True)
            try:
                nv, nsz, ntid, _ = _calc_field(relo, targ, True)
            except _Poison:
                return CoreResult(kind, ov, 0, poison=True, validate=validate, local=local, target=targ)
            fail = False
            if osz != nsz:
                ot, nt = local.btf.type(otid), (targ.btf.type(ntid) if targ is not None else T.Void(0, "void"))
                ok = (isinstance(ot, T.Pointer) and isinstance(nt, T.Pointer)) or (
                    isinstance(ot, T.Int) and isinstance(nt, T.Int) and ot.encoding != T.INT_SIGNED and nt.encoding != T.INT_SIGNED
                )
                fail = not ok
            return CoreResult(kind, ov, nv, False, validate, fail, osz, nsz, otid, ntid, local, targ)
        if is_type_based(kind):
            ov, validate = _calc_type(relo, local)
            nv, _ = _calc_type(relo, targ)
            return CoreResult(kind, ov, nv, validate=validate, local=local, target=targ)
        if is_enumval_based(kind):
            ov = _calc_enumval(relo, local)
            try:
                nv = _calc_enumval(relo, targ)
            except _Poison:
                return CoreResult(kind, ov, 0, poison=True, local=local, target=targ)
            return CoreResult(kind, ov, nv, local=local, target=targ)
    except _Poison:  # the local side always has a spec; kept for safety
        return CoreResult(kind, 0, 0, poison=True, local=local, target=targ)
    raise _Fail(f"unrecognized CO-RE relocation {kind}")


def _describe_local(btf: Spec, tid: int) -> str:
    try:
        return describe(btf, tid)
    except BTFError:
        return f"[{tid}]"


def _why_unresolved(local: CoreSpec, cands: Sequence[Candidate], origin: str) -> str:
    """A sentence saying why no candidate matched."""
    root = local.btf.type(local.root_type_id)
    what = f"{root.kind.name.lower()} {root.name}"
    if not cands:
        return f"no {what!s} (or flavour of it) in {origin}"
    names = ", ".join(c.describe() for c in cands[:4]) + (" ..." if len(cands) > 4 else "")
    if is_enumval_based(local.kind):
        return f"no enumerator {local.accessors[0].name!r} in candidates {names}"
    if is_type_based(local.kind):
        rel = "match" if local.kind == K.TYPE_MATCHES else "compatible with"
        return f"no candidate {rel} the local type: {names}"
    return f"field {local.c_access() or '(root)'} not found or incompatible in candidates {names}"


def calc_relo_insn(
    relo: CoreRelo,
    local_btf: Spec,
    cands: Optional[MutableSequence[Candidate]],
    prog_name: str = "",
    origin: str = "target BTF",
) -> CoreResult:
    """Resolve one relocation against its candidates (bpf_core_calc_relo_insn).

    ``cands`` is pruned in place to the candidates that matched (when any
    did), as libbpf does, so later relocations of the same local type only
    consider those.  Raises RelocationError when libbpf would fail the load
    (malformed relocation, anonymous root type, ambiguous candidates).
    """
    where = f"prog {prog_name!r}: " if prog_name else ""
    try:
        local_type = local_btf.type(relo.type_id)
    except BTFError as e:
        raise RelocationError(f"{where}CO-RE relocation at insn #{relo.insn}: {e}") from None
    local = parse_spec(local_btf, relo)
    if relo.kind == K.TYPE_ID_LOCAL:
        return CoreResult(relo.kind, relo.type_id, relo.type_id, validate=False, local=local)
    if not local_type.name:
        raise RelocationError(
            f"{where}CO-RE relocation <{kind_str(relo.kind)}> at insn #{relo.insn} on anonymous type "
            f"{_describe_local(local_btf, relo.type_id)}: anonymous types have no candidates"
        )
    cands = cands if cands is not None else []
    considered = tuple(c.describe() for c in cands)
    chosen: Optional[CoreResult] = None
    kept: List[Candidate] = []
    try:
        for cand in cands:
            targ = spec_match(local, cand.btf, cand.id)
            if targ is None:
                continue
            res = _calc_relo(relo, local, targ)
            if chosen is None:
                chosen = _with(res, cand.origin, considered)
            else:
                assert chosen.target is not None
                if targ.bit_offset != chosen.target.bit_offset:
                    raise RelocationError(
                        f"{where}CO-RE relocation {local.format()} at insn #{relo.insn}: field offset ambiguity: "
                        f"candidate {cand.describe()} has bit offset {targ.bit_offset}, "
                        f"{chosen.target_origin} candidate [{chosen.target.root_type_id}] has {chosen.target.bit_offset}"
                    )
                if res.poison != chosen.poison or res.new_val != chosen.new_val:
                    raise RelocationError(
                        f"{where}CO-RE relocation {local.format()} at insn #{relo.insn}: relocation decision ambiguity: "
                        f"candidate {cand.describe()} gives {'failure' if res.poison else 'success'} {res.new_val}, "
                        f"candidate [{chosen.target.root_type_id}] in {chosen.target_origin} gives "
                        f"{'failure' if chosen.poison else 'success'} {chosen.new_val}"
                    )
            kept.append(cand)
        if kept:
            cands[:] = kept
            assert chosen is not None
            return chosen
        res = _calc_relo(relo, local, None)
    except _Fail as e:
        raise RelocationError(f"{where}CO-RE relocation {local.format()} at insn #{relo.insn}: {e}") from None
    except BTFError as e:
        raise RelocationError(f"{where}CO-RE relocation {local.format()} at insn #{relo.insn}: target BTF: {e}") from None
    return _with(res, "", considered, _why_unresolved(local, cands, origin))


def _with(res: CoreResult, origin: str, considered: Tuple[str, ...], reason: str = "") -> CoreResult:
    return replace(res, target_origin=origin, candidates=considered, reason=reason)


# ---------------------------------------------------------------- patching
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
BPF_K = 0x00
BPF_CALL = 0x80
LD_IMM64 = 0x18
_SIZE_BYTES = {0x18: 8, 0x00: 4, 0x08: 2, 0x10: 1}  # BPF_DW, BPF_W, BPF_H, BPF_B
_BYTES_SIZE = {8: 0x18, 4: 0x00, 2: 0x08, 1: 0x10}


def _poison_at(insns: bytearray, idx: int) -> None:
    _INSN.pack_into(insns, idx * 8, BPF_JMP | BPF_CALL, 0, 0, POISON_IMM)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def patch_insn(insns: bytearray, idx: int, relo: CoreRelo, res: CoreResult, prog_name: str = "") -> bool:
    """Apply ``res`` to instruction ``idx`` of ``insns`` (bpf_core_patch_insn).

    Returns True when the instruction was poisoned.  Raises RelocationError
    when the instruction is not one CO-RE can patch or does not hold the
    value the local BTF says it should.
    """
    n = len(insns) // 8
    if not 0 <= idx < n:
        raise RelocationError(f"CO-RE relocation points past the end ({idx} >= {n})", program=prog_name or None, insn=idx)
    code, regs, off, imm = _INSN.unpack_from(insns, idx * 8)
    cls = code & 0x07

    def fail(msg: str) -> RelocationError:
        return RelocationError(f"CO-RE relocation <{kind_str(relo.kind)}>: {msg}", program=prog_name or None, insn=idx)

    def poison() -> bool:
        if code == LD_IMM64 and idx + 1 < n:
            _poison_at(insns, idx + 1)
        _poison_at(insns, idx)
        return True

    if res.poison:
        return poison()
    orig, new = res.orig_val & _U64, res.new_val & _U64
    if cls in (BPF_ALU, BPF_ALU64):
        if code & 0x08 != BPF_K:
            raise fail("ALU instruction with a register source")
        if res.validate and (imm & _U64) != orig:
            raise fail(f"unexpected ALU/ALU64 value: got {imm}, expected {orig} -> {new}")
        _INSN.pack_into(insns, idx * 8, code, regs, off, _s32(new))
        return False
    if cls in (BPF_LDX, BPF_ST, BPF_STX):
        if res.validate and (off & _U64) != orig:
            raise fail(f"unexpected LDX/ST/STX offset: got {off}, expected {orig} -> {new}")
        if new > 0x7FFF:
            raise fail(f"LDX/ST/STX offset too big: {new}")
        if res.fail_memsz_adjust:
            return poison()
        if res.new_sz != res.orig_sz:
            have = _SIZE_BYTES[code & 0x18]
            if have != res.orig_sz:
                raise fail(f"LDX/ST/STX unexpected memory size: got {have}, expected {res.orig_sz}")
            size = _BYTES_SIZE.get(res.new_sz)
            if size is None:
                raise fail(f"LDX/ST/STX invalid new memory size: {res.new_sz}")
            code = (code & 0xE0) | size | cls
        _INSN.pack_into(insns, idx * 8, code, regs, new, imm)
        return False
    if cls == BPF_LD:
        if code != LD_IMM64 or idx + 1 >= n or regs >> 4 != 0 or off != 0:
            raise fail("LD_IMM64 instruction has an unexpected form")
        c2, r2, o2, i2 = _INSN.unpack_from(insns, idx * 8 + 8)
        if c2 or r2 or o2:
            raise fail("LD_IMM64 instruction has an unexpected form")
        have = (imm & 0xFFFFFFFF) | ((i2 & 0xFFFFFFFF) << 32)
        if res.validate and have != orig:
            raise fail(f"unexpected LD_IMM64 value: got {have}, expected {orig} -> {new}")
        _INSN.pack_into(insns, idx * 8, code, regs, off, _s32(new))
        _INSN.pack_into(insns, idx * 8 + 8, c2, r2, o2, _s32(new >> 32))
        return False
    raise fail(f"unrecognized instruction code {code:#x}")


# ---------------------------------------------------------------- candidate search
_cache_lock = _thread.allocate_lock()
_name_cache: "weakref.WeakKeyDictionary[Spec, Dict[Tuple[str, int], Tuple[int, ...]]]" = weakref.WeakKeyDictionary()
_ENUM_GROUP = -1


def _strings_with_essential(spec: Spec, essent: str) -> List[int]:
    """Offsets (in ``spec``'s string space, base excluded) of strings whose essential name is ``essent``.

    Such a string is ``essent`` itself or ``essent___flavour``: two substring searches
    (C speed, ~50x a regex scan of vmlinux's 2 MB of strings), each hit checked.
    """
    buf = spec._buf  # noqa: SLF001 - same package
    start, end = spec._sstart, spec._send  # noqa: SLF001
    find = spec._find  # noqa: SLF001
    name = essent.encode()
    hits: Set[int] = set()
    if bytes(buf[start : start + len(name)]) == name:  # the section's first string has no NUL before it
        hits.add(start)
    for needle in (b"\0" + name + b"\0", b"\0" + name + b"___"):
        i = find(needle, start, end)
        while i >= 0:
            hits.add(i + 1)
            i = find(needle, i + 1, end)
    out: List[int] = []
    for pos in sorted(hits):
        stop = find(b"\0", pos, end)
        if stop < 0:
            continue  # not NUL-terminated: not a string
        if essential_name(bytes(buf[pos:stop]).decode("utf-8", "replace")) == essent:
            out.append(spec.str_base + pos - start)
    return out


def find_candidate_ids(spec: Spec, essent: str, kind: int) -> Tuple[int, ...]:
    """Ids of ``spec``'s own types of a kind compatible with ``kind`` whose essential name is ``essent``.

    Cached per target BTF; only the string and type sections are scanned,
    no type is decoded.
    """
    group = _ENUM_GROUP if kind in (int(T.Kind.ENUM), int(T.Kind.ENUM64)) else kind
    key = (essent, group)
    with _cache_lock:
        per = _name_cache.get(spec)
        if per is None:
            per = {}
            _name_cache[spec] = per
        hit = per.get(key)
    if hit is not None:
        return hit
    offs: List[int] = []
    s: Optional[Spec] = spec
    while s is not None:  # split BTF: names may live in the base's strings
        offs.extend(_strings_with_essential(s, essent))
        s = s.base
    ids: List[int] = []
    for off in offs:
        ids.extend(spec._ids_with_name_offset(off))  # noqa: SLF001 - same package
    found = tuple(sorted(i for i in set(ids) if _kind_core_compat_k(int(spec.kind_of(i)), kind)))
    with _cache_lock:
        per[key] = found
    return found


class Candidates:
    """Target BTFs in libbpf's search order, and the candidates of local types in them.

    ``targets`` is a sequence of (origin, Spec) pairs: the main BTF first
    (vmlinux, or a custom BTF), then module BTFs.  As in libbpf, modules
    are searched only when the main BTF has no candidate.  ``modules`` may
    be a callable returning the module targets, so that they are read only
    when needed.
    """

    def __init__(
        self,
        main: Tuple[str, Spec],
        modules: "Optional[Union[Iterable[Tuple[str, Spec]], Callable[[], Iterable[Tuple[str, Spec]]]]]" = None,
    ) -> None:
        self.main = main
        self._modules = modules
        self._module_list: Optional[List[Tuple[str, Spec]]] = None

    def modules(self) -> List[Tuple[str, Spec]]:
        if self._module_list is None:
            src = self._modules
            if callable(src):
                src = src()
            self._module_list = list(src or ())
        return self._module_list

    def find(self, local_btf: Spec, local_id: int) -> List[Candidate]:
        """Candidates for a local type (bpf_core_find_cands); empty for anonymous types."""
        lt = local_btf.type(local_id)
        if not lt.name:
            return []
        essent = essential_name(lt.name)
        kind = int(lt.kind)
        origin, spec = self.main
        out = [Candidate(spec, i, origin) for i in find_candidate_ids(spec, essent, kind)]
        if out:
            return out
        for origin, mspec in self.modules():
            out.extend(Candidate(mspec, i, origin) for i in find_candidate_ids(mspec, essent, kind) if i >= mspec.first_id)
        return out

    @property
    def origin(self) -> str:
        return self.main[0]
