#!/usr/bin/env python3
"""Count packets with XDP on one end of a veth pair between two network namespaces.

    sudo python3 examples/xdp_veth_counter.py [--seconds 5] [--mode skb|drv]

Makes namespaces pbx<pid>a / pbx<pid>b joined by veth va (10.213.9.1) <->
vb (10.213.9.2), attaches fixtures/xdp_count.bpf.o to va, sends UDP
datagrams from b to a once a second and prints the packet count.  All
traffic stays inside the namespaces; everything is removed on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from pybpfload import Object

OBJ = Path(__file__).resolve().parent.parent / "fixtures" / "xdp_count.bpf.o"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def netns(name: str) -> Iterator[None]:
    """Run the block in network namespace ``name`` (this thread only)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            _libc.setns(home, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--mode", choices=["skb", "drv"], default=None, help="XDP mode (default: the kernel's choice)")
    args = ap.parse_args()

    a, b = f"pbx{os.getpid()}a", f"pbx{os.getpid()}b"
    ip("netns", "add", a)
    ip("netns", "add", b)
    try:
        ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
        for ns, dev, addr in ((a, "va", "10.213.9.1"), (b, "vb", "10.213.9.2")):
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        with netns(a):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rx.bind(("10.213.9.1", 0))
        with netns(b):
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with Object.open(OBJ) as obj, rx, tx:
            obj.load()
            with netns(a):
                link = obj.programs["xdp_count"].attach_xdp("va", mode=args.mode)
            with link:
                print(f"XDP program on va in {a} (link id {link.info().id}); sending from {b}", flush=True)
                for second in range(args.seconds):
                    for i in range(10):
                        tx.sendto(b"ping %d" % i, rx.getsockname())
                    time.sleep(1)
                    count = obj.maps["pkt_count"][0]  # typed: the __u64 is an int
                    print(f"{second + 1:3d}s  packets seen by XDP on va: {count}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        subprocess.run(["ip", "netns", "del", b], check=False)
        subprocess.run(["ip", "netns", "del", a], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
