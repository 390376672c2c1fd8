"""The ``pybpfload`` command.

Each subcommand handler takes the parsed arguments and returns an exit status.  Errors print one line (and the
verifier log when there is one) and exit non-zero; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, List, Optional

from .errors import BPFError, VerifierError

Handler = Callable[[argparse.Namespace], int]


def _hex(b: bytes) -> str:
    return " ".join(f"{x:02x}" for x in b)


def _map_open(ref: str) -> Any:
    from .maps import Map

    if ref.isdigit():
        return Map.from_id(int(ref))
    return Map.from_pin(ref)


# ---------------------------------------------------------------- prog / map list
def cmd_prog_list(args: argparse.Namespace) -> int:
    from .program import Program
    from .syscall._types import ProgType

    rows = []
    for pid in Program.ids():
        try:
            with Program.from_id(pid) as p:
                info = p.info()
        except BPFError:
            continue  # gone meanwhile
        try:
            tname = ProgType(info.type).name[len("BPF_PROG_TYPE_") :].lower()
        except ValueError:
            tname = str(info.type)
        rows.append({"id": info.id, "type": tname, "name": info.name, "tag": info.tag, "map_ids": list(info.map_ids)})
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            maps = f"  map_ids {','.join(map(str, r['map_ids']))}" if r["map_ids"] else ""
            print(f"{r['id']}: {r['type']}  name {r['name']}  tag {r['tag']}{maps}")
    return 0


def cmd_map_list(args: argparse.Namespace) -> int:
    from .maps import Map

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


def cmd_map_dump(args: argparse.Namespace) -> int:
    with _map_open(args.map) as m:
        items = list(m.items())
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


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pybpfload", description="A pure-Python eBPF loader (libbpf's semantics).")
    ap.add_argument("--debug", action="store_true", help="show tracebacks and the loader's debug log")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    prog = sub.add_parser("prog", help="programs loaded in the kernel")
    psub = prog.add_subparsers(dest="prog_command", metavar="SUBCOMMAND")
    pl = psub.add_parser("list", help="every program in the system (like bpftool prog list)")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(handler=cmd_prog_list)

    mp = sub.add_parser("map", help="maps in the kernel")
    msub = mp.add_subparsers(dest="map_command", metavar="SUBCOMMAND")
    ml = msub.add_parser("list", help="every map in the system (like bpftool map list)")
    ml.add_argument("--json", action="store_true")
    ml.set_defaults(handler=cmd_map_list)
    md = msub.add_parser("dump", help="the elements of a map given by id or pin path")
    md.add_argument("map", metavar="PIN_OR_ID")
    md.add_argument("--json", action="store_true")
    md.set_defaults(handler=cmd_map_dump)

    return ap


def run(argv: List[str]) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    handler: Optional[Handler] = getattr(args, "handler", None)
    if handler is None:
        ap.print_help(sys.stderr)
        return 2
    if args.debug:
        from . import log

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
    except OSError as e:
        print(f"pybpfload: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
