"""``extern`` symbols: ``__kconfig`` values and ``__ksym`` kernel symbols / kfuncs.

Collected as libbpf's bpf_object__collect_externs does: every undefined
global symbol without type is an extern, described by a BTF VAR (or FUNC,
for kfuncs) of extern linkage inside DATASEC ``.kconfig`` or ``.ksyms``.
kconfig externs get their offsets in the ``.kconfig`` map here.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from ..btf import Spec
from ..btf import types as T
from ..errors import BTFError, ELFError
from .btfutil import align_of, resolve_size, skip_mods
from .model import ExternKind, ExternSpec, KcfgType
from .reader import STB_WEAK, ElfFile

__all__ = ["collect_externs", "KCONFIG_SEC", "KSYMS_SEC", "essential_name"]

KCONFIG_SEC = ".kconfig"
KSYMS_SEC = ".ksyms"


def essential_name(name: str) -> str:
    """``name`` without a ``___flavor`` suffix (bpf_core_essential_name_len)."""
    i = name.rfind("___")
    if i > 0:
        return name[:i]
    return name


def _kcfg_type(btf: Spec, tid: int) -> Tuple[Optional[KcfgType], bool]:
    _, t = skip_mods(btf, tid)
    if isinstance(t, T.Int):
        if t.encoding & T.INT_BOOL:
            return (KcfgType.BOOL if t.size == 1 else None), False
        signed = bool(t.encoding & T.INT_SIGNED)
        if t.size == 1:
            return KcfgType.CHAR, signed
        if t.size < 1 or t.size > 8 or t.size & (t.size - 1):
            return None, signed
        return KcfgType.INT, signed
    if isinstance(t, T.Enum):
        if t.size != 4 or t.name != "libbpf_tristate":
            return None, False
        return KcfgType.TRISTATE, False
    if isinstance(t, T.Enum64):
        return (KcfgType.TRISTATE if t.name == "libbpf_tristate" else None), False
    if isinstance(t, T.Array):
        if t.nelems == 0 or _kcfg_type(btf, t.type)[0] is not KcfgType.CHAR:
            return None, False
        return KcfgType.CHAR_ARR, False
    return None, False


def _find_extern_btf(btf: Spec, name: str) -> int:
    for tid in sorted(btf.find_ids(name)):
        t = btf.type(tid)
        if isinstance(t, T.Var):
            if t.linkage != T.LINKAGE_EXTERN:
                raise BTFError(f"extern {name!r}: its BTF VAR [{tid}] is not extern")
            return tid
        if isinstance(t, T.Func):
            if t.linkage != T.LINKAGE_EXTERN:
                raise BTFError(f"extern {name!r}: its BTF FUNC [{tid}] is not extern")
            return tid
    raise BTFError(f"extern {name!r}: no BTF VAR or FUNC describes it")


def _datasec_of(btf: Spec, datasecs: List[T.Datasec], tid: int) -> T.Datasec:
    for d in datasecs:
        for v in d.vars:
            if v.type == tid:
                return d
    raise BTFError(f"extern BTF type [{tid}] is in no DATASEC")


def collect_externs(elf: ElfFile, btf: Optional[Spec], datasecs: List[T.Datasec]) -> Tuple[ExternSpec, ...]:
    """Every extern of the object, sorted as libbpf sorts them; kconfig offsets filled in."""
    raw = []
    for sym in elf.symbols:
        if not sym.is_extern or not sym.name:
            continue
        if btf is None:
            raise ELFError(f"extern {sym.name!r} needs BTF, and the object has none")
        tid = _find_extern_btf(btf, sym.name)
        t = btf.type(tid)
        sec = _datasec_of(btf, datasecs, tid)
        name = t.name
        weak = sym.bind == STB_WEAK
        if sec.name == KCONFIG_SEC:
            if isinstance(t, T.Func):
                raise ELFError(f"extern function {name!r} cannot be in {KCONFIG_SEC}")
            assert isinstance(t, T.Var)
            size = resolve_size(btf, t.type)
            if size <= 0:
                raise BTFError(f"extern (kcfg) {name!r}: size {size}")
            align = align_of(btf, t.type)
            ktype, signed = _kcfg_type(btf, t.type)
            if ktype is None:
                raise ELFError(f"extern (kcfg) {name!r}: unsupported type")
            raw.append(
                ExternSpec(
                    name,
                    ExternKind.KCONFIG,
                    sym.index,
                    tid,
                    sec.id,
                    weak,
                    essential_name(name),
                    kcfg_type=ktype,
                    kcfg_size=size,
                    kcfg_align=align,
                    kcfg_signed=signed,
                )  # fmt: skip
            )
        elif sec.name == KSYMS_SEC:
            is_func = isinstance(t, T.Func)
            assert isinstance(t, (T.Func, T.Var))
            type_id = skip_mods(btf, t.type)[0]
            raw.append(
                ExternSpec(
                    name,
                    ExternKind.KSYM,
                    sym.index,
                    tid,
                    sec.id,
                    weak,
                    essential_name(name),
                    ksym_type_id=type_id,
                    is_func=is_func,
                )  # fmt: skip
            )
        else:
            raise ELFError(f"extern {name!r} is in section {sec.name!r}: only {KCONFIG_SEC} and {KSYMS_SEC} are known")

    def key(e: ExternSpec) -> tuple:  # type: ignore[type-arg]
        if e.kind is ExternKind.KCONFIG:
            return (0, -e.kcfg_align, e.kcfg_size, e.name.encode())
        return (1, 0, 0, e.name.encode())

    raw.sort(key=key)
    out = []
    off = 0
    from ..abi.record import replace

    for e in raw:
        if e.kind is ExternKind.KCONFIG:
            start = (off + e.kcfg_align - 1) // e.kcfg_align * e.kcfg_align
            off = start + e.kcfg_size
            e = replace(e, kcfg_offset=start)
        out.append(e)
    return tuple(out)


def kconfig_map_size(externs: Tuple[ExternSpec, ...]) -> int:
    """Value size of the .kconfig map: end of the last kconfig extern (0: no map)."""
    last = [e for e in externs if e.kind is ExternKind.KCONFIG]
    if not last:
        return 0
    return last[-1].kcfg_offset + last[-1].kcfg_size
