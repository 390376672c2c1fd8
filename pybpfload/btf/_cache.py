"""A persistent on-disk cache of BTF offsets/name indexes, keyed by content.

Opening vmlinux BTF means walking ~127k records; the walk's result (the
word offset of every record) is stored under a key computed from the BTF bytes
(length, CRC-32, and an Adler-32 of its ends), so the next process reads it back instead.

Kernel BTF (files under /sys/kernel/btf, which change only with the running
kernel or module) is keyed more cheaply by :func:`kernel_file_key`: its
length, a CRC-32 of the boot id, path, inode and mtime, and the same edge
checksum, so that a warm open does not checksum 5+ MB.

A cache entry is never trusted blindly: it carries its own checksum, its
shape must match the BTF it is used for, and a sample of its entries is
checked against the type section.  Any doubt means a cold walk.  The cache
directory is ``$PYBPFLOAD_CACHE_DIR`` (empty disables caching), else
``$XDG_CACHE_HOME/pybpfload``, else ``~/.cache/pybpfload``; when it cannot
be written the cache is silently skipped.
"""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from typing import Optional, Sequence, Tuple

from ._index import record_words

MAGIC = b"PYBTFIX3"  # 3: the name_off words follow the offsets
_HEAD = struct.Struct("<8sIIIII")  # magic, data len, crc32, edges adler32, type count, payload crc32
# payload: the word offset of every record, then its name_off word (both native 32-bit words)
MIN_CACHED_BYTES = 256 * 1024  # smaller BTF walks faster than a cache round trip
SAMPLES = 256


def cache_dir() -> Optional[str]:
    """The cache directory in use, or None when caching is disabled."""
    env = os.environ.get("PYBPFLOAD_CACHE_DIR")
    if env is not None:
        return env or None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pybpfload")


def content_key(data: "bytes | memoryview") -> Tuple[int, int, int]:
    """(length, CRC-32 of everything, Adler-32 of the first and last 64 KiB)."""
    edges = zlib.adler32(data[-65536:], zlib.adler32(data[:65536]))
    return len(data), zlib.crc32(data), edges


def kernel_file_key(path: "str | os.PathLike[str]", data: "bytes | memoryview") -> Optional[Tuple[int, int, int]]:
    """(length, CRC-32 of boot id + path + inode + mtime, Adler-32 of the ends) for a file under
    /sys/kernel/btf: a new boot (a new kernel) or a reloaded module gives a new key; None when
    the boot id cannot be read (the content key is used then)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            boot = f.read().strip()
        st = os.stat(path)
    except OSError:
        return None
    if not boot:
        return None
    ident = b"%s:%s:%d:%d:%d" % (boot, os.fsencode(path), st.st_ino, st.st_mtime_ns, st.st_size)
    edges = zlib.adler32(data[-65536:], zlib.adler32(data[:65536]))
    return len(data), zlib.crc32(ident), edges


def _path(d: str, key: Tuple[int, int, int]) -> str:
    return os.path.join(d, "btf-%d-%08x-%08x.idx" % key)


def load(key: Tuple[int, int, int], words: Sequence[int]) -> "Optional[Tuple[array[int], bytes]]":
    """(record offsets, name_off words as native bytes) cached for this content, or None."""
    d = cache_dir()
    if d is None:
        return None
    try:
        with open(_path(d, key), "rb") as f:
            blob = f.read()
    except OSError:
        return None
    if len(blob) < _HEAD.size:
        return None
    magic, dlen, crc, edges, count, pcrc = _HEAD.unpack_from(blob)
    payload = memoryview(blob)[_HEAD.size :]
    if magic != MAGIC or (dlen, crc, edges) != key or len(payload) != 8 * count or zlib.crc32(payload) != pcrc:
        return None
    offsets = array("I")
    offsets.frombytes(payload[: 4 * count])
    names = bytes(payload[4 * count :])
    if not _plausible(words, offsets) or not _names_plausible(words, offsets, names):
        return None
    return offsets, names


def _names_plausible(words: Sequence[int], offsets: "array[int]", names: bytes) -> bool:
    """A sample of the name words against the records' own."""
    count = len(offsets)
    if not count:
        return True
    got = memoryview(names).cast("I")
    step = max(1, count // SAMPLES)
    return all(got[j] == words[offsets[j]] for j in list(range(0, count, step)) + [count - 1])


def _plausible(words: Sequence[int], offsets: "array[int]") -> bool:
    """Check a sample of records: each starts where the previous one ends."""
    n, count = len(words), len(offsets)
    if count == 0:
        return n == 0
    if offsets[0] != 0:
        return False
    step = max(1, count // SAMPLES)
    try:
        for j in list(range(0, count, step)) + [count - 1]:
            o = offsets[j]
            nxt = offsets[j + 1] if j + 1 < count else n
            if o + record_words(words[o + 1]) != nxt:
                return False
    except Exception:  # noqa: BLE001 - any inconsistency means "do not use"
        return False
    return True


def store(key: Tuple[int, int, int], offsets: "array[int]", names: bytes) -> None:
    """Write an entry atomically; failures (read-only home, full disk) are ignored."""
    d = cache_dir()
    if d is None:
        return
    payload = offsets.tobytes() + names
    head = _HEAD.pack(MAGIC, key[0], key[1], key[2], len(offsets), zlib.crc32(payload))
    import tempfile  # only when writing: it imports random and hashlib

    try:
        os.makedirs(d, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".btf-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(head)
                f.write(payload)
            os.replace(tmp, _path(d, key))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError:
        pass
