"""BTF as compilable C: the declarations ``bpftool btf dump file F format c`` writes.

The algorithm is libbpf's btf_dump, re-implemented:

1. every type referenced by another is marked (a top-level anonymous enum is
   one nobody references, and gets its own declaration);
2. for each type id, a topological order of the definitions it needs is
   computed, telling *strong* dependencies (embedded by value: must be
   defined first) from *weak* ones (through a pointer: a forward
   declaration will do);
3. definitions are emitted in that order, with forward declarations where a
   cycle goes through a pointer; anonymous structs, unions and enums are
   written inline; names used twice get a ``___N`` suffix.

Struct layout is reproduced exactly: bitfields, explicit padding
(``long: 64;``), ``__attribute__((packed))`` when members are not naturally
aligned, and ``mode(byte)``/``mode(word)`` for 1- and 8-byte enums.
"""

from __future__ import annotations

import sys
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import BTFError
from . import query
from . import types as T
from .spec import Spec

HEADER = """#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

"""
FOOTER = """#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
"""

_NOT_ORDERED, _ORDERING, _ORDERED = 0, 1, 2
_NOT_EMITTED, _EMITTING, _EMITTED = 0, 1, 2
_MAX_TABS = 13
# Refuse to write out one declaration of more parts than this (member and parameter declarations,
# nested): prototypes whose parameters are prototypes grow exponentially; vmlinux's largest has ~140.
_MAX_DECL_PARTS = 100_000
# Refuse to walk more types than this for one dump_type() (ordering and emission together):
# prototypes whose parameters are prototypes are walked exponentially; vmlinux's most is ~3,000.
_MAX_WALK_STEPS = 1_000_000
# Refuse to write out holes above 1 MiB (131072 "long: 64;" lines): only malformed BTF has them.
_MAX_PADDING_BITS = 8 << 20

# GCC emits typedefs to internal __PolyN_t types for Arm SIMD; alias them.
_MISSING_BASE_TYPES = {
    "__Poly8_t": "unsigned char",
    "__Poly16_t": "unsigned short",
    "__Poly64_t": "unsigned long long",
    "__Poly128_t": "unsigned __int128",
}

_K = T.Kind
_TERMINALS = (T.Int, T.Enum, T.Enum64, T.Fwd, T.Struct, T.Union, T.Typedef, T.Float)
_MODS = (T.Volatile, T.Const, T.Restrict, T.TypeTag)
# Kinds that ordering passes straight through to the type they refer to (arrays with through_ptr reset).
_ORDER_CHAIN = (T.Array,) + _MODS
# Kinds that emission passes straight through to the type they refer to.
_EMIT_CHAIN = (T.Pointer, T.Array) + _MODS


def _pfx(lvl: int) -> str:
    return "\t" * min(lvl, _MAX_TABS)


class CDumper:
    """Writes C declarations of the types of a Spec.

    ``dump_type(id)`` emits a type and everything it needs that was not
    emitted yet; :meth:`dump_all` does it for every type, as bpftool does.
    """

    def __init__(self, spec: Spec, ptr_size: int = 8) -> None:
        self.spec = spec
        self.ptr_size = ptr_size
        n = len(spec)
        self._n = n
        self._order = bytearray(n)
        self._emit = bytearray(n)
        self._fwd_emitted = bytearray(n)
        self._referenced = bytearray(n)
        self._name_resolved = bytearray(n)
        self._cached_names: Dict[int, str] = {}
        self._type_names: Dict[str, int] = {}
        self._ident_names: Dict[str, int] = {}
        self._queue: List[int] = []
        self._out: List[str] = []
        self._types: List[Optional[T.Type]] = [None] * n
        # end of each modifier/array (/pointer) chain, path-compressed: a chain is walked once, not once per id on it
        self._order_chain: Dict[int, Tuple[int, bool]] = {}
        self._emit_chain: Dict[int, Tuple[int, bool]] = {}
        self._decl_nesting = 0
        self._steps_left = _MAX_WALK_STEPS
        self._decl_parts_left = 0
        self._order[0] = _ORDERED  # void needs no definition
        self._emit[0] = _EMITTED
        self._mark_referenced()

    # -- helpers ------------------------------------------------------------------------------
    def _t(self, tid: int) -> T.Type:
        t = self._types[tid] if 0 <= tid < self._n else None
        if t is None:
            t = self.spec.type(tid)
            self._types[tid] = t
        return t

    def _p(self, s: str) -> None:
        self._out.append(s)

    def _align(self, tid: int) -> int:
        try:
            return query.alignof(self.spec, tid)
        except BTFError:
            return 0

    def _size(self, tid: int) -> int:
        try:
            return query.sizeof(self.spec, tid)
        except BTFError:
            return 0

    def _mark(self, tid: int) -> None:
        if 0 <= tid < self._n:
            self._referenced[tid] = 1

    def _mark_referenced(self) -> None:
        for tid in range(1, self._n):
            t = self._t(tid)
            if isinstance(t, (T.Pointer, T.Typedef, T.Volatile, T.Const, T.Restrict, T.Func, T.Var, T.DeclTag, T.TypeTag)):
                self._mark(t.type)
            elif isinstance(t, T.Array):
                self._mark(t.index_type)
                self._mark(t.type)
            elif isinstance(t, T.COMPOSITES):
                for m in t.members:
                    self._mark(m.type)
            elif isinstance(t, T.FuncProto):
                for p in t.params:
                    self._mark(p.type)
            elif isinstance(t, T.Datasec):
                for v in t.vars:
                    self._mark(v.type)

    # -- names ----------------------------------------------------------------------------------
    @staticmethod
    def _name_dups(names: Dict[str, int], name: str) -> int:
        n = names.get(name, 0) + 1
        names[name] = n
        return n

    def _resolve_name(self, tid: int, names: Dict[str, int]) -> str:
        t = self._t(tid)
        if not t.name:
            return ""
        if self._name_resolved[tid]:
            return self._cached_names.get(tid, t.name)
        self._name_resolved[tid] = 1
        if isinstance(t, T.Fwd) or (isinstance(t, T.Enum) and not t.values):
            return t.name
        dups = self._name_dups(names, t.name)
        if dups > 1:
            self._cached_names[tid] = f"{t.name}___{dups}"
        return self._cached_names.get(tid, t.name)

    def _type_name(self, tid: int) -> str:
        return self._resolve_name(tid, self._type_names)

    def _ident_name(self, tid: int) -> str:
        return self._resolve_name(tid, self._ident_names)

    def _blacklisted(self, tid: int) -> bool:
        return self._t(tid).name == "__builtin_va_list"

    def _skip_chain(self, tid: int, cache: Dict[int, Tuple[int, bool]], kinds: Tuple[type, ...]) -> Tuple[int, bool]:
        """(the first id from ``tid`` on that is not one of ``kinds``, whether an array was crossed).

        Every id walked is remembered with its chain's end, so that each
        link of a chain is followed once over the whole dump.
        """
        path: List[int] = []
        seen = set()
        cur, end, arrays = tid, tid, False
        while True:
            hit = cache.get(cur)
            if hit is not None:
                end, arrays = hit
                break
            if not 0 <= cur < self._n:
                raise BTFError(f"BTF type id {cur} out of range (have {self._n})")
            t = self._t(cur)
            if not isinstance(t, kinds):
                end = cur
                break
            if cur in seen:
                raise BTFError(f"BTF type [{tid}]: reference loop through [{cur}]")
            seen.add(cur)
            path.append(cur)
            cur = t.type  # type: ignore[attr-defined]
        for link in reversed(path):
            arrays = arrays or isinstance(self._t(link), T.Array)
            cache[link] = (end, arrays)
        return cache[tid] if path else (end, arrays)

    # -- ordering ---------------------------------------------------------------------------------
    def _step(self, tid: int) -> None:
        self._steps_left -= 1
        if self._steps_left < 0:
            raise BTFError(f"BTF type [{tid}]: more than {_MAX_WALK_STEPS} types to walk (prototypes nested in prototypes?)")

    def _order_type(self, tid: int, through_ptr: bool) -> int:
        """1 when ``tid`` is a strong dependency, 0 when weak; fills the emit queue."""
        if not 0 <= tid < self._n:
            raise BTFError(f"BTF type id {tid} out of range (have {self._n})")
        self._step(tid)
        state = self._order[tid]
        if state == _ORDERED:
            return 1
        t = self._t(tid)
        if state == _ORDERING:
            if isinstance(t, T.COMPOSITES) and through_ptr and t.name:
                return 0
            raise BTFError(f"unsatisfiable type cycle, id:[{tid}]")
        if isinstance(t, (T.Int, T.Float)):
            self._order[tid] = _ORDERED
            return 0
        if isinstance(t, T.Pointer):
            r = self._order_type(t.type, True)
            self._order[tid] = _ORDERED
            return r
        if isinstance(t, _ORDER_CHAIN):
            # const/volatile/restrict/type tags pass through_ptr on, arrays reset it: order the chain's end.
            # Once ordered not through a pointer, every type the chain reaches is ordered: mark it done.
            end, arrays = self._skip_chain(tid, self._order_chain, _ORDER_CHAIN)
            tp = through_ptr and not arrays
            r = self._order_type(end, tp)
            if not tp:
                self._order[tid] = _ORDERED
            return r
        if isinstance(t, T.COMPOSITES):
            if through_ptr and t.name:
                return 0
            self._order[tid] = _ORDERING
            for m in t.members:
                self._order_type(m.type, False)
            if t.name:
                self._queue.append(tid)
            self._order[tid] = _ORDERED
            return 1
        if isinstance(t, (T.Enum, T.Enum64, T.Fwd)):
            if t.name or not self._referenced[tid]:
                self._queue.append(tid)
            self._order[tid] = _ORDERED
            return 1
        if isinstance(t, T.Typedef):
            strong = self._order_type(t.type, through_ptr)
            if through_ptr and not strong:
                return 0
            self._queue.append(tid)
            self._order[tid] = _ORDERED
            return 1
        if isinstance(t, T.FuncProto):
            strong = self._order_type(t.return_type, through_ptr) > 0
            for p in t.params:
                if self._order_type(p.type, through_ptr) > 0:
                    strong = True
            if not through_ptr:
                self._order[tid] = _ORDERED  # as for chains: everything it reaches is ordered now
            return int(strong)
        if isinstance(t, (T.Func, T.Var, T.Datasec, T.DeclTag)):
            self._order[tid] = _ORDERED
            return 0
        raise BTFError(f"unexpected BTF kind {t.kind.name} at [{tid}]")  # pragma: no cover

    # -- emission ----------------------------------------------------------------------------------
    def _emit_type(self, tid: int, cont_id: int) -> None:
        if not 0 <= tid < self._n:
            raise BTFError(f"BTF type id {tid} out of range (have {self._n})")
        self._step(tid)
        state = self._emit[tid]
        if state == _EMITTED:
            return
        t = self._t(tid)
        top_level = cont_id == 0
        if state == _EMITTING:
            if self._fwd_emitted[tid]:
                return
            if isinstance(t, T.COMPOSITES):
                if tid == cont_id or not t.name:
                    return  # inside its own definition, or an anonymous loop
                self._emit_struct_fwd(tid, t)
                self._p(";\n\n")
                self._fwd_emitted[tid] = 1
            elif isinstance(t, T.Typedef):
                if not self._blacklisted(tid):
                    self._emit_typedef_def(tid, t, 0)
                    self._p(";\n\n")
                self._fwd_emitted[tid] = 1
            return
        if isinstance(t, T.Int):
            alias = _MISSING_BASE_TYPES.get(self._type_name(tid))
            if alias is not None:
                self._p(f"typedef {alias} {self._type_name(tid)};\n\n")
            self._emit[tid] = _EMITTED
        elif isinstance(t, (T.Enum, T.Enum64)):
            if top_level:
                self._emit_enum_def(tid, t, 0)
                self._p(";\n\n")
            self._emit[tid] = _EMITTED
        elif isinstance(t, _EMIT_CHAIN):
            self._emit_type(self._skip_chain(tid, self._emit_chain, _EMIT_CHAIN)[0], cont_id)
        elif isinstance(t, T.Fwd):
            self._emit_fwd_def(tid, t)
            self._p(";\n\n")
            self._emit[tid] = _EMITTED
        elif isinstance(t, T.Typedef):
            self._emit[tid] = _EMITTING
            self._emit_type(t.type, tid)
            if not self._fwd_emitted[tid] and not self._blacklisted(tid):
                self._emit_typedef_def(tid, t, 0)
                self._p(";\n\n")
            self._emit[tid] = _EMITTED
        elif isinstance(t, T.COMPOSITES):
            self._emit[tid] = _EMITTING
            if top_level or not t.name:
                new_cont = cont_id if not t.name else tid
                for m in t.members:
                    self._emit_type(m.type, new_cont)
            elif not self._fwd_emitted[tid] and tid != cont_id:
                self._emit_struct_fwd(tid, t)
                self._p(";\n\n")
                self._fwd_emitted[tid] = 1
            if top_level:
                self._emit_struct_def(tid, t, 0)
                self._p(";\n\n")
                self._emit[tid] = _EMITTED
            else:
                self._emit[tid] = _NOT_EMITTED
        elif isinstance(t, T.FuncProto):
            self._emit_type(t.return_type, cont_id)
            for p in t.params:
                self._emit_type(p.type, cont_id)

    def _is_packed(self, t: T.Type) -> bool:
        assert isinstance(t, T.COMPOSITES)
        max_align = 1
        for m in t.members:
            align = self._align(m.type)
            if align and m.bitfield_size == 0 and m.bit_offset % (8 * align):
                return True
            max_align = max(max_align, align)
        return t.size % max_align != 0

    def _emit_bit_padding(self, cur: int, nxt: int, next_align: int, in_bitfield: bool, lvl: int) -> None:
        if cur >= nxt:
            return
        if nxt - cur > _MAX_PADDING_BITS:
            raise BTFError(f"a {nxt - cur}-bit hole in a struct is too large to write out as padding")
        pads: Sequence[Tuple[str, int]] = (("long", self.ptr_size * 8), ("int", 32), ("short", 16), ("char", 8))
        new_off, pad_type, pad_bits = 0, "", 0
        for pad_type, pad_bits in pads:  # noqa: B007 - the last pad type is used after the loop
            new_off = -(-cur // pad_bits) * pad_bits
            if new_off <= nxt:
                break
        if cur < new_off <= nxt:
            align_bits = next_align * 8
            rounded = -(-cur // align_bits) * align_bits if align_bits else cur
            if in_bitfield or (new_off == nxt and rounded != new_off) or (new_off != nxt and nxt - new_off <= new_off - cur):
                self._p(f"\n{_pfx(lvl)}{pad_type}: {new_off - cur if in_bitfield else 0};")
            cur = new_off
        while cur != nxt:
            bits = min(nxt - cur, pad_bits)
            if bits == pad_bits:
                self._p(f"\n{_pfx(lvl)}{pad_type}: {pad_bits};")
                cur += bits
                continue
            for pad_type, pad_bits in reversed(pads):
                if pad_bits < bits:
                    continue
                self._p(f"\n{_pfx(lvl)}{pad_type}: {bits};")
                cur += bits
                break
            else:  # pragma: no cover - bits <= pointer size always fits
                break

    def _emit_struct_fwd(self, tid: int, t: T.Type) -> None:
        kw = "struct" if isinstance(t, T.Struct) else "union"
        self._p(f"{kw}{' ' if t.name else ''}{self._type_name(tid)}")

    def _emit_struct_def(self, tid: int, t: T.Type, lvl: int) -> None:
        assert isinstance(t, T.COMPOSITES)
        is_struct = isinstance(t, T.Struct)
        align = self._align(tid)
        packed = self._is_packed(t) if is_struct else False
        self._p(f"{'struct' if is_struct else 'union'}{' ' if t.name else ''}{self._type_name(tid)} {{")
        off = 0
        prev_bitfield = False
        for m in t.members:
            m_sz = m.bitfield_size
            m_align = 1 if packed else self._align(m.type)
            in_bitfield = prev_bitfield and m_sz != 0
            self._emit_bit_padding(off, m.bit_offset, m_align, in_bitfield, lvl + 1)
            self._p(f"\n{_pfx(lvl + 1)}")
            self._emit_type_decl(m.type, m.name, lvl + 1)
            if m_sz:
                self._p(f": {m_sz}")
                off = m.bit_offset + m_sz
                prev_bitfield = True
            else:
                off = m.bit_offset + max(0, self._size(m.type)) * 8
                prev_bitfield = False
            self._p(";")
        if is_struct:
            self._emit_bit_padding(off, t.size * 8, align, False, lvl + 1)
        if t.members or t.size:
            self._p(f"\n{_pfx(lvl)}}}")
        else:
            self._p("}")
        if packed:
            self._p(" __attribute__((packed))")

    def _emit_enum_def(self, tid: int, t: T.Type, lvl: int) -> None:
        assert isinstance(t, T.ENUMS)
        self._p(f"enum{' ' if t.name else ''}{self._type_name(tid)}")
        if not t.values:
            return
        self._p(" {")
        is64 = isinstance(t, T.Enum64)
        for v in t.values:
            dups = self._name_dups(self._ident_names, v.name)
            name = f"{v.name}___{dups}" if dups > 1 else v.name
            if is64:
                suffix = "LL" if t.signed else "ULL"
                value = v.value if t.signed else v.value & 0xFFFFFFFFFFFFFFFF
                self._p(f"\n{_pfx(lvl + 1)}{name} = {value}{suffix},")
            else:
                value = v.value if t.signed else v.value & 0xFFFFFFFF
                self._p(f"\n{_pfx(lvl + 1)}{name} = {value},")
        self._p(f"\n{_pfx(lvl)}}}")
        if t.size == 1:
            self._p(" __attribute__((mode(byte)))")
        elif t.size == 8 and self.ptr_size == 8:
            if not is64 or all((v.value & 0xFFFFFFFFFFFFFFFF) >> 32 == 0 for v in t.values):
                self._p(" __attribute__((mode(word)))")

    def _emit_fwd_def(self, tid: int, t: T.Type) -> None:
        assert isinstance(t, T.Fwd)
        self._p(f"{'union' if t.is_union else 'struct'} {self._type_name(tid)}")

    def _emit_typedef_def(self, tid: int, t: T.Type, lvl: int) -> None:
        assert isinstance(t, T.Typedef)
        name = self._ident_name(tid)
        if t.type == 0 and name == "__gnuc_va_list":
            self._p("typedef __builtin_va_list __gnuc_va_list")
            return
        self._p("typedef ")
        self._emit_type_decl(t.type, name, lvl)

    # -- declarations -----------------------------------------------------------------------------
    def _emit_type_decl(self, tid: int, fname: str, lvl: int) -> None:
        if self._decl_nesting == 0:
            self._decl_parts_left = _MAX_DECL_PARTS
        self._decl_parts_left -= 1
        if self._decl_parts_left < 0:
            raise BTFError(f"BTF type [{tid}]: declaration too large to write out (prototypes nested in prototypes?)")
        self._decl_nesting += 1
        try:
            self._emit_type_decl_parts(tid, fname, lvl)
        finally:
            self._decl_nesting -= 1

    def _emit_type_decl_parts(self, tid: int, fname: str, lvl: int) -> None:
        stack: List[int] = []
        for _ in range(query.MAX_DEPTH * 8):
            stack.append(tid)
            if tid == 0:
                break
            t = self._t(tid)
            if isinstance(t, (T.Pointer, T.Volatile, T.Const, T.Restrict, T.TypeTag)):
                tid = t.type
            elif isinstance(t, T.FuncProto):
                tid = t.return_type
            elif isinstance(t, T.Array):
                tid = t.type
            else:
                break  # terminal (or unexpected) type
        else:
            raise BTFError(f"BTF type chain from [{stack[0]}] is too long (loop?)")
        self._emit_type_chain(stack, fname, lvl)

    def _emit_mods(self, decls: List[int]) -> None:
        while decls:
            t = self._t(decls[-1])
            if isinstance(t, T.Volatile):
                self._p("volatile ")
            elif isinstance(t, T.Const):
                self._p("const ")
            elif isinstance(t, T.Restrict):
                self._p("restrict ")
            else:
                return
            decls.pop()

    def _drop_mods(self, decls: List[int]) -> None:
        while decls and isinstance(self._t(decls[-1]), _MODS):
            decls.pop()

    def _emit_name(self, name: str, last_was_ptr: bool) -> None:
        self._p(f"{' ' if name and not last_was_ptr else ''}{name}")

    def _emit_type_chain(self, decls: List[int], fname: str, lvl: int) -> None:
        last_was_ptr = True
        while decls:
            tid = decls.pop()
            if tid == 0:
                self._emit_mods(decls)
                self._p("void")
                last_was_ptr = False
                continue
            t = self._t(tid)
            if isinstance(t, (T.Int, T.Float)):
                self._emit_mods(decls)
                self._p(t.name)
            elif isinstance(t, T.COMPOSITES):
                self._emit_mods(decls)
                if not t.name:
                    self._emit_struct_def(tid, t, lvl)
                else:
                    self._emit_struct_fwd(tid, t)
            elif isinstance(t, T.ENUMS):
                self._emit_mods(decls)
                if not t.name:
                    self._emit_enum_def(tid, t, lvl)
                else:
                    self._p(f"enum {self._type_name(tid)}")
            elif isinstance(t, T.Fwd):
                self._emit_mods(decls)
                self._emit_fwd_def(tid, t)
            elif isinstance(t, T.Typedef):
                self._emit_mods(decls)
                self._p(self._ident_name(tid))
            elif isinstance(t, T.Pointer):
                self._p("*" if last_was_ptr else " *")
            elif isinstance(t, T.Volatile):
                self._p(" volatile")
            elif isinstance(t, T.Const):
                self._p(" const")
            elif isinstance(t, T.Restrict):
                self._p(" restrict")
            elif isinstance(t, T.TypeTag):
                self._emit_mods(decls)
                if t.kflag:
                    self._p(f" __attribute__(({t.name}))")
                else:
                    self._p(f' __attribute__((btf_type_tag("{t.name}")))')
            elif isinstance(t, T.Array):
                self._drop_mods(decls)
                if not decls:
                    self._emit_name(fname, last_was_ptr)
                    self._p(f"[{t.nelems}]")
                    return
                multidim = isinstance(self._t(decls[-1]), T.Array)
                if fname and not last_was_ptr:
                    self._p(" ")
                if not multidim:
                    self._p("(")
                self._emit_type_chain(decls, fname, lvl)
                if not multidim:
                    self._p(")")
                self._p(f"[{t.nelems}]")
                return
            elif isinstance(t, T.FuncProto):
                self._drop_mods(decls)
                if decls:
                    self._p(" (")
                    self._emit_type_chain(decls, fname, lvl)
                    self._p(")")
                else:
                    self._emit_name(fname, last_was_ptr)
                self._p("(")
                params = t.params
                if not params or (len(params) == 1 and params[0].type == 0):
                    self._p("void)")
                    return
                for i, p in enumerate(params):
                    if i:
                        self._p(", ")
                    if i == len(params) - 1 and p.type == 0:
                        self._p("...")
                        break
                    self._emit_type_decl(p.type, p.name, lvl)
                self._p(")")
                return
            else:
                return  # unexpected kind in a declaration chain
            last_was_ptr = isinstance(t, T.Pointer)
        self._emit_name(fname, last_was_ptr)

    # -- public -------------------------------------------------------------------------------------
    def dump_type(self, tid: int) -> str:
        """C declarations of type ``tid`` and what it needs (not emitted before)."""
        if not 0 <= tid < self._n:
            raise BTFError(f"BTF type id {tid} out of range (have {self._n})")
        start = len(self._out)
        self._queue = []
        self._steps_left = _MAX_WALK_STEPS
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 20000))
        try:
            self._order_type(tid, False)
            for q in self._queue:
                self._emit_type(q, 0)
        except RecursionError:
            raise BTFError(f"BTF type [{tid}]: reference chain too deep (loop?)") from None
        finally:
            sys.setrecursionlimit(old)
        return "".join(self._out[start:])

    def dump_all(self, start_id: int = 1) -> str:
        """Every type from ``start_id`` on, in id order (bpftool's order)."""
        for tid in range(start_id, self._n):
            self.dump_type(tid)
        return "".join(self._out)


def dump_c(spec: Spec, *, header: bool = True) -> str:
    """The whole BTF as a C header, as ``bpftool btf dump file F format c``.

    For split BTF only the split part's types are dumped (their base
    types are referred to by name).
    """
    d = CDumper(spec)
    body = d.dump_all(spec.first_id if spec.base is not None else 1)
    return HEADER + body + FOOTER if header else body


__all__ = ["CDumper", "dump_c", "HEADER", "FOOTER"]
