"""Perf buffers: per-CPU perf rings behind a BPF_MAP_TYPE_PERF_EVENT_ARRAY
(libbpf's ``perf_buffer__*``).

For every online CPU (up to the map's max_entries) a software
PERF_COUNT_SW_BPF_OUTPUT event is opened on that CPU, its ring mmapped
(one metadata page plus ``page_cnt`` data pages), and its fd stored in the
map at index = CPU, which is where ``bpf_perf_event_output(ctx, &map,
BPF_F_CURRENT_CPU, ...)`` writes.  One epoll fd waits on all the rings.

Records are ``struct perf_event_header`` (u32 type, u16 misc, u16 size)
followed by a body; PERF_RECORD_SAMPLE carries a u32 size and the raw data
(padded by the kernel so that size + 4 is a multiple of 8: callbacks get the
padded length, as with libbpf; the padding bytes are not cleared: they hold
whatever the ring held before), PERF_RECORD_LOST a u64 id and the u64 number
of samples dropped because the ring was full.  The perf ring is not mapped
twice: a record that wraps around its end is copied into one bytes object.

As for ring buffers (see :mod:`pybpfload.events.ringbuf` for the memory-ordering
notes, which apply unchanged to data_head / data_tail), a sample callback
gets a zero-copy memoryview valid during the call, or bytes with
``copy=True``.

Threads: each per-CPU ring is consumed under its own lock, so two threads
polling or consuming one PerfBuffer never hand the same record out twice (a
callback may consume again from its own thread).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import select
import struct
import threading
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Tuple

from ..errors import BPFError, StateError, SyscallError
from .ringbuf import AsyncConsumer, wrong_map_type
from ..syscall import _raw, commands
from ..abi.uapi import Cmd, MapElemAttr

__all__ = ["PerfBuffer", "PerfCpuBuffer"]

PAGE_SIZE = mmap.PAGESIZE
_PERF_EVENT_ARRAY = 4  # BPF_MAP_TYPE_PERF_EVENT_ARRAY

_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")

SampleCallback = Callable[[int, Any], Any]
LostCallback = Callable[[int, int], Any]


def online_cpus() -> List[int]:
    """CPUs listed in /sys/devices/system/cpu/online."""
    with open("/sys/devices/system/cpu/online") as f:
        text = f.read().strip()
    cpus: List[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            cpus.extend(range(int(lo), int(hi) + 1))
        elif part:
            cpus.append(int(part))
    return cpus


class PerfCpuBuffer:
    """The perf ring of one CPU."""

    def __init__(self, cpu: int, page_cnt: int, wakeup_events: int) -> None:
        from ..syscall import perf

        self.cpu = cpu
        self._lock = threading.RLock()  # one consumer at a time (a callback may re-enter)
        self.fd = perf.perf_event_open(perf.bpf_output_attr(wakeup_events), -1, cpu)
        self.data_size = page_cnt * PAGE_SIZE
        self._mask = self.data_size - 1
        try:
            self._mm: Optional[mmap.mmap] = mmap.mmap(
                self.fd.fileno(),
                PAGE_SIZE + self.data_size,
                flags=mmap.MAP_SHARED,
                prot=mmap.PROT_READ | mmap.PROT_WRITE,
            )
        except OSError as e:
            self.fd.close()
            raise SyscallError(e.errno or errno.EINVAL, "mmap", detail=f"perf ring of cpu {cpu}") from e
        mv = memoryview(self._mm)
        self._meta = mv[:PAGE_SIZE].cast("Q")
        self._data = mv[PAGE_SIZE:]
        self._u32 = self._data.cast("I")
        self._u16 = self._data.cast("H")
        self._u64 = self._data.cast("Q")
        self._views = [self._meta, self._u16, self._u32, self._u64, self._data, mv]
        self._head = perf.MMAP_DATA_HEAD // 8
        self._tail = perf.MMAP_DATA_TAIL // 8
        try:
            perf.enable(self.fd.fileno())
        except BaseException:
            self.close()
            raise

    def avail_data(self) -> int:
        """Bytes of records not yet consumed."""
        return self._meta[self._head] - self._meta[self._tail]

    def process(self, sample_cb: SampleCallback, lost_cb: Optional[LostCallback], copy: bool) -> int:
        """Hand every record to the callbacks; returns the number of samples (thread-safe)."""
        with self._lock:
            if self._mm is None:
                raise StateError(f"perf ring of cpu {self.cpu} is closed")
            return self._process(sample_cb, lost_cb, copy)

    def _process(self, sample_cb: SampleCallback, lost_cb: Optional[LostCallback], copy: bool) -> int:
        meta = self._meta
        u32 = self._u32
        u16 = self._u16
        data = self._data
        src: Any = self._mm if copy else data
        base = PAGE_SIZE if copy else 0  # offsets into src
        mask = self._mask
        dsize = self.data_size
        cpu = self.cpu
        n = 0
        tail = meta[self._tail]
        try:
            while True:
                head = meta[self._head]
                if tail >= head:
                    return n
                while tail < head:
                    off = tail & mask
                    i = off >> 2
                    typ = u32[i]
                    size = u16[(off >> 1) + 3]
                    if size < 8:  # a corrupt ring: never loop forever
                        raise BPFError(f"perf ring of cpu {cpu}: record of {size} bytes at {tail}")
                    if off + size > dsize:  # wraps around: copy it whole
                        rec = bytes(data[off:]) + bytes(data[: off + size - dsize])
                        tail += size
                        if typ == 9:
                            (raw,) = _U32.unpack_from(rec, 8)
                            sample_cb(cpu, rec[12 : 12 + raw] if copy else memoryview(rec)[12 : 12 + raw])
                            n += 1
                        elif typ == 2 and lost_cb is not None:
                            lost_cb(cpu, _U64.unpack_from(rec, 16)[0])
                        continue
                    tail += size
                    if typ == 9:  # PERF_RECORD_SAMPLE
                        a = off + 12 + base
                        sample_cb(cpu, src[a : a + u32[i + 2]])
                        n += 1
                    elif typ == 2 and lost_cb is not None:  # PERF_RECORD_LOST
                        lost_cb(cpu, self._u64[(off >> 3) + 2])
                meta[self._tail] = tail
        finally:
            meta[self._tail] = tail

    def close(self) -> None:
        with self._lock:  # not while another thread reads the ring
            for v in self._views:
                v.release()
            self._views = []
            mm, self._mm = self._mm, None
            if mm is not None:
                try:
                    mm.close()
                except BufferError:  # a caller still holds a view: unmapped when it dies
                    pass
            self.fd.close()


class PerfBuffer(AsyncConsumer):
    """Read a BPF_MAP_TYPE_PERF_EVENT_ARRAY map's per-CPU rings (perf_buffer__new).

    ``sample_callback(cpu, data)`` gets each sample; ``lost_callback(cpu,
    count)`` the number of samples the kernel dropped on that CPU because
    its ring was full (reported once the ring has room again).
    ``page_cnt`` data pages per CPU, a power of 2 (libbpf's default is 8).

    Unlike libbpf's, :meth:`poll` and :meth:`consume` return the number of
    samples processed (libbpf's poll counts ready rings, its consume 0).
    """

    _what = "perf buffer"

    def __init__(
        self,
        map: Any,
        sample_callback: SampleCallback,
        lost_callback: Optional[LostCallback] = None,
        *,
        page_cnt: int = 8,
        copy: bool = False,
        wakeup_events: int = 1,
        type: Optional[str] = None,
        btf: Any = None,
    ) -> None:
        from ..kernel.maps import possible_cpus

        if type is not None:  # decoded records (pybpfload.events.typedrec)
            from .typedrec import perf_callback

            sample_callback = perf_callback(map, type, btf, sample_callback)
        from .ringbuf import _map_fd
        from ..abi.uapi import MapInfo

        if page_cnt <= 0 or page_cnt & (page_cnt - 1):
            raise ValueError(f"page_cnt must be a power of 2, got {page_cnt}")
        self._epoll: Optional[select.epoll] = select.epoll()
        self._bufs: List[PerfCpuBuffer] = []
        self._by_fd: Dict[int, PerfCpuBuffer] = {}
        self.sample_callback = sample_callback
        self.lost_callback = lost_callback
        self.copy = copy
        fd = _map_fd(map)
        self.map_fd = fd
        try:
            info = commands.obj_get_info_by_fd(fd, MapInfo())
            if info.type != _PERF_EVENT_ARRAY:
                raise wrong_map_type("perf buffer", fd, info, _PERF_EVENT_ARRAY)
            cpu_cnt = possible_cpus()
            if info.max_entries and info.max_entries < cpu_cnt:
                cpu_cnt = info.max_entries
            online = set(online_cpus())
            for cpu in range(cpu_cnt):
                if cpu not in online:
                    continue
                buf = PerfCpuBuffer(cpu, page_cnt, wakeup_events)
                self._bufs.append(buf)
                self._store(cpu, buf.fd.fileno())
                self._epoll.register(buf.fd.fileno(), select.EPOLLIN)
                self._by_fd[buf.fd.fileno()] = buf
        except OSError as e:
            self.close()
            if isinstance(e, BPFError):
                raise
            raise SyscallError(e.errno or errno.EINVAL, "epoll_ctl", detail="adding a perf ring") from e
        except BaseException:
            self.close()
            raise

    def _store(self, cpu: int, value: int) -> None:
        key = ctypes.c_uint32(cpu)
        val = ctypes.c_uint32(value)
        commands.map_elem(Cmd.BPF_MAP_UPDATE_ELEM, self.map_fd, ctypes.addressof(key), ctypes.addressof(val), 0)

    def _forget(self, cpu: int) -> None:
        """Delete the CPU's slot; a failure (the map closed already) is ignored, as libbpf
        ignores it.  No exception is built: at interpreter exit imports fail."""
        key = ctypes.c_uint32(cpu)
        attr = MapElemAttr(map_fd=self.map_fd, key=ctypes.addressof(key))
        _raw.syscall(_raw.NR_BPF, int(Cmd.BPF_MAP_DELETE_ELEM), ctypes.byref(attr), ctypes.sizeof(attr))

    # ------------------------------------------------------------ per-CPU rings
    @property
    def buffer_cnt(self) -> int:
        """Number of per-CPU rings (perf_buffer__buffer_cnt)."""
        return len(self._bufs)

    def buffer(self, index: int) -> PerfCpuBuffer:
        return self._bufs[index]

    def buffer_fd(self, index: int) -> int:
        """The perf event fd of ring ``index`` (perf_buffer__buffer_fd)."""
        return self._bufs[index].fd.fileno()

    @property
    def cpus(self) -> Tuple[int, ...]:
        return tuple(b.cpu for b in self._bufs)

    # ------------------------------------------------------------ consuming
    def consume_buffer(self, index: int) -> int:
        """Process ring ``index`` (perf_buffer__consume_buffer); returns the samples."""
        self._live()
        return self._bufs[index].process(self.sample_callback, self.lost_callback, self.copy)

    def consume(self) -> int:
        """Process every ring without waiting (perf_buffer__consume); returns the samples."""
        self._live()
        n = 0
        for b in self._bufs:
            n += b.process(self.sample_callback, self.lost_callback, self.copy)
        return n

    def poll(self, timeout_ms: int = -1) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) and process the rings with data."""
        ep = self._live()
        try:
            events = ep.poll(timeout_ms / 1000.0 if timeout_ms >= 0 else -1, max(len(self._bufs), 1))
        except OSError as e:
            raise SyscallError(e.errno or errno.EINVAL, "epoll_wait") from e
        n = 0
        for fd, _ in events:
            n += self._by_fd[fd].process(self.sample_callback, self.lost_callback, self.copy)
        return n

    # ------------------------------------------------------------ asyncio
    # wait_async() and poll_async() come from AsyncConsumer
    async def stream(self) -> AsyncIterator[Tuple[int, bytes]]:
        """``async for cpu, data in pb.stream()``: every sample of every CPU's ring,
        forever, waiting on the running event loop (no thread) when all are empty.

        ``data`` is bytes (a copy: the ring moves on while the loop body runs);
        lost-sample counts still go to ``lost_callback``; the sample callback is
        not called.  Samples are taken from one ring at a time: leaving the loop
        early drops the rest of that ring's pass.
        """
        batch: List[Tuple[int, bytes]] = []

        def take(cpu: int, data: bytes) -> None:
            batch.append((cpu, data))

        while True:
            got = False
            for buf in list(self._bufs):
                buf.process(take, self.lost_callback, True)
                got = got or bool(batch)
                for item in batch:
                    yield item
                batch.clear()
            if not got:
                await self.wait_async()

    def __aiter__(self) -> AsyncIterator[Tuple[int, bytes]]:
        return self.stream()

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Remove the fds from the map, unmap and close everything (perf_buffer__free)."""
        bufs, self._bufs = getattr(self, "_bufs", []), []
        self._by_fd = {}
        for b in bufs:
            self._forget(b.cpu)
            b.close()
        self._close_epoll()

    def __repr__(self) -> str:
        return f"<PerfBuffer cpus={len(self._bufs)}{' closed' if self.closed else ''}>"
