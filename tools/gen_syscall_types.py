#!/usr/bin/env python3
"""Generate pybpfload/abi/uapi.py from kernel BTF.

    python3 tools/gen_syscall_types.py [BTF_FILE] > pybpfload/abi/uapi.py
    python3 tools/gen_syscall_types.py --pyi [BTF_FILE] > pybpfload/abi/uapi.pyi

BTF_FILE defaults to /sys/kernel/btf/vmlinux.  Each anonymous member of
``union bpf_attr`` becomes one ctypes.Structure named after the command(s)
that use it; the info structs and the UAPI enums are emitted as well.  The
layout of every emitted struct is checked against the BTF before the file is
written: a mismatch is a generator bug and aborts.

The structs are made on first use (the module's ``__getattr__`` runs the
class statement, after those of the structs it nests): a process uses a few
of ~80, and making a ctypes class costs ~10 us.  ``--pyi`` writes the stub
that declares them all for type checkers.

The generator is a development tool (as cilium/ebpf's gentypes): the package
imports only its output.
"""

from __future__ import annotations

import ctypes
import hashlib
import sys
from typing import Dict, List, Tuple

sys.path.insert(0, __file__.rsplit("/tools/", 1)[0])

from pybpfload.btf import Spec  # noqa: E402
from pybpfload.btf import types as T  # noqa: E402

# First field name of an anonymous member of union bpf_attr -> class name.
ANON_ATTR_NAMES = {
    "map_type": "MapCreateAttr",
    "map_fd": "MapElemAttr",
    "prog_type": "ProgLoadAttr",
    "pathname": "ObjAttr",
    "target_fd": "ProgAttachAttr",
    "start_id": "GetIdAttr",
    "btf": "BtfLoadAttr",
}
NAMED_ATTR_NAMES = {
    "batch": "MapBatchAttr",
    "test": "ProgTestRunAttr",
    "info": "ObjGetInfoAttr",
    "query": "ProgQueryAttr",
    "raw_tracepoint": "RawTracepointOpenAttr",
    "task_fd_query": "TaskFdQueryAttr",
    "link_create": "LinkCreateAttr",
    "link_update": "LinkUpdateAttr",
    "link_detach": "LinkDetachAttr",
    "enable_stats": "EnableStatsAttr",
    "iter_create": "IterCreateAttr",
    "prog_bind_map": "ProgBindMapAttr",
    "token_create": "TokenCreateAttr",
}
INFO_STRUCTS = {
    "bpf_prog_info": "ProgInfo",
    "bpf_map_info": "MapInfo",
    "bpf_btf_info": "BtfInfo",
    "bpf_link_info": "LinkInfo",
    "bpf_token_info": "TokenInfo",
}
ENUMS = {
    "bpf_cmd": "Cmd",
    "bpf_map_type": "MapType",
    "bpf_prog_type": "ProgType",
    "bpf_attach_type": "AttachType",
    "bpf_link_type": "LinkType",
    "bpf_func_id": "FuncId",
    "bpf_stats_type": "StatsType",
}
# Anonymous UAPI enums of flag bits, found by their first enumerator -> class name (enum.IntFlag).
FLAG_ENUMS = {
    # map_flags of BPF_MAP_CREATE; its BPF_F_TOKEN_FD is also the bit of prog_flags,
    # btf_flags and open_flags that says a token fd is passed
    "BPF_F_NO_PREALLOC": "MapFlag",
}


def strip(spec: Spec, tid: int) -> T.Type:
    t = spec.type(tid)
    while isinstance(t, (T.Typedef, T.Volatile, T.Const, T.Restrict, T.TypeTag)):
        t = spec.type(t.type)
    return t


def ctype_of(spec: Spec, tid: int, nested: Dict[int, str], context: str) -> Tuple[str, int, int]:
    """(ctypes expression, size, alignment) of a field type."""
    t = strip(spec, tid)
    if isinstance(t, T.Int):
        if t.name == "char":
            return "ctypes.c_char", 1, 1
        base = {1: "int8", 2: "int16", 4: "int32", 8: "int64"}[t.size]
        return f"ctypes.c_{'' if t.signed else 'u'}{base}", t.size, t.size
    if isinstance(t, (T.Enum, T.Enum64)):
        base = {1: "int8", 2: "int16", 4: "int32", 8: "int64"}[t.size]
        return f"ctypes.c_u{base}", t.size, t.size
    if isinstance(t, T.Pointer):
        return "ctypes.c_uint64", 8, 8
    if isinstance(t, T.Array):
        expr, size, align = ctype_of(spec, t.type, nested, context)
        return f"({expr} * {t.nelems})", size * t.nelems, align
    if isinstance(t, (T.Struct, T.Union)):
        return nested[t.id], t.size, struct_align(spec, t)
    raise SystemExit(f"{context}: unsupported field type {t!r}")


def struct_align(spec: Spec, t: T.Type) -> int:
    if isinstance(t, (T.Struct, T.Union)):
        return max([struct_align(spec, strip(spec, m.type)) for m in t.members] or [1])
    if isinstance(t, T.Array):
        return struct_align(spec, strip(spec, t.type))
    if isinstance(t, (T.Int, T.Enum, T.Enum64)):
        return t.size
    if isinstance(t, T.Pointer):
        return 8
    return 1


class Emitter:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.out: List[str] = []
        self.checks: List[Tuple[str, int]] = []  # (class name, BTF type id)
        self.emitted: Dict[int, str] = {}
        self.stubs: List[str] = []
        self.names: List[str] = []  # in emission order (nested first)
        self.deps: Dict[str, Tuple[str, ...]] = {}  # class -> the classes its fields use

    def emit_composite(self, t: T.Type, name: str) -> str:
        """Emit class `name` for struct/union t (nested anonymous types first)."""
        assert isinstance(t, (T.Struct, T.Union))
        nested: Dict[int, str] = {}
        anon_count = 0
        for m in t.members:
            mt = strip(self.spec, m.type)
            inner = mt
            while isinstance(inner, T.Array):
                inner = strip(self.spec, inner.type)
            if isinstance(inner, (T.Struct, T.Union)) and inner.id not in nested:
                if inner.name:
                    cls = self.emitted.get(inner.id) or self.emit_composite(inner, "_" + inner.name)
                else:
                    suffix = m.name or f"u{anon_count}"
                    if not m.name:
                        anon_count += 1
                    cls = self.emit_composite(inner, f"{name}_{suffix}")
                nested[inner.id] = cls
        fields: List[str] = []
        anonymous: List[str] = []
        offset = 0  # bits, only meaningful for structs
        pad = 0
        is_union = isinstance(t, T.Union)
        for m in t.members:
            fname = m.name
            expr, size, align = ctype_of(self.spec, m.type, nested, f"{name}.{m.name}")
            if not fname:
                if m.bitfield_size:
                    fname = f"_pad{pad}"
                    pad += 1
                else:
                    fname = f"_u{len(anonymous)}"
                    anonymous.append(fname)
            if not is_union:
                if m.bitfield_size:
                    fields.append(f"({fname!r}, {expr}, {m.bitfield_size}),")
                    offset = m.bit_offset + m.bitfield_size
                    continue
                want = m.bit_offset
                if want % 8:
                    raise SystemExit(f"{name}.{fname}: unaligned non-bitfield member")
                aligned = -(-offset // (align * 8)) * align * 8
                if want > aligned:
                    fields.append(f"('_pad{pad}', ctypes.c_ubyte * {(want - offset) // 8}),")
                    pad += 1
                offset = want + size * 8
            fields.append(f"({fname!r}, {expr}),")
        if not is_union:
            align = struct_align(self.spec, t)
            natural = -(-offset // (align * 8)) * align
            if t.size > natural:
                fields.append(f"('_pad{pad}', ctypes.c_ubyte * {t.size - offset // 8}),")
        base = "ctypes.Union" if is_union else "ctypes.Structure"
        lines = [f"def _make_{name}() -> type:", f"    class {name}({base}):"]
        if anonymous:
            lines.append(f"        _anonymous_ = {tuple(anonymous)!r}")
        lines.append("        _fields_ = [")
        lines.extend("            " + f for f in fields)
        lines.append("        ]")
        lines.append("")
        lines.append(f"    return {name}")
        self.out.append("\n".join(lines) + "\n")
        self.stubs.append(f"class {name}({base}): ...")
        self.names.append(name)
        self.deps[name] = tuple(dict.fromkeys(nested.values()))
        self.emitted[t.id] = name
        self.checks.append((name, t.id))
        return name


def verify(spec: Spec, namespace: Dict[str, object], checks: List[Tuple[str, int]]) -> None:
    for cls_name, tid in checks:
        cls = namespace[cls_name]
        t = spec.type(tid)
        if ctypes.sizeof(cls) != t.size:  # type: ignore[arg-type]
            raise SystemExit(f"{cls_name}: size {ctypes.sizeof(cls)} != BTF {t.size}")  # type: ignore[arg-type]
        for m in t.members:
            if not m.name or m.bitfield_size:
                continue
            off = getattr(cls, m.name).offset
            if off * 8 != m.bit_offset:
                raise SystemExit(f"{cls_name}.{m.name}: offset {off} != BTF {m.bit_offset // 8}")


def main(argv: List[str]) -> int:
    flags = [a for a in argv[1:] if a.startswith("--")]
    args = [a for a in argv[1:] if not a.startswith("--")]
    path = args[0] if args else "/sys/kernel/btf/vmlinux"
    with open(path, "rb") as f:
        raw = f.read()
    spec = Spec.from_bytes(raw)
    em = Emitter(spec)

    attr = spec.find("bpf_attr", T.Union)
    attr_classes: List[Tuple[str, str]] = []
    for m in attr.members:
        mt = strip(spec, m.type)
        if not isinstance(mt, T.Struct):
            continue
        if m.name:
            cls = NAMED_ATTR_NAMES.get(m.name)
        else:
            first = mt.members[0]
            key = first.name
            if not key:  # an anonymous union first: name after its first member
                key = strip(spec, first.type).members[0].name  # type: ignore[attr-defined]
            cls = ANON_ATTR_NAMES.get(key)
        if cls is None:
            print(f"# skipped bpf_attr member {m.name or mt.members[0].name!r}", file=sys.stderr)
            continue
        em.emit_composite(mt, cls)
        attr_classes.append((m.name or "", cls))
    for sname, cls in INFO_STRUCTS.items():
        em.emit_composite(spec.find(sname, T.Struct), cls)

    enum_src: List[str] = []
    flag_stubs: List[str] = []
    for ename, cls in ENUMS.items():
        e = spec.find(ename, T.Enum)
        enum_src.append(f"class {cls}(IntEnum):")  # abi/intenum.py: enum.IntEnum's behaviour, made ~50x faster
        enum_src.append(f'    """enum {ename} of the kernel\'s UAPI (linux/bpf.h), values from kernel BTF."""')
        enum_src.append("")
        for v in e.values:
            if v.name.startswith("__") or v.name.startswith("MAX_"):
                continue
            enum_src.append(f"    {v.name} = {v.value}")
        enum_src.append("")
        enum_src.append("")
    for first, cls in FLAG_ENUMS.items():
        fe = next((t for t in spec if isinstance(t, T.Enum) and not t.name and t.values and t.values[0].name == first), None)
        if fe is None:
            raise SystemExit(f"no anonymous enum starting with {first} in the BTF")
        # an enum.IntFlag costs ~20 us a member to make: made on first use, as the structs
        flag = [f"class {cls}(enum.IntFlag):"]
        flag.append(f'    """The anonymous enum of {first}... of the kernel\'s UAPI (linux/bpf.h), values from kernel BTF."""')
        flag.append("")
        flag.extend(f"    {v.name} = {v.value}" for v in fe.values)
        flag_stubs.append("\n".join(flag) + "\n")
        em.out.insert(0, f"def _make_{cls}() -> type:\n" + "".join(f"    {line}\n" if line else "\n" for line in flag) + f"\n    return {cls}\n")
        em.names.insert(0, cls)
        em.deps[cls] = ()

    sha = hashlib.sha256(raw).hexdigest()[:16]
    enums = "\n".join(enum_src).rstrip("\n")
    table = "ATTR_MEMBERS = {\n" + "".join(f"    {cls!r}: {name!r},\n" for name, cls in attr_classes) + "}\n"
    if "--pyi" in flags:
        sys.stdout.write(
            '"""Type stub of uapi.py (whose structs are made on first use).\n\n'
            "GENERATED by tools/gen_syscall_types.py --pyi from kernel BTF; do not edit.\n"
            f"Source BTF sha256: {sha}\n"
            '"""\n\n'
            "import ctypes\nimport enum\nfrom typing import Dict\n\nfrom .intenum import IntEnum\n\n\n"
            + enums + "\n\n\n" + "\n\n".join(flag_stubs) + "\n\n" + "\n".join(em.stubs) + "\n\nATTR_MEMBERS: Dict[str, str]\n"
        )
        return 0
    header = (
        '"""Layouts of union bpf_attr, the bpf_*_info structs and the UAPI enums.\n\n'
        "GENERATED by tools/gen_syscall_types.py from kernel BTF; do not edit.\n"
        f"Source BTF sha256: {sha}\n\n"
        "The structs are made on first use (``__getattr__`` below): a process uses a\n"
        "few of them, and each ctypes class costs ~10 us to make.  uapi.pyi declares\n"
        "them for type checkers.\n"
        '"""\n\n'
        "# flake8: noqa\n"
        "import _thread\nimport ctypes\nimport enum\nfrom typing import Any, Callable, Dict, List, Tuple\n\n"
        "from .intenum import IntEnum\n\n\n"
    )
    make = "_MAKE: Dict[str, Tuple[Callable[[], type], Tuple[str, ...]]] = {\n" + "".join(
        f"    {n!r}: (_make_{n}, {em.deps[n]!r}),\n" for n in em.names
    ) + "}\n"
    lazy = (
        "_LOCK = _thread.RLock()\n\n\n"
        "def __getattr__(name: str) -> Any:\n"
        "    entry = _MAKE.get(name)\n"
        "    if entry is None:\n"
        '        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")\n'
        "    with _LOCK:  # one class per name, whichever thread asks first\n"
        "        made = globals()\n"
        "        if name not in made:\n"
        "            for dep in entry[1]:\n"
        "                __getattr__(dep)\n"
        "            made[name] = entry[0]()\n"
        "        return made[name]\n\n\n"
        "def __dir__() -> List[str]:\n"
        "    return sorted(set(globals()) | set(_MAKE))\n"
    )
    body = "\n\n".join(em.out)
    src = header + enums + "\n\n\n" + body + "\n\n" + make + "\n\n" + lazy + "\n\n" + table
    ns: Dict[str, object] = {"__name__": "pybpfload.abi.uapi", "__package__": "pybpfload.abi"}  # its relative import
    exec(compile(src, "uapi.py", "exec"), ns)
    build = ns["__getattr__"]
    verify(spec, {n: build(n) for n in em.names}, em.checks)  # type: ignore[operator]
    for first, cls in FLAG_ENUMS.items():
        assert getattr(build(cls), first) > 0  # type: ignore[operator]
    sys.stdout.write(src)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
