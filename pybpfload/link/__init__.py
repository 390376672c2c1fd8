"""Attaching programs: one module per kind, every attachment a :class:`Link`.

- :mod:`.base` — :class:`Link` (owns a kernel bpf_link fd: ``detach()``,
  ``pin()`` / ``unpin()``, ``Link.from_pin()``, ``update_program()``,
  ``info()``) and the detach-on-close attachments that are not kernel links;
- :mod:`.tracepoint`, :mod:`.kprobe`, :mod:`.uprobe` — perf-event based
  (:class:`~.perf_event.PerfEventLink`); :mod:`.perf_event` for perf_event
  programs; :mod:`.usdt` (USDT probes: a uprobe per call site);
- :mod:`.multi` — uprobe_multi / kprobe_multi links (and sessions);
- :mod:`.raw_tp` (raw_tp), :mod:`.tracing` (tp_btf, fentry, fexit,
  fmod_ret, lsm, freplace), :mod:`.iter` (iterators, read as files);
- :mod:`.xdp`, :mod:`.tcx`, :mod:`.tc` (cls_bpf over rtnetlink),
  :mod:`.cgroup`, :mod:`.socket_filter`, :mod:`.sockmap`, :mod:`.netfilter`;
- :mod:`.struct_ops` — registering struct_ops maps (not programs).

Submodules are imported on first use of a name.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Link": "base",
    "LinkInfo": "info",
    "PerfEventLink": "perf_event",
    "IterLink": "iter",
    "TcLink": "tc",
    "ProgAttachLink": "cgroup",
    "SocketFilterLink": "socket_filter",
    "attach_perf_event": "perf_event",
    "attach_tracepoint": "tracepoint",
    "attach_raw_tracepoint": "raw_tp",
    "attach_trace": "tracing",
    "attach_lsm": "tracing",
    "attach_freplace": "tracing",
    "set_freplace_target": "tracing",
    "attach_iter": "iter",
    "attach_uprobe": "uprobe",
    "attach_kprobe": "kprobe",
    "attach_ksyscall": "kprobe",
    "kprobe_support": "kprobe",
    "UsdtLink": "usdt",
    "attach_usdt": "usdt",
    "MultiProbeLink": "multi",
    "attach_uprobe_multi": "multi",
    "attach_kprobe_multi": "multi",
    "attach_xdp": "xdp",
    "attach_tcx": "tcx",
    "attach_tc": "tc",
    "attach_cgroup": "cgroup",
    "attach_socket": "socket_filter",
    "attach_sockmap": "sockmap",
    "attach_netfilter": "netfilter",
    "attach_struct_ops": "struct_ops",
    "StructOpsLink": "struct_ops",
    "StructOpsAttachment": "struct_ops",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'pybpfload.link' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(__all__)
