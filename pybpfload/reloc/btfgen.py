"""BTFGen: kernel BTF cut down to what some objects' CO-RE relocations use (``bpftool gen min_core_btf``).

A kernel without BTF of its own (no CONFIG_DEBUG_INFO_BTF) can still run
CO-RE objects when the loader is given the kernel's BTF as a file
(``btf_custom_path``, BTFHub's archive).  Such files are megabytes each; the
relocations of a given set of objects only ever look at a few types of
them.  :func:`minimize` keeps just those, as bpftool 7.1's
``gen min_core_btf`` does (bpftool's gen.c, read for its semantics):

- every relocation is resolved against the source BTF by the CO-RE engine
  (:func:`pybpfload.btf.relo_core.calc_relo_insn`, candidates cached and
  pruned per local type and object, as libbpf does); one that matches no
  candidate keeps nothing;
- a field relocation keeps its root type and, along the target's access
  path, each struct or union with just the members taken (anonymous ones
  included) and each member's type; a type is kept with its typedefs,
  modifiers, array element and index types and function prototypes, but a
  pointer without its pointee (which becomes ``void`` unless something else
  keeps it) and a struct or union without members;
- a type relocation (exists, size, kernel id) keeps the type's whole
  chain, through pointers too, structs and unions still without members;
- ``bpf_core_type_matches`` keeps its type with every member, recursively,
  but structs and unions reached through a pointer without members;
- an enum value relocation keeps the enum with all its values.

The kept types are written in their source id order, each struct and union
with its kept members in their order, names and bit offsets as in the
source: the same bytes as bpftool's output.

Where bpftool refuses (``unsupported kind``) a FWD reached through a
typedef or a TYPE_TAG (clang-built kernels' ``__rcu``, ``__user``) on the
way, this module keeps the FWD and looks through the tag as through a
modifier.

:func:`generate` runs over a BTF file or a directory of them (BTFHub's
``.btf.tar.xz`` archives included) and writes one minimized file per
source; ``pybpfload gen min-core-btf`` is its command.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from ..btf import types as T
from ..errors import BPFError, BTFError, ELFError, RelocationError

if TYPE_CHECKING:  # pragma: no cover
    from ..btf.ext import CoreRelo, ExtInfo
    from ..btf.relo_core import Candidate, CoreSpec
    from ..btf.spec import Spec

__all__ = [
    "CoreObject",
    "BTFGen",
    "Generated",
    "read_object",
    "read_btf",
    "minimize",
    "btf_sources",
    "generate",
]

PathLike = Union[str, "os.PathLike[str]"]
KERNEL_BTF = "/sys/kernel/btf/vmlinux"
ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tar.bz2", ".tgz", ".txz", ".tar")
_BTF_MAGIC_LE = b"\x9f\xeb"
_ELF_MAGIC = b"\x7fELF"


# ---------------------------------------------------------------- inputs
class CoreObject:
    """The local BTF and CO-RE records of one BPF object (its .BTF and .BTF.ext)."""

    __slots__ = ("name", "btf", "ext")

    def __init__(self, name: str, btf: "Spec", ext: "ExtInfo") -> None:
        self.name = name
        self.btf = btf
        self.ext = ext

    @property
    def relo_count(self) -> int:
        return sum(len(r) for r in self.ext.core_relos.values())

    def __repr__(self) -> str:
        return f"CoreObject({self.name!r}, {self.relo_count} CO-RE relocations)"


def read_object(obj: Union[PathLike, bytes], name: str = "") -> CoreObject:
    """The .BTF and .BTF.ext of a BPF object file (or its bytes).

    Like bpftool: an object without .BTF.ext is refused; one whose .BTF.ext
    has no CO-RE records contributes nothing.
    """
    from ..btf.ext import parse_ext
    from ..btf.spec import Spec
    from ..elf.reader import read_elf

    if isinstance(obj, bytes):
        data, name = obj, name or "<object>"
    else:
        name = name or os.fspath(obj)
        try:
            with open(obj, "rb") as f:
                data = f.read()
        except OSError as e:
            raise BPFError(f"cannot read BPF object {name}: {e.strerror}") from None
    try:
        elf = read_elf(data)
    except ELFError as e:
        raise ELFError(f"{name}: {e}") from None
    btf_sec = elf.section_by_name(".BTF")
    if btf_sec is None:
        raise BTFError(f"{name}: no .BTF section (built without -g?)")
    ext_sec = elf.section_by_name(".BTF.ext")
    if ext_sec is None:
        raise BTFError(f"{name}: no .BTF.ext section, so no CO-RE relocations (built without -g?)")
    try:
        spec = Spec.from_bytes(btf_sec.data, cache=False)
        ext = parse_ext(ext_sec.data, spec.string)
    except BTFError as e:
        raise BTFError(f"{name}: {e}") from None
    return CoreObject(name, spec, ext)


def _spec_from_bytes(data: bytes, what: str) -> "Spec":
    from ..btf.spec import Spec

    if data[:4] == _ELF_MAGIC:
        data = _elf_btf_section(data, what)
    try:
        return Spec.from_bytes(data, cache=False)
    except BTFError as e:
        raise BTFError(f"{what}: not BTF: {e}") from None


def _elf_btf_section(data: bytes, what: str) -> bytes:
    """The .BTF section of any ELF file (a vmlinux image as well as a BPF object)."""
    import io

    try:
        from elftools.common.exceptions import ELFError as PyELFError
        from elftools.elf.elffile import ELFFile

        sec = ELFFile(io.BytesIO(data)).get_section_by_name(".BTF")
        raw = sec.data() if sec is not None else None
    except (PyELFError, ValueError, OSError) as e:
        raise BTFError(f"{what}: unreadable ELF file: {e}") from None
    if raw is None:
        raise BTFError(f"{what}: ELF file has no .BTF section")
    return bytes(raw)


def _archive_btf(path: str) -> bytes:
    """The one BTF file inside a (BTFHub) tar archive."""
    import lzma
    import tarfile
    import zlib

    try:
        with tarfile.open(path, "r:*") as tf:
            files = [m for m in tf.getmembers() if m.isfile()]
            pick = [m for m in files if m.name.endswith(".btf")] if len(files) > 1 else files
            if len(pick) != 1:
                raise BTFError(f"{path}: expected one BTF file in the archive, found {len(files)} files")
            f = tf.extractfile(pick[0])
            assert f is not None  # a regular member
            return f.read()
    except (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError) as e:
        raise BTFError(f"{path}: unreadable archive: {e}") from None
    except OSError as e:
        raise BTFError(f"cannot read BTF from {path}: {e.strerror or e}") from None


def read_btf(path: PathLike) -> "Spec":
    """A source BTF: raw BTF, an ELF file with a .BTF section, or a tar archive holding one BTF file."""
    from ..btf.spec import Spec

    p = os.fspath(path)
    if os.path.isdir(p):
        raise BTFError(f"cannot read BTF from {p}: Is a directory")
    if p.endswith(ARCHIVE_SUFFIXES):
        return _spec_from_bytes(_archive_btf(p), p)
    try:
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise BTFError(f"cannot read BTF from {p}: {e.strerror}") from None
    if head != _ELF_MAGIC and os.path.abspath(p).startswith("/sys/kernel/btf/"):
        try:  # the running kernel's: mapped, index cached, strings known unique
            return Spec.from_file(p)
        except BTFError as e:
            raise BTFError(f"{p}: {e}") from None
    try:
        with open(p, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BTFError(f"cannot read BTF from {p}: {e.strerror}") from None
    return _spec_from_bytes(data, p)


# ---------------------------------------------------------------- marking
_LEAVES = (T.Kind.UNKN, T.Kind.INT, T.Kind.FLOAT, T.Kind.ENUM, T.Kind.ENUM64)
_COMPOSITE_KINDS = (T.Kind.STRUCT, T.Kind.UNION)
_THROUGH = (T.Kind.TYPEDEF, T.Kind.CONST, T.Kind.VOLATILE, T.Kind.RESTRICT, T.Kind.TYPE_TAG)


class BTFGen:
    """Types and members of one source BTF used by the CO-RE relocations of some objects.

    ``add(obj)`` records an object's relocations; ``encode()`` is the
    minimized BTF.  ``types`` holds the kept type ids (of the source) and
    ``members`` the kept member indices of each kept struct and union.
    """

    def __init__(self, source: "Spec", origin: str = "source BTF") -> None:
        if source.base is not None:
            raise BTFError(f"{origin}: split BTF (a module's) cannot be minimized on its own")
        self.source = source
        self.origin = origin
        self.types: Set[int] = set()
        self.members: Dict[int, Set[int]] = {}
        self._seen: Set[Tuple[int, int]] = set()  # (type id, mode) already walked
        self.relocations = 0  # relocations recorded
        self.resolved = 0  # of which matched a type of the source

    # -- walks ---------------------------------------------------------------------------
    def _unsupported(self, tid: int) -> BTFError:
        kind = self.source.kind_of(tid)
        return BTFError(f"{self.origin}: type [{tid}] of kind {kind.name.lower()} cannot be kept")

    def mark_type(self, tid: int, follow_pointers: bool) -> None:
        """Keep ``tid`` and what it needs: bpftool's btfgen_mark_type."""
        src = self.source
        todo = [tid]
        mode = 1 if follow_pointers else 0
        while todo:
            t = todo.pop()
            if t == 0 or (t, mode) in self._seen or (t, 1) in self._seen:
                continue
            self._seen.add((t, mode))
            kind = src.kind_of(t)
            self.types.add(t)
            if kind in _LEAVES or kind in _COMPOSITE_KINDS or kind == T.Kind.FWD:
                continue
            ty = src.type(t)
            if isinstance(ty, T.Pointer):
                if follow_pointers:
                    todo.append(ty.type)
            elif isinstance(ty, T.MODIFIERS):
                todo.append(ty.type)
            elif isinstance(ty, T.Array):
                todo.extend((ty.index_type, ty.type))
            elif isinstance(ty, T.FuncProto):
                todo.extend(p.type for p in reversed(ty.params))
                todo.append(ty.return_type)
            else:
                raise self._unsupported(t)

    def mark_match(self, tid: int) -> None:
        """Keep ``tid`` with all its members, recursively, composites behind pointers without: btfgen_mark_type_match."""
        src = self.source
        todo: List[Tuple[int, bool]] = [(tid, False)]
        while todo:
            t, behind_ptr = todo.pop()
            mode = 3 if behind_ptr else 2
            if t == 0 or (t, mode) in self._seen or (t, 2) in self._seen:
                continue
            self._seen.add((t, mode))
            kind = src.kind_of(t)
            self.types.add(t)
            if kind in _LEAVES or kind == T.Kind.FWD:
                continue
            ty = src.type(t)
            if isinstance(ty, T.COMPOSITES):
                if behind_ptr:
                    continue
                self.members.setdefault(t, set()).update(range(len(ty.members)))
                todo.extend((m.type, False) for m in reversed(ty.members))
            elif isinstance(ty, T.Pointer):
                todo.append((ty.type, True))
            elif isinstance(ty, T.MODIFIERS):
                todo.append((ty.type, behind_ptr))
            elif isinstance(ty, T.Array):
                todo.extend(((ty.index_type, False), (ty.type, False)))
            elif isinstance(ty, T.FuncProto):
                todo.extend((p.type, False) for p in reversed(ty.params))
                todo.append((ty.return_type, False))
            else:
                raise self._unsupported(t)

    def mark_field(self, target: "CoreSpec") -> None:
        """Keep a field access path: each struct/union with just the members taken (btfgen_record_field_relo)."""
        src = self.source
        tid = target.root_type_id
        self.mark_type(tid, False)
        ty = src.type(tid)
        for idx in target.raw[1:]:
            hops = 0
            while isinstance(ty, T.MODIFIERS):
                tid = ty.type
                ty = src.type(tid)
                hops += 1
                if hops > len(src):
                    raise BTFError(f"{self.origin}: loop of typedefs or modifiers at [{tid}]")
            if isinstance(ty, T.COMPOSITES):
                if idx >= len(ty.members):
                    raise BTFError(f"{self.origin}: member #{idx} of [{tid}] out of range")
                self.members.setdefault(tid, set()).add(idx)
                tid = ty.members[idx].type
                self.mark_type(tid, False)
                ty = src.type(tid)
            elif isinstance(ty, T.Array):
                tid = ty.type
                ty = src.type(tid)
            else:
                raise BTFError(f"{self.origin}: access path through [{tid}] of kind {ty.kind.name.lower()}")

    # -- objects ---------------------------------------------------------------------------
    def record(self, relo: "CoreRelo", target: "CoreSpec") -> None:
        """Keep what one resolved relocation needs of the source (its target spec)."""
        from ..btf.relo_core import is_enumval_based, is_field_based
        from ..btf.ext import CoreReloKind as K

        if is_field_based(relo.kind):
            self.mark_field(target)
        elif relo.kind == K.TYPE_MATCHES:
            self.mark_match(target.root_type_id)
        elif is_enumval_based(relo.kind):
            self.mark_type(target.root_type_id, False)
        elif relo.kind != K.TYPE_ID_LOCAL:  # TYPE_ID_TARGET, TYPE_EXISTS, TYPE_SIZE
            self.mark_type(target.root_type_id, True)

    def add(self, obj: CoreObject) -> None:
        """Resolve every CO-RE relocation of ``obj`` against the source and keep what they use."""
        from ..btf.ext import CoreReloKind as K
        from ..btf.relo_core import Candidates, calc_relo_insn

        targets = Candidates((self.origin, self.source), [])
        cands: Dict[int, List["Candidate"]] = {}
        for sec, relos in obj.ext.core_relos.items():
            for relo in relos:
                try:
                    found: Optional[List["Candidate"]] = None
                    if relo.kind != K.TYPE_ID_LOCAL:
                        found = cands.get(relo.type_id)
                        if found is None:
                            found = cands[relo.type_id] = targets.find(obj.btf, relo.type_id)
                    res = calc_relo_insn(relo, obj.btf, found, "", self.origin)
                    self.relocations += 1
                    if res.target is not None:
                        self.resolved += 1
                        self.record(relo, res.target)
                except (RelocationError, BTFError) as e:
                    raise type(e)(f"{obj.name}: section {sec!r}: {e}") from None

    # -- output ------------------------------------------------------------------------------
    def kept_types(self) -> List[T.Type]:
        """The minimized BTF's types, renumbered from 1 in source id order."""
        src = self.source
        order = sorted(self.types)
        new_id = {old: i for i, old in enumerate(order, 1)}

        def r(tid: int) -> int:
            return new_id.get(tid, 0)

        out: List[T.Type] = []
        for old in order:
            t = src.type(old)
            nid = new_id[old]
            if isinstance(t, T.COMPOSITES):
                keep = sorted(self.members.get(old, ()))
                ms = tuple(T.replace(t.members[i], type=r(t.members[i].type)) for i in keep)
                out.append(type(t)(nid, t.name, t.size, ms, any(m.bitfield_size for m in ms)))
            elif isinstance(t, (T.Pointer, T.Typedef, T.Volatile, T.Const, T.Restrict, T.TypeTag, T.Func, T.Var, T.DeclTag)):
                out.append(T.replace(t, id=nid, type=r(t.type)))
            elif isinstance(t, T.Array):
                out.append(T.replace(t, id=nid, type=r(t.type), index_type=r(t.index_type)))
            elif isinstance(t, T.FuncProto):
                params = tuple(T.replace(p, type=r(p.type)) for p in t.params)
                out.append(T.replace(t, id=nid, return_type=r(t.return_type), params=params))
            elif isinstance(t, T.Datasec):  # pragma: no cover - never marked
                out.append(T.replace(t, id=nid, vars=tuple(T.replace(v, type=r(v.type)) for v in t.vars)))
            else:
                out.append(T.replace(t, id=nid))
        return out

    def encode(self) -> bytes:
        """The minimized BTF blob (raw BTF, as bpftool writes it)."""
        from ..btf.encode import StringTable, encode

        return encode(self.kept_types(), StringTable())


def _as_object(obj: Union[PathLike, bytes, CoreObject]) -> CoreObject:
    return obj if isinstance(obj, CoreObject) else read_object(obj)


def minimize(source: Union["Spec", PathLike], objects: Iterable[Union[PathLike, bytes, CoreObject]]) -> bytes:
    """The BTF of ``source`` cut down to what the CO-RE relocations of ``objects`` use.

    ``source`` is a Spec or a path (:func:`read_btf`); objects are paths,
    ELF bytes or :class:`CoreObject`.
    """
    from ..btf.spec import Spec

    if isinstance(source, Spec):
        gen = BTFGen(source)
    else:
        gen = BTFGen(read_btf(source), os.fspath(source))
    for obj in objects:
        gen.add(_as_object(obj))
    return gen.encode()


# ---------------------------------------------------------------- many sources
class Generated:
    """One source BTF and what became of it."""

    __slots__ = ("source", "output", "types", "size", "error")

    def __init__(self, source: str, output: str, types: int = 0, size: int = 0, error: str = "") -> None:
        self.source = source
        self.output = output
        self.types = types  # types in the minimized BTF (void not counted)
        self.size = size  # bytes written
        self.error = error  # why nothing was written ("" when it was)

    @property
    def ok(self) -> bool:
        return not self.error

    def __repr__(self) -> str:
        if self.error:
            return f"Generated({self.source!r}, error={self.error!r})"
        return f"Generated({self.source!r} -> {self.output!r}, {self.types} types, {self.size} bytes)"


def _output_name(name: str) -> str:
    for suf in ARCHIVE_SUFFIXES:
        if name.endswith(suf) and len(name) > len(suf):
            return name[: -len(suf)]
    return name


def _looks_like_btf(path: str) -> bool:
    if path.endswith(ARCHIVE_SUFFIXES + (".btf",)):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return True  # unreadable: let reading it say why
    return head[:2] == _BTF_MAGIC_LE or head == _ELF_MAGIC


def btf_sources(btf: PathLike, output: PathLike) -> Tuple[List[Tuple[str, str]], List[str]]:
    """(source, output) path pairs for a BTF file or directory, and the files of a directory skipped as not BTF.

    A file goes to ``output`` (into it, under its own name, when ``output``
    is a directory); a directory's BTF files (raw BTF, ELF files with a .BTF
    section, tar archives of one BTF file, found recursively) go to the same
    relative paths under ``output``, archives without their suffix.
    """
    src, out = os.fspath(btf), os.fspath(output)
    if not os.path.exists(src):
        raise BTFError(f"cannot read BTF from {src}: No such file or directory")
    if not os.path.isdir(src):
        if os.path.isdir(out) or out.endswith(os.sep):
            out = os.path.join(out, _output_name(os.path.basename(src)))
        return [(src, out)], []
    if os.path.exists(out) and not os.path.isdir(out):
        raise BPFError(f"{out}: not a directory (the BTF source {src} is one)")
    pairs: List[Tuple[str, str]] = []
    skipped: List[str] = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if not _looks_like_btf(path):
                skipped.append(path)
                continue
            rel = os.path.relpath(path, src)
            pairs.append((path, os.path.join(out, os.path.dirname(rel), _output_name(name))))
    return pairs, skipped


def _write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise BPFError(f"cannot write {path}: {e.strerror}") from None


def _one(objects: Sequence[CoreObject], source: str, output: str, make_dirs: bool = False) -> Generated:
    gen = BTFGen(read_btf(source), source)
    for obj in objects:
        gen.add(obj)
    data = gen.encode()
    parent = os.path.dirname(output)
    if make_dirs and parent and not os.path.isdir(parent):
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            raise BPFError(f"cannot create {parent}: {e.strerror}") from None
    _write(output, data)
    return Generated(source, output, len(gen.types), len(data))


def _one_in_worker(objects: Sequence[str], source: str, output: str) -> Generated:
    try:
        return _one([read_object(o) for o in objects], source, output, make_dirs=True)
    except BPFError as e:
        return Generated(source, output, error=str(e))


def generate(
    objects: Sequence[Union[PathLike, bytes, CoreObject]],
    btf: PathLike = KERNEL_BTF,
    output: PathLike = ".",
    *,
    jobs: int = 1,
    keep_going: bool = False,
) -> List[Generated]:
    """Write the minimized BTF of each source under ``btf`` (a file or a directory) for ``objects``.

    Paths as :func:`btf_sources`.  A directory of N sources takes N
    minimizations; ``jobs`` > 1 runs them in that many processes (objects
    given as paths).  Errors of the objects raise before any source is
    read; an error of a source raises too, unless ``keep_going``, which
    records it in that source's :class:`Generated` and goes on.
    """
    if not objects:
        raise BPFError("no BPF object given")
    read = [_as_object(o) for o in objects]  # errors of the objects first, once
    pairs, _skipped = btf_sources(btf, output)
    results: List[Generated] = []
    paths = [os.fspath(o) for o in objects if not isinstance(o, (bytes, CoreObject))]
    if jobs > 1 and len(pairs) > 1 and len(paths) == len(objects):
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as ex:
            futs = [ex.submit(_one_in_worker, paths, s, o) for s, o in pairs]
            for fut in futs:
                res = fut.result()
                if res.error and not keep_going:
                    for other in futs:
                        other.cancel()
                    raise BPFError(res.error)
                results.append(res)
        return results
    make_dirs = os.path.isdir(os.fspath(btf))  # a tree mirrored; a single file's directory must exist
    for s, o in pairs:
        try:
            results.append(_one(read, s, o, make_dirs))
        except BPFError as e:
            if not keep_going:
                raise
            results.append(Generated(s, o, error=str(e)))
    return results
