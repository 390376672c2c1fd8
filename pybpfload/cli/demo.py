"""``pybpfload demo``: the README's main job, end to end on the bundled xdp_count object.

Loads the object, runs its XDP program on a few test packets through
BPF_PROG_TEST_RUN (no network interface is touched), prints the counter,
then pins the object on a private bpffs mounted in a temporary directory,
reads the counter back through the pin, and unpins and unmounts.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
from typing import Optional

from ..errors import BPFOSError

MNT_DETACH = 2


def bundled_object() -> str:
    """Path of the xdp_count object shipped inside the package."""
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "xdp_count.bpf.o")


def _mount_bpffs(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", os.fsencode(path), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise BPFOSError(err, "mount -t bpf", filename=path)


def _umount(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(os.fsencode(path), MNT_DETACH)


def run_demo(packets: int = 5, out: Optional[object] = None) -> int:
    from ..kernel.maps import Map
    from ..object import Object

    w = (out or sys.stdout).write  # type: ignore[attr-defined,union-attr]
    path = bundled_object()
    with Object.open(path) as obj:
        w(f"opened {os.path.basename(path)}: object {obj.name!r}, programs {list(obj.programs)}, maps {list(obj.maps)}\n")
        obj.load()
        prog = obj.find_program_by_name("xdp_count")
        assert prog is not None
        counts = obj.maps["pkt_count"]
        w(f"loaded: program fd {prog.fd} (id {prog.info().id}, tag {prog.info().tag}), BTF fd {obj.btf_fd}\n")
        packet = bytes.fromhex("ffffffffffff" "020000000001" "0800") + bytes(50)
        for i in range(packets):
            r = prog.test_run(packet)
            w(f"packet {i + 1}: XDP verdict {r.retval} ({'XDP_PASS' if r.retval == 2 else r.retval})\n")
        count = counts[0]  # typed from the map's BTF: an int
        w(f"pkt_count[0] = {count}\n")
        tmp = tempfile.mkdtemp(prefix="pybpfload-demo-")
        try:
            _mount_bpffs(tmp)
            try:
                pin_dir = os.path.join(tmp, "xdp_count")
                obj.pin(pin_dir)
                w(f"pinned under {pin_dir}: {sorted(os.listdir(pin_dir))}\n")
                with Map.from_pin(os.path.join(pin_dir, "pkt_count")) as again:
                    w(f"read through the pin: pkt_count[0] = {again[0]}\n")
                obj.unpin(pin_dir)
                w(f"unpinned: {sorted(os.listdir(pin_dir))}\n")
            finally:
                _umount(tmp)
        finally:
            os.rmdir(tmp)
    return 0 if count == packets else 1
