"""Networking attachments on the real kernel, each proving the program ran.

Every test makes its own network namespaces (``ip netns``) and a veth pair
between them; traffic stays inside the machine (10.213.x addresses inside
the namespaces, or loopback).  The test process enters a namespace with
setns(2) for the calls that must happen there and always returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct
import subprocess
import time
from typing import Iterator, Tuple

import pytest

from pybpfload import Object
from pybpfload.errors import BPFError, NotSupportedError
from pybpfload.syscall.features import prog_type_supported
from pybpfload.link import Link, attach_cgroup, attach_socket, attach_tc, attach_tcx, attach_xdp
from pybpfload.link.tc import list_tc_filters
from pybpfload.syscall import AttachType, LinkType, ProgType

from .conftest import fixture_path, require_tool
from .kernel_adapt import assert_not_supported, vmlinux_has

pytestmark = pytest.mark.kernel

H_XDP, H_TCX, H_CLS, H_CG_EGRESS, H_CG_INGRESS, H_SOCKET, H_NETFILTER, H_SK_MSG, H_SK_SKB = range(9)
ADDR_A, ADDR_B = "10.213.0.1", "10.213.0.2"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args: str) -> None:
    out = subprocess.run([require_tool("ip"), *args], capture_output=True, text=True)
    assert out.returncode == 0, f"ip {' '.join(args)}: {out.stderr}"


@contextlib.contextmanager
def netns(name: str) -> Iterator[None]:
    """Run the block in network namespace ``name`` (this thread only)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:  # pragma: no cover - would leave us stranded
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(target)
        os.close(home)


@pytest.fixture
def veth() -> Iterator[Tuple[str, str]]:
    """Namespaces (a, b) joined by veth va (10.213.0.1, in a) <-> vb (10.213.0.2, in b)."""
    tag = f"pbl{os.getpid() % 100000}"
    a, b = f"{tag}a", f"{tag}b"
    _ip("netns", "add", a)
    try:
        _ip("netns", "add", b)
        try:
            _ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
            for ns, dev, addr in ((a, "va", ADDR_A), (b, "vb", ADDR_B)):
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
            yield a, b
        finally:
            subprocess.run(["ip", "netns", "del", b], check=False)
    finally:
        subprocess.run(["ip", "netns", "del", a], check=False)


@pytest.fixture
def net_obj() -> Iterator[Object]:
    """attach_net.bpf.o loaded; nf_counter only where the kernel has netfilter programs (6.4+)."""
    with Object.open(fixture_path("attach_net.bpf.o")) as obj:
        obj.programs["nf_counter"].autoload = prog_type_supported(ProgType.BPF_PROG_TYPE_NETFILTER)
        obj.load()
        yield obj


def hits(obj: Object, slot: int) -> int:
    return obj.maps["hits"][slot]  # typed: the __u64 count is an int


def udp_pair(ns_a: str, ns_b: str) -> Tuple[socket.socket, socket.socket]:
    """A receiver bound in namespace a, a sender in namespace b."""
    with netns(ns_a):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind((ADDR_A, 0))
        rx.settimeout(0.5)
    with netns(ns_b):
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # warm up (ARP) before any program is attached, so that counts are exact
    for _ in range(10):
        if send_udp(rx, tx, 1):
            break
    return rx, tx


def send_udp(rx: socket.socket, tx: socket.socket, n: int) -> int:
    """Send n datagrams b -> a; how many arrived."""
    port = rx.getsockname()[1]
    got = 0
    for i in range(n):
        tx.sendto(b"x%d" % i, (ADDR_A, port))
        try:
            rx.recv(64)
            got += 1
        except socket.timeout:
            pass
    return got


def test_xdp_counts_and_drops(veth: Tuple[str, str], net_obj: Object) -> None:
    a, b = veth
    rx, tx = udp_pair(a, b)
    prog = net_obj.programs["xdp_counter"]
    try:
        for mode in ("skb", None):
            with netns(a):
                link = attach_xdp(prog, "va", mode=mode)
                ifindex = socket.if_nametoindex("va")
            with link:
                before = hits(net_obj, H_XDP)
                assert send_udp(rx, tx, 5) == 5
                assert hits(net_obj, H_XDP) - before >= 5
                info = link.info()
                assert info.type == LinkType.BPF_LINK_TYPE_XDP and info.target["ifindex"] == ifindex
                assert info.prog_id == prog.info().id
                # now drop everything: nothing arrives, the program still counts
                bss = [m for n, m in net_obj.maps.items() if n.endswith(".bss")][0]
                bss[0] = struct.pack("=I", 1)
                before = hits(net_obj, H_XDP)
                assert send_udp(rx, tx, 3) == 0
                assert hits(net_obj, H_XDP) - before >= 3
                bss[0] = struct.pack("=I", 0)
            before = hits(net_obj, H_XDP)
            assert send_udp(rx, tx, 3) == 3  # detached on close
            assert hits(net_obj, H_XDP) == before
    finally:
        rx.close()
        tx.close()


def test_tcx_ingress(veth: Tuple[str, str], net_obj: Object) -> None:
    a, b = veth
    rx, tx = udp_pair(a, b)
    prog = net_obj.programs["tcx_counter"]
    try:
        with netns(a):
            if not vmlinux_has("bpf_link_type", "BPF_LINK_TYPE_TCX"):  # tcx: 6.6+
                with pytest.raises(NotSupportedError) as ei:
                    attach_tcx(prog, "va", "ingress").close()
                assert ei.value.feature == "tcx links"
                return
            link = attach_tcx(prog, "va", "ingress")
            second = attach_tcx(net_obj.programs["cls_counter"], "va", AttachType.BPF_TCX_INGRESS, before=link)
        with link, second:
            before, before2 = hits(net_obj, H_TCX), hits(net_obj, H_CLS)
            assert send_udp(rx, tx, 4) == 4
            assert hits(net_obj, H_TCX) - before >= 4 and hits(net_obj, H_CLS) - before2 >= 4
            info = link.info()
            assert info.type == LinkType.BPF_LINK_TYPE_TCX and info.attach_type == AttachType.BPF_TCX_INGRESS
            link.detach()  # explicit detach (BPF_LINK_DETACH)
            before = hits(net_obj, H_TCX)
            assert send_udp(rx, tx, 2) == 2
            assert hits(net_obj, H_TCX) == before
    finally:
        rx.close()
        tx.close()


def test_classic_tc_over_netlink(veth: Tuple[str, str], net_obj: Object) -> None:
    a, b = veth
    tc = require_tool("tc")
    rx, tx = udp_pair(a, b)
    prog = net_obj.programs["cls_counter"]
    try:
        with netns(a):
            link = attach_tc(prog, "va", "ingress", handle=7, priority=3)
        with link:
            shown = subprocess.run([tc, "-n", a, "filter", "show", "dev", "va", "ingress"], capture_output=True, text=True).stdout
            prog_id = prog.info().id
            assert f"id {prog_id} " in shown and "direct-action" in shown and "handle 0x7" in shown and "pref 3" in shown
            with netns(a):
                assert list_tc_filters("va", "ingress") == [
                    {"handle": 7, "priority": 3, "prog_id": prog_id, "name": "cls_counter", "direct_action": True}
                ]
            before = hits(net_obj, H_CLS)
            assert send_udp(rx, tx, 4) == 4
            assert hits(net_obj, H_CLS) - before >= 4
            assert link.info().prog_id == prog_id and not link.is_bpf_link
            with pytest.raises(NotSupportedError):
                link.pin("/sys/fs/bpf/nope")
        shown = subprocess.run([tc, "-n", a, "filter", "show", "dev", "va", "ingress"], capture_output=True, text=True).stdout
        assert f"id {prog_id} " not in shown
        before = hits(net_obj, H_CLS)
        assert send_udp(rx, tx, 2) == 2
        assert hits(net_obj, H_CLS) == before
    finally:
        rx.close()
        tx.close()


def _cgroup2_root() -> str:
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[2] == "cgroup2":
                return parts[1]
    pytest.skip("no cgroup v2 mount")
    raise AssertionError  # pragma: no cover


@pytest.mark.parametrize("legacy", [False, True], ids=["link", "prog_attach"])
def test_cgroup_skb_on_own_cgroup(net_obj: Object, legacy: bool) -> None:
    cg = os.path.join(_cgroup2_root(), f"pybpfload-test-{os.getpid()}")
    os.mkdir(cg)
    try:
        prog = net_obj.programs["cg_egress"]
        with attach_cgroup(prog, cg, legacy=legacy, flags=2 if legacy else 0) as link:  # BPF_F_ALLOW_MULTI
            assert link.is_bpf_link is (not legacy)
            if not legacy:
                info = link.info()
                assert info.type == LinkType.BPF_LINK_TYPE_CGROUP and info.attach_type == AttachType.BPF_CGROUP_INET_EGRESS
                assert info.target["cgroup_id"] == os.stat(cg).st_ino
            before = hits(net_obj, H_CG_EGRESS)
            # a child moves itself into the cgroup and sends 6 datagrams on loopback
            code = (
                "import os, socket\n"
                f"open({os.path.join(cg, 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "[s.sendto(b'x', ('127.0.0.1', 9)) for _ in range(6)]\n"
            )
            subprocess.run(["python3", "-c", code], check=True)
            assert hits(net_obj, H_CG_EGRESS) - before == 6
            # traffic from outside the cgroup is not seen
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"x", ("127.0.0.1", 9))
            assert hits(net_obj, H_CG_EGRESS) - before == 6
    finally:
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError:
                time.sleep(0.1)


def test_socket_filter_on_socketpair(net_obj: Object) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        link = attach_socket(net_obj.programs["sock_filter"], b)
        before = hits(net_obj, H_SOCKET)
        for msg in (b"keep", b"drop", b"kx", b"no"):
            a.send(msg)
        b.settimeout(0.2)
        got = []
        with contextlib.suppress(socket.timeout):
            while True:
                got.append(b.recv(64))
        assert got == [b"keep", b"kx"]
        assert hits(net_obj, H_SOCKET) - before == 4
        link.close()
        a.send(b"drop")
        assert b.recv(64) == b"drop"  # detached
        assert hits(net_obj, H_SOCKET) - before == 4


def test_sockmap_sk_msg_and_sk_skb(veth: Tuple[str, str], net_obj: Object) -> None:
    a, _ = veth
    with netns(a):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        cli = socket.create_connection(srv.getsockname())
        peer, _ = srv.accept()
    smap = net_obj.maps["sock_map"]
    try:
        msg_link = net_obj.programs["msg_verdict"].attach_sockmap(smap)
        skb_link = net_obj.programs["skb_verdict"].attach_sockmap(smap)
        with msg_link, skb_link:
            smap[0] = struct.pack("=I", cli.fileno())
            smap[1] = struct.pack("=I", peer.fileno())
            before_msg, before_skb = hits(net_obj, H_SK_MSG), hits(net_obj, H_SK_SKB)
            cli.sendall(b"hello")
            peer.settimeout(2)
            assert peer.recv(16) == b"hello"
            assert hits(net_obj, H_SK_MSG) - before_msg >= 1
            assert hits(net_obj, H_SK_SKB) - before_skb >= 1
            if msg_link.is_bpf_link:
                info = msg_link.info()
                assert info.type == LinkType.BPF_LINK_TYPE_SOCKMAP and info.target["map_id"] == smap.info().id
                assert info.attach_type == AttachType.BPF_SK_MSG_VERDICT
            del smap[0]
            del smap[1]
    finally:
        for s in (cli, peer, srv):
            s.close()


def test_netfilter_local_out(veth: Tuple[str, str], net_obj: Object) -> None:
    a, _ = veth
    prog = net_obj.programs["nf_counter"]
    if not prog_type_supported(ProgType.BPF_PROG_TYPE_NETFILTER):
        # no netfilter programs before 6.4: loading it is refused with an error naming it
        assert not prog.loaded
        with Object.open(fixture_path("attach_net.bpf.o")) as obj:
            for name, p in obj.programs.items():
                p.autoload = name == "nf_counter"
            with pytest.raises(BPFError, match="nf_counter") as ei:
                obj.load()
            assert_not_supported(ei.value, "program type netfilter", "nf_counter")
        return
    with netns(a):
        link = prog.attach_netfilter("ipv4", "local_out", -128)  # netfilter links came with the program type
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a receiver, so no ICMP replies pass the hook too
        sink.bind(("127.0.0.1", 0))
    with link, s, sink:
        info = link.info()
        assert info.type == LinkType.BPF_LINK_TYPE_NETFILTER
        assert (info.target["pf"], info.target["hooknum"], info.target["priority"]) == (2, 3, -128)
        before = hits(net_obj, H_NETFILTER)
        for _ in range(5):
            s.sendto(b"x", sink.getsockname())
        assert hits(net_obj, H_NETFILTER) - before == 5
        # the hook belongs to namespace a: traffic in ours is not seen
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as here:
            here.sendto(b"x", ("127.0.0.1", 9))
        assert hits(net_obj, H_NETFILTER) - before == 5
        assert [sink.recv(8) for _ in range(5)] == [b"x"] * 5


def test_xdp_link_pinned_survives_close(veth: Tuple[str, str], net_obj: Object, bpffs) -> None:  # type: ignore[no-untyped-def]
    a, b = veth
    rx, tx = udp_pair(a, b)
    try:
        with netns(a):
            link = attach_xdp(net_obj.programs["xdp_counter"], "va")
        path = str(bpffs / "xdp_link")
        link.pin(path)
        link_id = link.info().id
        link.close()
        before = hits(net_obj, H_XDP)
        assert send_udp(rx, tx, 2) == 2 and hits(net_obj, H_XDP) - before >= 2  # still attached
        again = Link.from_pin(path)
        assert again.info().id == link_id and again.kind == "xdp"
        again.detach()  # BPF_LINK_DETACH + unpin
        assert not os.path.exists(path)
        before = hits(net_obj, H_XDP)
        assert send_udp(rx, tx, 2) == 2 and hits(net_obj, H_XDP) == before
    finally:
        rx.close()
        tx.close()
