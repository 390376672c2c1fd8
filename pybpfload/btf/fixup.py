"""The fix-ups libbpf applies to an object's BTF before loading it.

* :func:`fixup_datasecs` — clang leaves DATASEC sizes and VAR offsets at 0;
  fill them from the ELF (given as plain mappings, so no ELF code here),
  mark hidden globals static, and sort each DATASEC's variables by offset.
* :func:`mark_funcs_static` — global FUNCs of hidden subprograms become
  static, so the verifier checks them with their caller's context.
* :func:`sanitize` — rewrite kinds the running kernel lacks (see
  :mod:`.features`) into ones it accepts, as ``bpf_object__sanitize_btf``.

All of them edit a :class:`~.encode.Builder` in place.
"""

from __future__ import annotations

from typing import Collection, Mapping

from ..abi.record import Record, _set
from ..errors import BTFError
from . import types as T
from .encode import Builder


class BtfFeatures(Record):
    """What BTF the kernel understands (libbpf's FEAT_BTF_* probes).

    An immutable record (:mod:`pybpfload.abi.record`), not a dataclass: the
    field names are ``BtfFeatures._fields``, ``_asdict()`` gives them as a dict
    and ``pybpfload.abi.record.replace(features, float=False)`` a copy with changes.
    """

    __slots__ = _fields = (
        "btf", "func", "func_global", "datasec", "qmark_datasec", "float", "decl_tag", "type_tag", "enum64",
    )  # fmt: skip
    btf: bool
    func: bool  # FUNC and FUNC_PROTO
    func_global: bool  # FUNC with global linkage
    datasec: bool  # VAR and DATASEC
    qmark_datasec: bool  # DATASEC names starting with '?'
    float: bool
    decl_tag: bool
    type_tag: bool
    enum64: bool

    def __init__(
        self,
        btf: bool = True,
        func: bool = True,
        func_global: bool = True,
        datasec: bool = True,
        qmark_datasec: bool = True,
        float: bool = True,
        decl_tag: bool = True,
        type_tag: bool = True,
        enum64: bool = True,
    ) -> None:
        _set(self, "btf", btf)
        _set(self, "func", func)
        _set(self, "func_global", func_global)
        _set(self, "datasec", datasec)
        _set(self, "qmark_datasec", qmark_datasec)
        _set(self, "float", float)
        _set(self, "decl_tag", decl_tag)
        _set(self, "type_tag", type_tag)
        _set(self, "enum64", enum64)

    @classmethod
    def none(cls) -> "BtfFeatures":
        """A kernel without any of the optional kinds (sanitises everything)."""
        return cls(**{f: False for f in cls._fields})


KCONFIG_SEC = ".kconfig"
KSYMS_SEC = ".ksyms"


def fixup_datasecs(
    btf: Builder,
    section_sizes: Mapping[str, int],
    symbol_offsets: Mapping[str, int],
    hidden: Collection[str] = (),
) -> None:
    """Fill DATASEC sizes and VAR offsets (libbpf's btf_fixup_datasec).

    ``section_sizes``: ELF section name -> size; ``symbol_offsets``: global
    variable symbol -> st_value; ``hidden``: names of symbols with
    STV_HIDDEN/STV_INTERNAL visibility (their VARs become static).
    DATASECs whose size is already set (by the BPF static linker) keep
    their offsets.  A missing section or symbol raises BTFError.
    """
    for t in list(btf):
        if not isinstance(t, T.Datasec):
            continue
        if not t.name:
            raise BTFError(f"DATASEC [{t.id}] has no name")
        size = t.size
        if t.name in (KCONFIG_SEC, KSYMS_SEC):
            btf.replace(t.id, T.replace(t, vars=tuple(sorted(t.vars, key=lambda v: v.offset))))
            continue
        fix_offsets = size == 0
        if fix_offsets:
            size = section_sizes.get(t.name, 0)
            if not size:
                raise BTFError(f"sec {t.name!r}: failed to determine size from ELF")
        new_vars = []
        for v in t.vars:
            var = btf.type(v.type)
            if not isinstance(var, T.Var):
                raise BTFError(f"sec {t.name!r}: unexpected non-VAR type [{v.type}]")
            if var.linkage in (T.LINKAGE_STATIC, T.LINKAGE_EXTERN):
                new_vars.append(v)
                continue
            if var.name not in symbol_offsets:
                raise BTFError(f"sec {t.name!r}: failed to find ELF symbol for VAR {var.name!r}")
            if fix_offsets:
                v = T.replace(v, offset=symbol_offsets[var.name])
            if var.name in hidden:
                btf.replace(var.id, T.replace(var, linkage=T.LINKAGE_STATIC))
            new_vars.append(v)
        new_vars.sort(key=lambda v: v.offset)
        btf.replace(t.id, T.replace(t, size=size, vars=tuple(new_vars)))


def mark_funcs_static(btf: Builder, names: Collection[str]) -> None:
    """Make the global FUNCs called ``names`` static (hidden subprograms)."""
    for t in list(btf):
        if isinstance(t, T.Func) and t.linkage == T.LINKAGE_GLOBAL and t.name in names:
            btf.replace(t.id, T.replace(t, linkage=T.LINKAGE_STATIC))


def needs_sanitizing(features: BtfFeatures) -> bool:
    return not all(
        (
            features.func,
            features.datasec,
            features.func_global,
            features.float,
            features.decl_tag,
            features.type_tag,
            features.enum64,
            features.qmark_datasec,
        )
    )


def _c_ident(name: str) -> str:
    return name.replace(".", "_").replace("?", "_")


def sanitize(btf: Builder, features: BtfFeatures) -> None:
    """Replace kinds the kernel lacks with equivalents it accepts (bpf_object__sanitize_btf).

    VAR/DECL_TAG -> 1-byte INT; DATASEC -> STRUCT of its variables;
    '?'-prefixed DATASEC names -> '_'; FUNC_PROTO -> ENUM and FUNC ->
    TYPEDEF; global FUNC -> static; FLOAT -> empty anonymous STRUCT;
    TYPE_TAG -> CONST; signed ENUM -> unsigned and ENUM64 -> UNION of a
    1-byte placeholder INT.
    """
    placeholder = 0
    for t in list(btf):
        new: T.Type = t
        if (not features.datasec and isinstance(t, T.Var)) or (not features.decl_tag and isinstance(t, T.DeclTag)):
            new = T.Int(t.id, t.name, 1, 0, 0, 8)
        elif not features.datasec and isinstance(t, T.Datasec):
            members = []
            for v in t.vars:
                var = btf.type(v.type)
                members.append(T.Member(var.name, v.type, v.offset * 8, 0))
            new = T.Struct(t.id, _c_ident(t.name), t.size, tuple(members))
        elif not features.qmark_datasec and isinstance(t, T.Datasec) and t.name.startswith("?"):
            new = T.replace(t, name="_" + t.name[1:])
        elif not features.func and isinstance(t, T.FuncProto):
            # kernel-enforced enum size; the params become enumerators (name, type id as value)
            new = T.Enum(t.id, t.name, 4, tuple(T.EnumValue(p.name, p.type) for p in t.params), False)
        elif not features.func and isinstance(t, T.Func):
            new = T.Typedef(t.id, t.name, t.type)
        elif not features.func_global and isinstance(t, T.Func):
            new = T.replace(t, linkage=T.LINKAGE_STATIC)
        elif not features.float and isinstance(t, T.Float):
            new = T.Struct(t.id, "", t.size, ())
        elif not features.type_tag and isinstance(t, T.TypeTag):
            new = T.Const(t.id, "", t.type)
        elif not features.enum64 and isinstance(t, T.Enum):
            new = T.replace(t, signed=False, values=tuple(T.EnumValue(v.name, v.value & 0xFFFFFFFF) for v in t.values))
        elif not features.enum64 and isinstance(t, T.Enum64):
            if placeholder == 0:
                placeholder = btf.add(T.Int(0, "enum64_placeholder", 1, 0, 0, 8))
            new = T.Union(t.id, t.name, t.size, tuple(T.Member(v.name, placeholder, 0, 0) for v in t.values))
        if new is not t:
            btf.replace(t.id, new)


__all__ = ["fixup_datasecs", "mark_funcs_static", "needs_sanitizing", "sanitize", "KCONFIG_SEC", "KSYMS_SEC"]
