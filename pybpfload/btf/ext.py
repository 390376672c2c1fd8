""".BTF.ext: per-section func_info, line_info and CO-RE relocation records.

:func:`parse_ext` is pure: the section bytes and a string lookup (usually
``spec.string`` of the object's .BTF) in, an :class:`ExtInfo` out.  Offsets
of instructions are kept as in the ELF file, in bytes from the start of the
section; ``insn`` gives the instruction index.
"""

from __future__ import annotations

import struct
from typing import Callable, ClassVar, Dict, List, Optional, Sequence, Tuple, TypeVar

from ..abi.intenum import IntEnum
from ..abi.record import Record, _set
from ..errors import BTFError

BTF_EXT_MAGIC = 0xEB9F
_HDR = struct.Struct("<HBBI")  # magic, version, flags, hdr_len
_SECTIONS = struct.Struct("<IIII")  # func_info off/len, line_info off/len
_CORE = struct.Struct("<II")  # core_relo off/len (hdr_len >= 32)
_U32 = struct.Struct("<I")
_U32X2 = struct.Struct("<II")

FUNC_INFO_MIN = 8
LINE_INFO_MIN = 16
CORE_RELO_MIN = 16


class CoreReloKind(IntEnum):
    """enum bpf_core_relo_kind."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


class FuncInfo(Record):
    """A function starts at ``insn_off`` (bytes) with BTF FUNC ``type_id``."""

    __slots__ = ("insn_off", "type_id")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    insn_off: int
    type_id: int

    def __init__(self, insn_off: int, type_id: int) -> None:
        _set(self, "insn_off", insn_off)
        _set(self, "type_id", type_id)

    @property
    def insn(self) -> int:
        return self.insn_off // 8


class LineInfo(Record):
    """Source position of the instruction at ``insn_off`` (bytes).

    ``file_name`` and ``line`` are looked up in the BTF strings on first use: a
    load packs the offsets and never reads the text (a tool object has ~1000
    records), and, as libbpf, leaves bad offsets to the kernel to refuse.
    """

    __slots__ = ("insn_off", "file_name_off", "line_off", "line_col", "_file_name", "_line", "_string")
    _fields: ClassVar[Tuple[str, ...]] = ("insn_off", "file_name_off", "line_off", "line_col", "file_name", "line")
    insn_off: int
    file_name_off: int
    line_off: int
    line_col: int
    _file_name: Optional[str]
    _line: Optional[str]
    _string: Optional[Callable[[int], str]]

    def __init__(
        self,
        insn_off: int,
        file_name_off: int,
        line_off: int,
        line_col: int,
        file_name: Optional[str] = None,
        line: Optional[str] = None,
        *,
        string: Optional[Callable[[int], str]] = None,
    ) -> None:
        _set(self, "insn_off", insn_off)
        _set(self, "file_name_off", file_name_off)
        _set(self, "line_off", line_off)
        _set(self, "line_col", line_col)
        _set(self, "_file_name", file_name)
        _set(self, "_line", line)
        _set(self, "_string", string)

    def _text(self, slot: str, off: int) -> str:
        text: Optional[str] = getattr(self, slot)
        if text is None:
            if self._string is None:
                raise BTFError(f"line info at insn {self.insn}: no BTF strings to read offset {off} from")
            text = self._string(off)
            _set(self, slot, text)
        return text

    @property
    def file_name(self) -> str:
        return self._text("_file_name", self.file_name_off)

    @property
    def line(self) -> str:
        return self._text("_line", self.line_off)

    @property
    def insn(self) -> int:
        return self.insn_off // 8

    @property
    def line_num(self) -> int:
        return self.line_col >> 10

    @property
    def column(self) -> int:
        return self.line_col & 0x3FF


class CoreRelo(Record):
    """A CO-RE relocation of the instruction at ``insn_off`` (bytes)."""

    __slots__ = ("insn_off", "type_id", "access_str_off", "kind", "access")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    insn_off: int
    type_id: int
    access_str_off: int
    kind: CoreReloKind
    access: str  # e.g. "0:1:0"

    def __init__(self, insn_off: int, type_id: int, access_str_off: int, kind: CoreReloKind, access: str) -> None:
        _set(self, "insn_off", insn_off)
        _set(self, "type_id", type_id)
        _set(self, "access_str_off", access_str_off)
        _set(self, "kind", kind)
        _set(self, "access", access)

    @property
    def insn(self) -> int:
        return self.insn_off // 8

    @property
    def access_spec(self) -> Tuple[int, ...]:
        """The access string as integers."""
        try:
            return tuple(int(x) for x in self.access.split(":"))
        except ValueError:
            raise BTFError(f"bad CO-RE access string {self.access!r}") from None


class ExtInfo(Record):
    """Everything in one .BTF.ext, keyed by ELF section name."""

    __slots__ = ("func_info", "line_info", "core_relos", "func_info_rec_size", "line_info_rec_size", "core_relo_rec_size")
    _fields: ClassVar[Tuple[str, ...]] = __slots__
    func_info: Dict[str, Tuple[FuncInfo, ...]]
    line_info: Dict[str, Tuple[LineInfo, ...]]
    core_relos: Dict[str, Tuple[CoreRelo, ...]]
    func_info_rec_size: int
    line_info_rec_size: int
    core_relo_rec_size: int

    def __init__(
        self,
        func_info: Dict[str, Tuple[FuncInfo, ...]],
        line_info: Dict[str, Tuple[LineInfo, ...]],
        core_relos: Dict[str, Tuple[CoreRelo, ...]],
        func_info_rec_size: int = FUNC_INFO_MIN,
        line_info_rec_size: int = LINE_INFO_MIN,
        core_relo_rec_size: int = CORE_RELO_MIN,
    ) -> None:
        _set(self, "func_info", func_info)
        _set(self, "line_info", line_info)
        _set(self, "core_relos", core_relos)
        _set(self, "func_info_rec_size", func_info_rec_size)
        _set(self, "line_info_rec_size", line_info_rec_size)
        _set(self, "core_relo_rec_size", core_relo_rec_size)


R = TypeVar("R")


def _records(
    data: bytes,
    start: int,
    length: int,
    what: str,
    min_size: int,
    string: Callable[[int], str],
    make: Callable[[bytes, int], R],
) -> Tuple[Dict[str, Tuple[R, ...]], int]:
    """Parse one info block: rec_size, then (sec_name_off, num_info, records...)*."""
    if length == 0:
        return {}, min_size
    end = start + length
    if start < 0 or end > len(data):
        raise BTFError(f".BTF.ext {what} out of bounds ({start}+{length} > {len(data)})")
    if length < 4:
        raise BTFError(f".BTF.ext {what} too short")
    (rec_size,) = _U32.unpack_from(data, start)
    if rec_size < min_size or rec_size & 3:
        raise BTFError(f".BTF.ext {what} has bad record size {rec_size}")
    out: Dict[str, Tuple[R, ...]] = {}
    pos = start + 4
    while pos < end:
        if pos + 8 > end:
            raise BTFError(f".BTF.ext {what}: truncated section header")
        sec_off, num = _U32X2.unpack_from(data, pos)
        pos += 8
        if num == 0:
            raise BTFError(f".BTF.ext {what}: section with no records")
        if num > (end - pos) // rec_size:
            raise BTFError(f".BTF.ext {what}: {num} records do not fit")
        name = string(sec_off)
        if not name:
            raise BTFError(f".BTF.ext {what}: section with no name")
        recs: List[R] = []
        for _ in range(num):
            recs.append(make(data, pos))
            pos += rec_size
        out[name] = out.get(name, ()) + tuple(recs)
    return out, rec_size


def parse_ext(data: bytes, string: Callable[[int], str]) -> ExtInfo:
    """Decode a .BTF.ext section; ``string`` looks up offsets in the .BTF strings."""
    data = bytes(data)
    if len(data) < _HDR.size + _SECTIONS.size:
        raise BTFError(f".BTF.ext too short: {len(data)} bytes")
    magic, version, _flags, hdr_len = _HDR.unpack_from(data)
    if magic != BTF_EXT_MAGIC:
        raise BTFError(f"bad .BTF.ext magic {magic:#06x}")
    if version != 1:
        raise BTFError(f"unsupported .BTF.ext version {version}")
    if hdr_len < _HDR.size + _SECTIONS.size or hdr_len > len(data):
        raise BTFError(f"bad .BTF.ext header length {hdr_len}")
    fi_off, fi_len, li_off, li_len = _SECTIONS.unpack_from(data, _HDR.size)
    cr_off = cr_len = 0
    if hdr_len >= _HDR.size + _SECTIONS.size + _CORE.size:
        cr_off, cr_len = _CORE.unpack_from(data, _HDR.size + _SECTIONS.size)

    def safe_string(off: int) -> str:
        try:
            return string(off)
        except BTFError:
            raise
        except Exception as e:  # a lookup that fails another way is still malformed input
            raise BTFError(f".BTF.ext string offset {off} is invalid") from e

    def func(d: bytes, p: int) -> FuncInfo:
        return FuncInfo(*_U32X2.unpack_from(d, p))

    def line(d: bytes, p: int) -> LineInfo:
        insn_off, fname, loff, lc = struct.unpack_from("<IIII", d, p)
        return LineInfo(insn_off, fname, loff, lc, string=safe_string)

    def relo(d: bytes, p: int) -> CoreRelo:
        insn_off, tid, aoff, kind = struct.unpack_from("<IIII", d, p)
        try:
            k = CoreReloKind(kind)
        except ValueError:
            raise BTFError(f".BTF.ext: unknown CO-RE relocation kind {kind}") from None
        return CoreRelo(insn_off, tid, aoff, k, safe_string(aoff))

    fi, fi_rs = _records(data, hdr_len + fi_off, fi_len, "func_info", FUNC_INFO_MIN, safe_string, func)
    li, li_rs = _records(data, hdr_len + li_off, li_len, "line_info", LINE_INFO_MIN, safe_string, line)
    cr, cr_rs = _records(data, hdr_len + cr_off, cr_len, "core_relo", CORE_RELO_MIN, safe_string, relo)
    return ExtInfo(fi, li, cr, fi_rs, li_rs, cr_rs)


def pack_func_info(records: Sequence[FuncInfo], insn_base: int = 0) -> bytes:
    """Kernel format (bpf_func_info, insn_off in instructions) for PROG_LOAD.

    ``insn_base`` is added to each record's instruction index (a subprogram
    appended after the main program).
    """
    return b"".join(_U32X2.pack(r.insn + insn_base, r.type_id) for r in records)


def pack_line_info(records: Sequence[LineInfo], insn_base: int = 0) -> bytes:
    """Kernel format (bpf_line_info, insn_off in instructions) for PROG_LOAD."""
    return b"".join(
        struct.pack("<IIII", r.insn + insn_base, r.file_name_off, r.line_off, r.line_col) for r in records
    )


__all__ = [
    "CoreReloKind",
    "FuncInfo",
    "LineInfo",
    "CoreRelo",
    "ExtInfo",
    "parse_ext",
    "pack_func_info",
    "pack_line_info",
    "FUNC_INFO_MIN",
    "LINE_INFO_MIN",
    "CORE_RELO_MIN",
]
