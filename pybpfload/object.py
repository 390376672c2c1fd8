"""BPF objects: open an ELF file into programs and maps (libbpf's bpf_object__open).

``Object.open(path, **options)`` and ``Object.open_mem(data, **options)``
read the object with no syscalls beyond reading the file: programs and
maps are unloaded :class:`~pybpfload.kernel.program.Program` and
:class:`~pybpfload.kernel.maps.Map` definitions whose attributes can be changed
before load.  The pure ELF model (relocations, subprograms, BTF and .BTF.ext
bytes, data sections, externs) stays reachable as ``obj.model`` for the
loader.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Tuple

from ._strict import Strict
from .errors import BPFOSError, ParseError, StateError

if TYPE_CHECKING:  # pragma: no cover
    from .btf import Spec
    from .elf.model import ElfModel, ExternSpec, MapSpec, ProgramSpec
    from .kernel.globalvars import SectionVars
    from .kernel.maps import Map
    from .kernel.program import Program
    from .syscall.token import Token

__all__ = ["Object", "running_kernel_version", "parse_kconfig"]


def running_kernel_version() -> int:
    """KERNEL_VERSION of the running kernel, as libbpf computes it (see
    :func:`pybpfload.syscall.features.running_kernel_version`; imported only when
    asked, so opening an object does not import the syscall layer)."""
    from .syscall.features import running_kernel_version as version

    return version()

BPF_OBJ_NAME_LEN = 16
# read by open() when bpf_token_path is not given (syscall.token.TOKEN_PATH_ENV: opening imports no syscall layer)
TOKEN_PATH_ENV = "LIBBPF_BPF_TOKEN_PATH"
PATH_MAX = 4096
_LOG_LEVEL_BITS = 1 | 2 | 4  # BPF_LOG_LEVEL1 | BPF_LOG_LEVEL2 | BPF_LOG_STATS


def parse_kconfig(text: str) -> Dict[str, str]:
    """``CONFIG_X=value`` lines as a dict, read as libbpf reads a kconfig override.

    Lines that do not start with ``CONFIG_`` are ignored; a CONFIG_ line
    without ``=`` or without a value is an error.  The first value of a
    name wins.
    """
    out: Dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.startswith("CONFIG_"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ParseError(f"kconfig line {n}: {line!r} has no '='")
        if not value:
            raise ParseError(f"kconfig line {n}: {line!r} has no value")
        out.setdefault(name, value)
    return out


def _check_path_option(name: str, value: Optional[str]) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value or "\0" in value:
        raise ParseError(f"option {name}: expected a non-empty path, got {value!r}")
    if len(value.encode()) >= PATH_MAX:
        raise ParseError(f"option {name}: path longer than {PATH_MAX - 1} bytes")


class Object(Strict):
    """An opened BPF ELF object: programs and maps defined, nothing loaded yet."""

    def __init__(
        self,
        model: "ElfModel",
        name: str,
        *,
        path: Optional[str] = None,
        relaxed_maps: bool = False,
        pin_root_path: Optional[str] = None,
        kconfig: Optional[str] = None,
        btf_custom_path: Optional[str] = None,
        kernel_log_level: int = 0,
        typed: bool = True,
        bpf_token_path: Optional[str] = None,
    ) -> None:
        from .kernel.program import Program

        self.model = model
        self.name = name
        self.path = path
        self.relaxed_maps = relaxed_maps
        self.pin_root_path = pin_root_path
        self.kconfig = kconfig
        self.kconfig_values: Dict[str, str] = parse_kconfig(kconfig) if kconfig is not None else {}
        self.btf_custom_path = btf_custom_path
        self.kernel_log_level = kernel_log_level
        # as opened: the option, else LIBBPF_BPF_TOKEN_PATH; "" no token, None the optional /sys/fs/bpf attempt
        self.bpf_token_path = bpf_token_path
        self._token: Optional["Token"] = None  # made by load(), closed by close()
        self._kversion: Optional[int] = model.kversion
        self._btf: Optional["Spec"] = None  # with libbpf's open-time fix-ups
        self._btf_file: Optional["Spec"] = None  # as in the file
        self._loaded = False  # set by the loader
        self._closed = False
        self._btf_handle: Optional[Any] = None  # the object's BTF in the kernel, after load
        self._linked: Dict[str, Any] = {}  # program name -> LinkedProgram, after load
        self._auto_links: List[Any] = []  # what attach_all() made: close() detaches them (skeleton destroy)

        from . import log

        progs: Dict[str, Program] = {}
        self._prog_specs: Dict[str, "ProgramSpec"] = {}
        for spec in model.programs:
            log.debug(
                "elf: section '%s': %s '%s', %d insns, %d relocations",
                spec.section.elf_name,
                "subprogram" if spec.is_subprog else "program",
                spec.name,
                spec.insn_cnt,
                len(spec.relocs),
            )
            if spec.is_subprog:
                continue
            sec = spec.section
            p = Program(
                spec.name,
                sec.prog_type,
                spec.insns,
                model.license,
                expected_attach_type=sec.expected_attach_type,
                flags=sec.prog_flags,
                kern_version=model.kversion or 0,
                section_name=sec.name,
                autoload=sec.autoload,
                attach_target=sec.attach_target,
                log_level=kernel_log_level,
            )
            progs.setdefault(spec.name, p)
            self._prog_specs.setdefault(spec.name, spec)
        maps: Dict[str, "Map"] = {}
        self._map_specs: Dict[str, "MapSpec"] = {}
        for ms in model.maps:
            log.debug(
                "elf: map '%s' (%s): type %d, key %d, value %d, max_entries %d, flags %#x",
                ms.name,
                ms.kind.value,
                ms.type,
                ms.key_size,
                ms.value_size,
                ms.max_entries,
                ms.flags,
            )
            m = _make_map(ms)
            if ms.name not in maps:
                maps[ms.name] = m
                self._map_specs[ms.name] = ms
        self._programs = progs
        self._maps = maps
        # internal maps are found by their section too (".rodata", ".data.custom"), as libbpf's find_map_by_name
        self._map_by_section = {ms.real_name: ms.name for ms in model.maps if ms.real_name and ms.name in maps}
        self._programs_view = _NamedView(progs, "program", {}, name)
        self._maps_view = _NamedView(maps, "map", self._map_by_section, name)
        # typed maps (m.typed = True) decode with the object's BTF, fetched on first use
        if model.btf_raw is not None:
            import weakref

            ref = weakref.ref(self)

            def btf_getter() -> Optional["Spec"]:
                o = ref()
                return o.btf if o is not None else None

            for m in maps.values():
                m.__dict__["_btf_getter"] = btf_getter  # also for typed ring / perf buffer records
                if typed and (m.btf_key_type_id or m.btf_value_type_id):
                    m._type_lazily()

    # ------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        path: "os.PathLike[str] | str",
        *,
        object_name: Optional[str] = None,
        relaxed_maps: bool = False,
        pin_root_path: Optional[str] = None,
        kconfig: Optional[str] = None,
        btf_custom_path: Optional[str] = None,
        kernel_log_level: int = 0,
        typed: bool = True,
        bpf_token_path: Optional[str] = None,
    ) -> "Object":
        """Open a BPF ELF file (bpf_object__open_file with bpf_object_open_opts).

        ``object_name`` replaces the name derived from the file name;
        ``relaxed_maps`` ignores unknown fields of map definitions;
        ``pin_root_path`` is the directory of maps pinned by name (default
        /sys/fs/bpf); ``kconfig`` overrides /proc/config.gz for __kconfig
        externs (``"CONFIG_X=y\\n..."``); ``btf_custom_path`` is the kernel BTF
        used for CO-RE; ``kernel_log_level`` is the verifier log level of
        every program; ``typed`` (the default) decodes every map's keys and values
        with their BTF types (``map.typed``; ``typed=False``: bytes, and ``map.raw``
        is always bytes).  Invalid options raise :class:`ParseError` here.

        ``bpf_token_path`` is a bpffs mount to create a BPF token from (Linux 6.9+,
        in a user namespace the bpffs delegates to): :meth:`load` then creates maps,
        BTF and programs and runs its feature probes through the token, and fails if
        it cannot be made.  Unset, the ``LIBBPF_BPF_TOKEN_PATH`` environment variable
        is read instead; ``""`` (from either) makes no token; with neither, load tries
        /sys/fs/bpf and goes on without a token when that gives none — libbpf's rules.
        """
        spath = os.fspath(path)
        _check_path_option("path", spath)
        opts = _check_options(object_name, relaxed_maps, pin_root_path, kconfig, btf_custom_path, kernel_log_level, bpf_token_path)
        opts["typed"] = bool(typed)
        try:
            with open(spath, "rb") as f:
                data = f.read()
        except OSError as e:
            raise BPFOSError(e.errno or 0, "cannot read BPF object", filename=spath) from None
        if object_name is not None:
            name = object_name[: BPF_OBJ_NAME_LEN - 1]
        else:
            name = os.path.basename(spath)[: BPF_OBJ_NAME_LEN - 1].split(".", 1)[0]
        return cls._from_bytes(data, name, spath, opts)

    @classmethod
    def open_mem(
        cls,
        data: "bytes | bytearray | memoryview",
        *,
        object_name: Optional[str] = None,
        relaxed_maps: bool = False,
        pin_root_path: Optional[str] = None,
        kconfig: Optional[str] = None,
        btf_custom_path: Optional[str] = None,
        kernel_log_level: int = 0,
        typed: bool = True,
        bpf_token_path: Optional[str] = None,
    ) -> "Object":
        """Open a BPF ELF object held in memory (bpf_object__open_mem); options as :meth:`open`.

        Without ``object_name`` the name is libbpf's "<address>-<size>" in hex.
        """
        buf = bytes(data)
        if not buf:
            raise ParseError("open_mem: empty buffer")
        opts = _check_options(object_name, relaxed_maps, pin_root_path, kconfig, btf_custom_path, kernel_log_level, bpf_token_path)
        opts["typed"] = bool(typed)
        if object_name is not None:
            name = object_name[: BPF_OBJ_NAME_LEN - 1]
        else:
            name = f"{id(data):x}-{len(buf):x}"[: BPF_OBJ_NAME_LEN - 1]
        return cls._from_bytes(buf, name, None, opts)

    @classmethod
    def _from_bytes(cls, data: bytes, name: str, path: Optional[str], opts: Dict[str, Any]) -> "Object":
        from ._gc import paused

        with paused():  # imports and model building: no garbage worth a collection
            from .elf.parse import parse_object

            model = parse_object(data, name, relaxed_maps=opts["relaxed_maps"], pin_root_path=opts["pin_root_path"])
            return cls(model, name, path=path, **opts)

    # ------------------------------------------------------------ attributes
    @property
    def license(self) -> str:
        return self.model.license

    @property
    def kversion(self) -> int:
        """The kernel version passed to kprobe programs: the 'version' section, else the running kernel's."""
        if self._kversion is None:
            self._kversion = running_kernel_version()
        return self._kversion

    @kversion.setter
    def kversion(self, value: int) -> None:
        if self._loaded:
            raise StateError(f"object {self.name!r}: cannot change kversion after load")
        if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
            raise ParseError(f"kversion must be a 32-bit unsigned int, got {value!r}")
        self._kversion = value
        for p in self._programs.values():
            p.kern_version = value

    @property
    def btf(self) -> Optional["Spec"]:
        """The object's BTF as libbpf's ``bpf_object__btf`` shows it after open, None when there is none.

        That is the .BTF section with libbpf's open-time fix-ups: DATASEC sizes and
        VAR offsets filled in from the ELF (clang 14 leaves them 0), hidden globals
        static, each DATASEC's variables sorted by offset, extern VARs and FUNCs made
        loadable.  Type ids are those of the file.  Decoded on first use.
        """
        if self._btf is None:
            raw = self._file_btf()
            if raw is not None:
                from .reloc.loader import opened_btf

                self._btf = opened_btf(self.model, raw).spec()
        return self._btf

    def _file_btf(self) -> Optional["Spec"]:
        """The .BTF section exactly as the file has it (what ``bpftool btf dump file`` shows)."""
        if self._btf_file is None and self.model.btf_raw is not None:
            from .btf import Spec

            self._btf_file = Spec.from_bytes(self.model.btf_raw)
        return self._btf_file

    @property
    def btf_ext(self) -> Optional[bytes]:
        """The raw .BTF.ext section (func_info, line_info, CO-RE relocations)."""
        return self.model.btf_ext_raw

    @property
    def programs(self) -> Mapping[str, "Program"]:
        """Entry-point programs by name, in file order (subprograms excluded, as libbpf iterates).

        An unknown name raises :class:`~pybpfload.errors.UnknownNameError` (a KeyError) listing the names.
        """
        return self._programs_view

    @property
    def maps(self) -> Mapping[str, "Map"]:
        """Maps by name, in libbpf's order: legacy, .maps, global data, .kconfig.

        Internal maps are also found by their ELF section (``obj.maps[".rodata"]`` is the
        map libbpf names ``"xdp_coun.rodata"``), as ``bpf_object__find_map_by_name``
        finds them; iteration gives each map once, by name.  An unknown name raises
        :class:`~pybpfload.errors.UnknownNameError` (a KeyError) listing the names there are.
        """
        return self._maps_view

    @property
    def externs(self) -> Tuple["ExternSpec", ...]:
        return self.model.externs

    @property
    def subprograms(self) -> Tuple["ProgramSpec", ...]:
        """The .text functions that programs call (not programs of their own)."""
        return tuple(p for p in self.model.programs if p.is_subprog)

    def find_program_by_name(self, name: str) -> Optional["Program"]:
        """The program called ``name``, never a subprogram; None when there is none."""
        return self._programs.get(name)

    def find_map_by_name(self, name: str) -> Optional["Map"]:
        """The map called ``name`` or, for an internal map, whose section is ``name``; None when none."""
        m = self._maps.get(name)
        if m is None and name in self._map_by_section:
            m = self._maps[self._map_by_section[name]]
        return m

    def program_spec(self, name: str) -> Optional["ProgramSpec"]:
        """The ELF model of program ``name``: section, instructions as in the file, relocations."""
        return self._prog_specs.get(name)

    def map_spec(self, name: str) -> Optional["MapSpec"]:
        """The ELF model of map ``name``: definition, BTF ids, initial slots."""
        return self._map_specs.get(name)

    # ------------------------------------------------------------ global variables
    @property
    def globals(self) -> Mapping[str, "SectionVars"]:
        """Each data section's variables by section name (``obj.globals[".data.custom"].val``).

        Typed by the object's BTF; before load they read and write the image each
        internal map will be created with, after load the live map (see
        :mod:`pybpfload.kernel.globalvars`).
        """
        g = self.__dict__.get("_globals")
        if g is None:
            from .kernel.globalvars import SectionVars, section_kind

            btf = self.btf
            g = {}
            for ms in self.model.maps:
                kind = section_kind(ms.real_name) if ms.kind.internal else None
                if kind is None or btf is None or ms.name not in self._maps:
                    continue
                g[ms.real_name] = SectionVars(self._maps[ms.name], ms.real_name, btf, kind)
            from .elf.model import ARENA_SEC

            arena = self.model.arena_map
            if arena is not None and btf is not None and self.model.datasec(ARENA_SEC) is not None:
                g[ARENA_SEC] = SectionVars(self._maps[arena], ARENA_SEC, btf, "arena")
            self.__dict__["_globals"] = g
        return _NamedView(g, "data section", {}, self.name)

    def _section(self, section: str) -> "SectionVars":
        _ = self.globals
        sv = self.__dict__["_globals"].get(section)
        if sv is None:
            from .errors import UnknownAttributeError

            have = ", ".join(self.__dict__["_globals"]) or "none"
            raise UnknownAttributeError(f"object {self.name!r} has no {section} section; its data sections: {have}")
        return sv

    @property
    def rodata(self) -> "SectionVars":
        """The ``.rodata`` variables (``const volatile``): writable until load, then frozen."""
        return self._section(".rodata")

    @property
    def data(self) -> "SectionVars":
        """The ``.data`` variables."""
        return self._section(".data")

    @property
    def bss(self) -> "SectionVars":
        """The ``.bss`` variables."""
        return self._section(".bss")

    @property
    def arena(self) -> "SectionVars":
        """The ``__arena`` globals (``.addr_space.1``, in the object's arena map): before load
        the image the arena starts with, after load the arena's memory itself."""
        return self._section(".addr_space.1")

    # .kconfig's variables are obj.globals[".kconfig"] (read-only): obj.kconfig is the kconfig option's text

    # ------------------------------------------------------------ loading
    def load(self) -> "Object":
        """Load the object into the kernel (bpf_object__load); returns self.

        Creates the maps, relocates and loads every program whose autoload
        is on.  On failure nothing stays behind (fds closed, new pins
        removed) and the error names the program or map.
        """
        from ._gc import paused

        if self._closed:
            raise StateError(f"object {self.name!r} is closed")
        if self._loaded:
            raise StateError(f"object {self.name!r} is already loaded")
        with paused():  # the loader's imports, relocation and CO-RE: no garbage worth a collection
            from .reloc.loader import load_object

            if self._token is None:
                from .syscall.token import prepare

                self._token = prepare(self.bpf_token_path, self.name)
            done = load_object(self)
        self._btf_handle = done.btf_handle
        self._linked = done.linked
        self._loaded = True
        return self

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def token(self) -> Optional["Token"]:
        """The BPF token the object loads through (see :meth:`open`'s ``bpf_token_path``):
        made by :meth:`load`, closed by :meth:`close`; None before load and without one."""
        return self._token

    @property
    def token_fd(self) -> int:
        """The fd of :attr:`token`, -1 without one (bpf_object__token_fd)."""
        t = self._token
        return t.fd if t is not None and not t.closed else -1

    @property
    def btf_fd(self) -> int:
        """The fd of the object's BTF in the kernel; -1 before load or without BTF (bpf_object__btf_fd)."""
        h = self._btf_handle
        return h.fd if h is not None and not h.closed else -1

    # ------------------------------------------------------------ pinning (spec sections 8-10)
    def pin_maps(self, path: Optional[str] = None) -> None:
        """Pin every map (bpf_object__pin_maps).

        With ``path``, each map is pinned at ``path/<map name>`` (periods
        become underscores); without, at its own :attr:`Map.pin_path`, and
        maps without one are skipped.  A failure unpins what this call pinned.
        """
        from .syscall import pinning

        self._require_loaded("pin maps")
        done = []
        try:
            for name, m in self._maps.items():
                if not m.autocreate and not m.created:  # not created ('?.struct_ops'...): skipped, as libbpf
                    continue
                target = pinning.join_pin_path(path, name) if path else m.pin_path
                if not target:
                    continue
                was_pinned = m.pinned_at == target
                m.pin(target)
                if not was_pinned:
                    done.append((m, target))
        except BaseException:
            for m, target in reversed(done):
                try:
                    m.unpin(target)
                except BPFOSError:
                    pass
            raise

    def unpin_maps(self, path: Optional[str] = None) -> None:
        """Remove the pins of every map (bpf_object__unpin_maps); ``path`` as in :meth:`pin_maps`."""
        from .syscall import pinning

        for name, m in self._maps.items():
            if not m.autocreate and not m.created:
                continue
            target = pinning.join_pin_path(path, name) if path else m.pin_path
            if target:
                m.unpin(target)

    def pin_programs(self, path: str) -> None:
        """Pin every loaded program at ``path/<program name>`` (bpf_object__pin_programs).

        Programs not loaded (autoload off) are skipped — libbpf would fail on
        them.  A failure unpins what this call pinned.
        """
        from .syscall import pinning

        self._require_loaded("pin programs")
        if not path:
            raise ParseError("pin_programs needs a directory")
        done = []
        try:
            for name, p in self._programs.items():
                if not p.loaded:
                    continue
                target = pinning.join_pin_path(path, name)
                pinning.make_parent_dir(target)
                p.pin(target)
                done.append((p, target))
        except BaseException:
            for p, target in reversed(done):
                try:
                    p.unpin(target)
                except BPFOSError:
                    pass
            raise

    def unpin_programs(self, path: str) -> None:
        """Remove the pins :meth:`pin_programs` made under ``path``."""
        from .syscall import pinning

        if not path:
            raise ParseError("unpin_programs needs a directory")
        for name, p in self._programs.items():
            if p.loaded:
                p.unpin(pinning.join_pin_path(path, name))

    def pin(self, path: str) -> None:
        """Pin every map and program under ``path`` (bpf_object__pin)."""
        self.pin_maps(path)
        try:
            self.pin_programs(path)
        except BaseException:
            self.unpin_maps(path)
            raise

    def unpin(self, path: str) -> None:
        """Undo :meth:`pin` (bpf_object__unpin)."""
        self.unpin_programs(path)
        self.unpin_maps(path)

    def _require_loaded(self, what: str) -> None:
        if self._closed:
            raise StateError(f"object {self.name!r} is closed")
        if not self._loaded:
            raise StateError(f"object {self.name!r}: cannot {what} before load")

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Close every program, map and BTF fd (pinned objects live on).

        The links :meth:`attach_all` made are closed first, so they detach unless
        pinned (as libbpf's skeleton ``__destroy``); links made explicitly
        (``prog.attach()``...) are their caller's and stay as they are.
        """
        if self._closed:
            return
        self._closed = True
        links, self._auto_links = self._auto_links, []
        failed: Optional[BaseException] = None
        try:
            for link in links:  # every one, even after a failure; the first failure is raised
                try:
                    link.close()
                except BaseException as e:  # noqa: BLE001 - re-raised below
                    failed = failed or e
            if failed is not None:
                raise failed
        finally:
            for p in self._programs.values():
                p.close()
            for sv in (self.__dict__.get("_globals") or {}).values():
                sv._close()
            for m in self._maps.values():
                m.close()
            if self._btf_handle is not None:
                self._btf_handle.close()
            if self._token is not None:
                self._token.close()

    def __enter__(self) -> "Object":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Object {self.name!r} programs={len(self._programs)} maps={len(self._maps)}>"

    # ------------------------------------------------------------ attaching
    def attach_all(self, *, skip_unsupported: bool = False) -> Any:
        """Attach every loaded program whose section names a target; the links (see :func:`pybpfload.link.auto.attach_all`).

        The object keeps them too: :meth:`close` (the end of a ``with`` block) detaches
        every one that is not pinned, as libbpf's skeleton destroy does.
        """
        from .link.auto import attach_all

        links = attach_all(self, skip_unsupported=skip_unsupported)
        self._auto_links.extend(links)
        return links

    # ------------------------------------------------------------ multi-instance programs (spec section 6)
    def program_variants(self, name: str, prep: Any, count: int) -> Any:
        """Load ``count`` variants of program ``name`` (bpf_program__set_prep's modern equivalent).

        ``prep(n, insns)`` gets the loaded program's relocated instructions
        and returns instance ``n``'s (or None to skip it); returns a
        :class:`~pybpfload.kernel.variants.ProgramVariants` owning their fds.  See
        :mod:`pybpfload.kernel.variants`.
        """
        from .errors import BPFError
        from .kernel.variants import load_variants

        if self._closed:
            raise StateError(f"object {self.name!r} is closed")
        if not self._loaded:
            raise StateError(f"object {self.name!r}: load it before loading variants of {name!r}")
        base = self._programs.get(name)
        if base is None:
            raise BPFError(f"object {self.name!r} has no program {name!r}")
        return load_variants(base, prep, count, self._token)


def _check_options(
    object_name: Optional[str],
    relaxed_maps: bool,
    pin_root_path: Optional[str],
    kconfig: Optional[str],
    btf_custom_path: Optional[str],
    kernel_log_level: int,
    bpf_token_path: Optional[str] = None,
) -> Dict[str, Any]:
    if object_name is not None and (not isinstance(object_name, str) or not object_name or "\0" in object_name):
        raise ParseError(f"option object_name: expected a non-empty name, got {object_name!r}")
    if not isinstance(relaxed_maps, bool):
        raise ParseError(f"option relaxed_maps: expected a bool, got {relaxed_maps!r}")
    _check_path_option("pin_root_path", pin_root_path)
    _check_path_option("btf_custom_path", btf_custom_path)
    if kconfig is not None:
        if not isinstance(kconfig, str):
            raise ParseError(f"option kconfig: expected text, got {type(kconfig).__name__}")
        parse_kconfig(kconfig)
    if isinstance(kernel_log_level, bool) or not isinstance(kernel_log_level, int) or kernel_log_level & ~_LOG_LEVEL_BITS:
        raise ParseError(f"option kernel_log_level: expected a combination of 1, 2 and 4, got {kernel_log_level!r}")
    token_option = "bpf_token_path"
    if bpf_token_path is None:  # as libbpf: the variable stands for an unset option ("" included)
        bpf_token_path = os.environ.get(TOKEN_PATH_ENV)
        token_option = TOKEN_PATH_ENV
    if bpf_token_path is not None:
        if not isinstance(bpf_token_path, str) or "\0" in bpf_token_path:
            raise ParseError(f"option {token_option}: expected a path or \"\", got {bpf_token_path!r}")
        if len(bpf_token_path.encode()) >= PATH_MAX:
            raise ParseError(f"option {token_option}: path longer than {PATH_MAX - 1} bytes")
    return dict(
        relaxed_maps=relaxed_maps,
        pin_root_path=pin_root_path,
        kconfig=kconfig,
        btf_custom_path=btf_custom_path,
        kernel_log_level=kernel_log_level,
        bpf_token_path=bpf_token_path,
    )


def _make_map(ms: "MapSpec") -> "Map":
    from .elf.model import MapKind
    from .kernel.maps import Map, ZeroImage

    inner = _make_map(ms.inner) if ms.inner is not None else None
    initial = ms.initial_value
    if ms.kind in (MapKind.BSS, MapKind.KCONFIG):  # zero-filled until load, as libbpf's mmaped copy
        initial = ZeroImage(ms.value_size)  # type: ignore[assignment]
    return Map(
        ms.name,
        ms.type,
        ms.key_size,
        ms.value_size,
        ms.max_entries,
        ms.flags,
        numa_node=ms.numa_node or None,
        map_extra=ms.map_extra,
        inner_map=inner,
        btf_key_type_id=ms.btf_key_type_id,
        btf_value_type_id=ms.btf_value_type_id,
        pinning=ms.pinning,
        pin_path=ms.pin_path,
        initial_value=initial,
        autocreate=ms.autocreate,
    )


class _NamedView(Mapping[str, Any]):
    """A read-only view of an object's programs or maps by name; aliases (an internal
    map's section) also resolve; an unknown name is an error listing the names."""

    __slots__ = ("_items", "_kind", "_aliases", "_owner")

    def __init__(self, items: Dict[str, Any], kind: str, aliases: Dict[str, str], owner: str) -> None:
        self._items = items
        self._kind = kind
        self._aliases = aliases
        self._owner = owner  # the object's name (no reference: no cycle)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            pass
        alias = self._aliases.get(name)
        if alias is not None:
            return self._items[alias]
        import difflib

        from .errors import UnknownNameError

        names = ", ".join(repr(n) for n in self._items) or "none"
        close = difflib.get_close_matches(str(name), [*self._items, *self._aliases], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownNameError(f"object {self._owner!r} has no {self._kind} {name!r}{hint}; its {self._kind}s: {names}")

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<{self._kind}s of {self._owner!r}: {', '.join(self._items)}>"
