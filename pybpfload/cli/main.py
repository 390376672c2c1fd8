"""The ``pybpfload`` command.

Each subcommand handler takes the parsed arguments and returns an exit status.  Errors print one line (and the
verifier log when there is one) and exit non-zero; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from ..errors import BPFError, VerifierError

if TYPE_CHECKING:  # annotations only: a string in Callable[...] costs the process its first compile() (~1 ms)
    import argparse

    Handler = Callable[[argparse.Namespace], int]


def _hex(b: bytes) -> str:
    return " ".join(f"{x:02x}" for x in b)


def _map_open(ref: str) -> Any:
    from ..kernel.maps import Map

    if ref.isdigit():
        return Map.from_id(int(ref), typed=False)  # bytes: formatted here, as bpftool does
    return Map.from_pin(ref, typed=False)


# ---------------------------------------------------------------- prog / map list
def cmd_prog_list(args: argparse.Namespace) -> int:
    import json

    from ..abi.names import prog_type_name
    from ..kernel.program import Program

    rows = []
    for pid in Program.ids():
        try:
            with Program.from_id(pid) as p:
                info = p.info()
        except BPFError:
            continue  # gone meanwhile
        tname = prog_type_name(info.type)
        rows.append({"id": info.id, "type": tname, "name": info.name, "tag": info.tag, "map_ids": list(info.map_ids)})
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            maps = f"  map_ids {','.join(map(str, r['map_ids']))}" if r["map_ids"] else ""
            print(f"{r['id']}: {r['type']}  name {r['name']}  tag {r['tag']}{maps}")
    return 0


def cmd_map_list(args: argparse.Namespace) -> int:
    import json

    from ..kernel.maps import Map

    rows = []
    for mid in Map.ids():
        try:
            with Map.from_id(mid) as m:
                info = m.info()
        except BPFError:
            continue
        rows.append(
            {
                "id": info.id,
                "type": info.type_name,
                "name": info.name,
                "key": info.key_size,
                "value": info.value_size,
                "max_entries": info.max_entries,
                "flags": info.flags,
            }
        )
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(
                f"{r['id']}: {r['type']}  name {r['name']}  key {r['key']}B  value {r['value']}B  "
                f"max_entries {r['max_entries']}  flags {r['flags']:#x}"
            )
    return 0


def _btf_formatter(m: Any) -> Any:
    """(key, value) bytes -> bpftool's "formatted" JSON, from the map's kernel BTF; None without one."""
    info = m.info()
    if not info.btf_id or not (info.btf_key_type_id or info.btf_value_type_id):
        return None
    from ..btf.values import codec, to_json
    from ..syscall.btf_handle import BtfHandle

    with BtfHandle.from_id(info.btf_id) as h:
        spec = h.spec()
    kc = codec(spec, info.btf_key_type_id) if info.btf_key_type_id else None
    vc = codec(spec, info.btf_value_type_id) if info.btf_value_type_id else None

    def fmt(k: bytes, v: Any) -> Dict[str, Any]:
        key = to_json(kc.unpack(k)) if kc is not None else [f"{b:#04x}" for b in k]
        if isinstance(v, list):
            vals = [{"cpu": i, "value": to_json(vc.unpack(x)) if vc is not None else [f"{b:#04x}" for b in x]} for i, x in enumerate(v)]
            return {"key": key, "values": vals}
        return {"key": key, "value": to_json(vc.unpack(v)) if vc is not None else [f"{b:#04x}" for b in v]}

    return fmt


def cmd_map_dump(args: argparse.Namespace) -> int:
    import json

    with _map_open(args.map) as m:
        items = list(m.items())
        fmt = _btf_formatter(m)
        if fmt is not None:  # keys and values typed by the map's BTF, as bpftool formats them
            rows = [fmt(k, v) for k, v in items]
            if args.json:
                print(json.dumps([{**_hex_row(k, v), "formatted": r} for (k, v), r in zip(items, rows)]))
                return 0
            for r in rows:
                if "values" in r:
                    print(f"key: {json.dumps(r['key'])}")
                    for x in r["values"]:
                        print(f"  value (CPU {x['cpu']:02d}): {json.dumps(x['value'])}")
                else:
                    print(f"key: {json.dumps(r['key'])}  value: {json.dumps(r['value'])}")
            print(f"Found {len(items)} element{'s' if len(items) != 1 else ''}")
            return 0
        if args.json:
            out = []
            for k, v in items:
                if isinstance(v, list):
                    out.append({"key": k.hex(), "values": [{"cpu": i, "value": x.hex()} for i, x in enumerate(v)]})
                else:
                    out.append({"key": k.hex(), "value": v.hex()})
            print(json.dumps(out))
        else:
            for k, v in items:
                if isinstance(v, list):
                    print(f"key: {_hex(k)}")
                    for i, x in enumerate(v):
                        print(f"  value (CPU {i:02d}): {_hex(x)}")
                else:
                    print(f"key: {_hex(k)}  value: {_hex(v)}")
            print(f"Found {len(items)} element{'s' if len(items) != 1 else ''}")
    return 0


def _hex_row(k: bytes, v: Any) -> Dict[str, Any]:
    """bpftool -j's raw part of one element: bytes as "0x.." strings."""
    if isinstance(v, list):
        return {"key": [f"{b:#04x}" for b in k], "values": [{"cpu": i, "value": [f"{b:#04x}" for b in x]} for i, x in enumerate(v)]}
    return {"key": [f"{b:#04x}" for b in k], "value": [f"{b:#04x}" for b in v]}


# ---------------------------------------------------------------- objects

def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from ..object import Object
    from ..abi.names import map_type_name, prog_type_name, short_name
    from ..abi.uapi import AttachType

    obj = Object.open(args.object)
    model = obj.model
    progs: List[Dict[str, Any]] = []
    for p in model.programs:
        relocs: Dict[str, int] = {}
        for r in p.relocs:
            relocs[r.kind.value] = relocs.get(r.kind.value, 0) + 1
        progs.append(
            {
                "name": p.name,
                "section": p.section.elf_name,
                "type": prog_type_name(p.prog_type),
                "attach_type": short_name(AttachType, "BPF_", p.expected_attach_type) if p.expected_attach_type else None,
                "insns": p.insn_cnt,
                "subprogram": p.is_subprog,
                "autoload": p.autoload,
                "relocations": relocs,
            }
        )
    maps = [
        {
            "name": m.name,
            "type": map_type_name(m.type),
            "key_size": m.key_size,
            "value_size": m.value_size,
            "max_entries": m.max_entries,
            "flags": m.flags,
            "kind": m.kind.value,
            "pin_path": m.pin_path,
        }
        for m in model.maps
    ]
    variables = [
        {"section": d.name, "name": v.name, "offset": v.offset, "size": v.size} for d in model.datasecs for v in d.vars
    ]
    btf = obj.btf
    info: Dict[str, Any] = {
        "name": obj.name,
        "license": obj.license,
        "kversion": model.kversion,
        "programs": progs,
        "maps": maps,
        "globals": variables,
        "externs": [{"name": e.name, "kind": e.kind.value, "weak": e.is_weak} for e in model.externs],
        "btf": None if btf is None else {"types": len(btf), "size": len(model.btf_raw or b"")},
        "btf_ext": model.btf_ext_raw is not None,
    }
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"object {info['name']}: license {info['license']!r}" + (f", kversion {model.kversion:#x}" if model.kversion else ""))
    print(f"programs ({sum(not pv['subprogram'] for pv in progs)}, subprograms {sum(bool(pv['subprogram']) for pv in progs)}):")
    for pv in progs:
        extra = " subprogram" if pv["subprogram"] else ("" if pv["autoload"] else " autoload off")
        rel = ", ".join(f"{k} {v}" for k, v in sorted(pv["relocations"].items()))
        at = f" attach {pv['attach_type']}" if pv["attach_type"] else ""
        print(f"  {pv['name']}: section {pv['section']!r} type {pv['type']}{at}, {pv['insns']} insns{extra}" + (f"; relocations: {rel}" if rel else ""))
    print(f"maps ({len(maps)}):")
    for m in maps:
        pin = f" pin {m['pin_path']}" if m["pin_path"] else ""
        print(
            f"  {m['name']}: {m['type']} key {m['key_size']}B value {m['value_size']}B max_entries {m['max_entries']} "
            f"flags {m['flags']:#x} ({m['kind']}){pin}"
        )
    if variables:
        print(f"global variables ({len(variables)}):")
        for v in variables:
            print(f"  {v['section']} +{v['offset']}: {v['name']} ({v['size']}B)")
    for e in info["externs"]:
        print(f"extern {e['kind']} {e['name']}" + (" (weak)" if e["weak"] else ""))
    if btf is not None:
        print(f"BTF: {info['btf']['types']} types, {info['btf']['size']} bytes" + (", .BTF.ext present" if info["btf_ext"] else ""))
    return 0


def cmd_disasm(args: argparse.Namespace) -> int:
    from ..elf.insn import disasm
    from ..object import Object

    obj = Object.open(args.object)
    found = False
    for p in obj.model.programs:
        if args.program and p.name != args.program:
            continue
        found = True
        print(f"{p.name} ({p.section.elf_name}{', subprogram' if p.is_subprog else ''}):")
        print(disasm(p.insns, start=p.insn_off, raw=not args.no_raw, annotate=True))
        print()
    if not found:
        print(f"pybpfload: error: no program {args.program!r} in {args.object}", file=sys.stderr)
        return 1
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    """Mirror of `bpftool prog loadall OBJ PIN_DIR [pinmaps MAP_DIR]`."""
    from ..object import Object

    with Object.open(args.object) as obj:
        obj.load()
        obj.pin_programs(args.pin_dir)
        try:
            if args.pinmaps:
                obj.pin_maps(args.pinmaps)
        except BaseException:
            obj.unpin_programs(args.pin_dir)
            raise
        for name, p in obj.programs.items():
            if p.loaded:
                print(f"{name}: id {p.info().id} pinned at {p.pinned_at}")
    return 0


def cmd_btf_dump(args: argparse.Namespace) -> int:
    import json

    from ..btf import Spec
    from ..btf.vmlinux import VMLINUX_PATH, vmlinux_spec

    path = args.file
    if path.endswith(".o"):
        from ..object import Object

        spec = Object.open(path)._file_btf()  # as the file has it, as bpftool's btf dump file shows
        if spec is None:
            print(f"pybpfload: error: {path} has no .BTF section", file=sys.stderr)
            return 1
    elif path == VMLINUX_PATH:
        spec = vmlinux_spec()
    else:
        import os

        base = None
        if os.path.dirname(os.path.abspath(path)) == "/sys/kernel/btf":
            base = vmlinux_spec()  # a module's split BTF
        spec = Spec.from_file(path, base)
    if args.format == "c":
        from ..btf.cdump import dump_c

        sys.stdout.write(dump_c(spec))
    elif args.format == "json":
        from ..btf.query import describe

        out = [{"id": t.id, "kind": t.kind.name, "name": t.name, "description": describe(spec, t.id)} for t in spec]
        print(json.dumps(out))
    else:
        from ..btf.query import describe

        for t in spec:
            print(f"[{t.id}] {t.kind.name} {describe(spec, t.id)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(packets=args.packets)


# ---------------------------------------------------------------- parser
COMMANDS = ("prog", "map", "inspect", "disasm", "load", "btf", "demo", "gen", "core")


def build_parser(command: Optional[str] = None) -> "argparse.ArgumentParser":
    """The whole parser; given the ``command`` about to run (one of COMMANDS), only that
    subcommand's parser: building all of them (and importing the modules of ``gen`` and
    ``core``) was a noticeable part of a short command's start-up."""
    import argparse

    ap = argparse.ArgumentParser(prog="pybpfload", description="A pure-Python eBPF loader (libbpf's semantics).")
    ap.add_argument("--debug", action="store_true", help="show tracebacks and the loader's debug log")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    only = command if command in COMMANDS else None

    def want(name: str) -> bool:
        return only is None or only == name

    if want("prog"):
        prog = sub.add_parser("prog", help="programs loaded in the kernel")
        psub = prog.add_subparsers(dest="prog_command", metavar="SUBCOMMAND")
        pl = psub.add_parser("list", help="every program in the system (like bpftool prog list)")
        pl.add_argument("--json", action="store_true")
        pl.set_defaults(handler=cmd_prog_list)

    if want("map"):
        mp = sub.add_parser("map", help="maps in the kernel")
        msub = mp.add_subparsers(dest="map_command", metavar="SUBCOMMAND")
        ml = msub.add_parser("list", help="every map in the system (like bpftool map list)")
        ml.add_argument("--json", action="store_true")
        ml.set_defaults(handler=cmd_map_list)
        md = msub.add_parser("dump", help="the elements of a map given by id or pin path")
        md.add_argument("map", metavar="PIN_OR_ID")
        md.add_argument("--json", action="store_true")
        md.set_defaults(handler=cmd_map_dump)

    if want("inspect"):
        ins = sub.add_parser("inspect", help="programs, maps, globals, externs and BTF of an object (no root needed)")
        ins.add_argument("object", metavar="OBJ")
        ins.add_argument("--json", action="store_true")
        ins.set_defaults(handler=cmd_inspect)

    if want("disasm"):
        dis = sub.add_parser("disasm", help="disassemble an object's programs, as llvm-objdump -d")
        dis.add_argument("object", metavar="OBJ")
        dis.add_argument("program", metavar="PROG", nargs="?")
        dis.add_argument("--no-raw", action="store_true", help="omit the instruction bytes")
        dis.set_defaults(handler=cmd_disasm)

    if want("load"):
        ld = sub.add_parser("load", help="load an object and pin its programs (like bpftool prog loadall)")
        ld.add_argument("object", metavar="OBJ")
        ld.add_argument("pin_dir", metavar="PIN_DIR")
        ld.add_argument("--pinmaps", metavar="MAP_DIR")
        ld.set_defaults(handler=cmd_load)

    if want("btf"):
        btf = sub.add_parser("btf", help="BTF")
        bsub = btf.add_subparsers(dest="btf_command", metavar="SUBCOMMAND")
        bd = bsub.add_parser("dump", help="dump the BTF of a raw BTF file or an object")
        bd.add_argument("file", metavar="FILE")
        bd.add_argument("--format", choices=("raw", "c", "json"), default="raw")
        bd.set_defaults(handler=cmd_btf_dump)

    if want("demo"):
        demo = sub.add_parser("demo", help="load the bundled xdp_count object, run it on test packets, pin and unpin")
        demo.add_argument("--packets", type=int, default=5)
        demo.set_defaults(handler=cmd_demo)

    if want("gen"):
        from .min_core_btf import add_parser as add_min_core_btf_parser
        from .skeleton import add_parser as add_gen_parser

        add_gen_parser(sub)
        add_min_core_btf_parser(sub)

    if want("core"):
        from .corecheck import add_parser as add_core_parser

        add_core_parser(sub)
    return ap


def _command(argv: List[str]) -> Optional[str]:
    """The subcommand argv names (its first word not an option), None when it names none."""
    for a in argv:
        if a == "--":
            return None
        if not a.startswith("-"):
            return a
    return None


# Subcommands read without argparse when their command line is plain: argparse and what it
# imports (gettext, locale, shutil and its three compressors) are ~5 ms, as much as a short
# command's BPF work.  Each entry: positionals, options taking one value, flags, handler.
# Anything else (--help, an abbreviation, a missing or extra argument, an unknown option)
# is left to argparse, which answers it; tests/test_cli.py checks both read alike.
_PLAIN: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[str, ...], Handler]] = {
    "load": (("object", "pin_dir"), ("--pinmaps",), (), cmd_load),
    "inspect": (("object",), (), ("--json",), cmd_inspect),
}


def parse_plain(argv: List[str]) -> Optional[Any]:
    """The namespace argparse would make of ``argv`` for a plain command line of one of
    the ``_PLAIN`` subcommands; None whenever argparse must read it."""
    debug = bool(argv) and argv[0] == "--debug"
    if debug:
        argv = argv[1:]
    if not argv or argv[0] not in _PLAIN:
        return None
    positionals, valued, flags, handler = _PLAIN[argv[0]]
    ns: Dict[str, Any] = {"debug": debug, "command": argv[0]}
    ns.update((f[2:].replace("-", "_"), False) for f in flags)
    ns.update((o[2:].replace("-", "_"), None) for o in valued)
    given: List[str] = []
    words = iter(argv[1:])
    for word in words:
        if not word.startswith("-"):
            given.append(word)
            continue
        name, eq, value = word.partition("=")
        if name in flags and not eq:
            ns[name[2:].replace("-", "_")] = True
        elif name in valued:
            if not eq:
                value = next(words, "-")
                if value.startswith("-"):
                    return None
            ns[name[2:].replace("-", "_")] = value
        else:
            return None
    if len(given) != len(positionals):
        return None
    ns.update(zip(positionals, given))
    ns["handler"] = handler
    from types import SimpleNamespace

    return SimpleNamespace(**ns)


def run(argv: List[str]) -> int:
    args = parse_plain(argv)
    if args is None:
        ap = build_parser(_command(argv))
        args = ap.parse_args(argv)
        if getattr(args, "handler", None) is None:
            ap.print_help(sys.stderr)
            return 2
    handler: Handler = args.handler
    if args.debug:
        from .. import log

        log.set_print(lambda level, msg: sys.stderr.write(msg))
        return handler(args)
    try:
        return handler(args)
    except VerifierError as e:
        print(f"pybpfload: error: {e.what}: {e.strerror}", file=sys.stderr)
        if e.log:
            print("verifier log:", file=sys.stderr)
            sys.stderr.write(e.log if e.log.endswith("\n") else e.log + "\n")
        return 1
    except BPFError as e:
        print(f"pybpfload: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        print(f"pybpfload: error: {e}", file=sys.stderr)
        return 1
