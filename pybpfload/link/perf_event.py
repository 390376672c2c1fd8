"""Programs on perf events: tracepoints, kprobes, uprobes, and perf_event programs.

A perf event fd gets its program through a BPF perf link (LINK_CREATE with
BPF_PERF_EVENT, Linux 5.15+), which can be pinned and carries a cookie; on
older kernels through the PERF_EVENT_IOC_SET_BPF ioctl, as libbpf falls back.
"""

from __future__ import annotations

import errno
import fcntl
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Union

from ..errors import NotSupportedError, SyscallError
from ..syscall import perf
from ..abi.record import replace
from ..abi.uapi import AttachType
from ..syscall.fd import Fd
from ._attach_cmd import ENOTSUPP, link_create, link_create_attr
from ..abi import uapi as t
from .base import Link, hook, prog_fd_of
from .info import PERF_EVENT_TYPES, LinkInfo

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["PerfEventLink", "attach_perf_fd", "attach_perf_event", "perf_link_attr", "PERF_EVENT_IOC_SET_BPF"]

PERF_EVENT_IOC_SET_BPF = 0x40042408  # _IOW('$', 8, __u32)


def perf_link_attr(prog_fd: int, perf_fd: int, cookie: int = 0) -> Any:
    """LINK_CREATE attributes of a perf link."""
    return link_create_attr(prog_fd, perf_fd, AttachType.BPF_PERF_EVENT, perf_event={"bpf_cookie": cookie})


class PerfEventLink(Link):
    """A program on a perf event: a BPF perf link when the kernel has them, else the ioctl.

    ``perf_fd`` is the event's fd.  Closing closes both (the kernel detaches
    unless the link is pinned: a pinned perf link keeps its event alive).
    ``describe`` is what ``struct bpf_link_info``'s perf_event member would
    say (``perf_event_type``, ``tp_name``, ``file_name``...): :meth:`info`
    reports it where the kernel does not (ioctl attachments, and perf links
    before Linux 6.6, which leave that member empty).
    """

    def __init__(
        self,
        link_fd: Optional[Fd],
        perf_fd: Fd,
        program: Optional["ProgramLike"],
        *,
        kind: str,
        target: str,
        cleanup: Any = None,
        describe: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(link_fd, program, kind=kind, target=target)
        self._perf_fd: Optional[Fd] = perf_fd
        self._cleanup = cleanup  # called once the event is closed (legacy tracefs probes)
        self._describe: Dict[str, Any] = dict(describe) if describe is not None else {"perf_event_type": kind}

    @property
    def perf_fd(self) -> int:
        f = self._perf_fd
        return f.raw if f is not None else -1

    @property
    def is_bpf_link(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        if self._closed:
            return
        try:
            pf = self._perf_fd
            if self._fd is None and pf is not None and not pf.closed:
                try:
                    perf.disable(pf.fileno())
                except SyscallError:
                    pass
            super().close()
            if pf is not None:
                pf.close()
        finally:
            cleanup, self._cleanup = self._cleanup, None
            if cleanup is not None and self._pinned_at is None:
                cleanup()

    def pin(self, path: str) -> None:
        if self._fd is None:
            raise NotSupportedError("BPF perf links", "the program was attached by ioctl: there is no link to pin (Linux 5.15+)")
        super().pin(path)

    def info(self) -> LinkInfo:
        if self._fd is None:
            if self._closed:
                self._live()
            pid = self.program.info().id if self.program is not None and self.program.fd >= 0 else 0
            return LinkInfo(0, 0, pid, int(AttachType.BPF_PERF_EVENT), MappingProxyType({**self._describe, "target": self.target}))
        info = super().info()
        if info.target.get("perf_event_type") not in PERF_EVENT_TYPES.values():
            # Linux < 6.6 has perf links but does not describe their event
            info = replace(info, target=MappingProxyType({**self._describe, **_known(info.target)}))
        return info

    def detach(self) -> None:
        if self._fd is None:
            self.close()
            return
        super().detach()


def attach_perf_fd(
    prog: "ProgramLike",
    perf_fd: Fd,
    *,
    cookie: int = 0,
    kind: str,
    target: str,
    force_ioctl: bool = False,
    cleanup: Any = None,
    describe: Optional[Mapping[str, Any]] = None,
) -> PerfEventLink:
    """Attach ``prog`` to an open perf event; the returned link owns ``perf_fd`` (closed on failure too).

    ``describe``: the event as ``bpf_link_info`` names it (see :class:`PerfEventLink`).
    """
    if describe is not None:
        describe = {**describe, "cookie": cookie}
    try:
        prog_fd = prog_fd_of(prog)
        if not force_ioctl:
            try:
                fd = link_create(perf_link_attr(prog_fd, perf_fd.fileno(), cookie), what=f"{kind} {target}")
                return PerfEventLink(fd, perf_fd, prog, kind=kind, target=target, cleanup=cleanup, describe=describe)
            except SyscallError as e:
                if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP) or cookie:
                    raise
                # no perf links in this kernel (or not for this event): use the ioctl
        try:
            fcntl.ioctl(perf_fd.fileno(), PERF_EVENT_IOC_SET_BPF, prog_fd)
        except OSError as e:
            raise SyscallError(e.errno or 0, "ioctl", prog.name, detail=f"PERF_EVENT_IOC_SET_BPF, {kind} {target}") from None
        perf.enable(perf_fd.fileno())
        return PerfEventLink(None, perf_fd, prog, kind=kind, target=target, cleanup=cleanup, describe=describe)
    except BaseException:
        perf_fd.close()
        if cleanup is not None:
            cleanup()
        raise


@hook("perf_event", t.ProgType.BPF_PROG_TYPE_PERF_EVENT, t.ProgType.BPF_PROG_TYPE_KPROBE, t.ProgType.BPF_PROG_TYPE_TRACEPOINT)
def attach_perf_event(prog: "ProgramLike", perf_fd: Union[int, Fd], *, cookie: int = 0, force_ioctl: bool = False) -> PerfEventLink:
    """Attach a perf_event program to a perf event you opened (libbpf's bpf_program__attach_perf_event).

    The link works on a duplicate of ``perf_fd``: the caller keeps (and
    closes) its own fd.
    """
    raw = perf_fd.fileno() if isinstance(perf_fd, Fd) else int(perf_fd)
    dup = Fd(fcntl.fcntl(raw, fcntl.F_DUPFD_CLOEXEC, 3))
    return attach_perf_fd(
        prog, dup, cookie=cookie, kind="perf_event", target=f"fd {raw}", force_ioctl=force_ioctl, describe={"perf_event_type": "event"}
    )


def _known(target: Mapping[str, Any]) -> Dict[str, Any]:
    """The fields of an empty kernel description worth keeping (non-zero, non-empty)."""
    return {k: v for k, v in target.items() if k != "perf_event_type" and v}


