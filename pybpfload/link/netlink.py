"""A minimal rtnetlink client (pure Python sockets): requests with an ACK, and dumps.

Only what classic tc needs: netlink messages, attributes (nested too),
request / acknowledgement, dump parsing.
"""

from __future__ import annotations

import socket
import struct
from typing import Dict, Iterator, List, Tuple, Union

from ..errors import ParseError, SyscallError

__all__ = ["RtNetlink", "attr", "nested", "parse_attrs", "NLM_F_REQUEST", "NLM_F_ACK", "NLM_F_CREATE", "NLM_F_EXCL", "NLM_F_DUMP"]

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLA_F_NESTED = 1 << 15
_HDR = struct.Struct("=IHHII")  # struct nlmsghdr
_NLA = struct.Struct("=HH")  # struct nlattr
_MAX_REPLY = 1 << 20


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, value: Union[bytes, str, int]) -> bytes:
    """One netlink attribute: bytes as is, str NUL-terminated, int as u32."""
    if isinstance(value, str):
        data = value.encode() + b"\0"
    elif isinstance(value, int):
        data = struct.pack("=I", value)
    else:
        data = bytes(value)
    n = _NLA.size + len(data)
    return _NLA.pack(n, kind) + data + b"\0" * (_align(n) - n)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def parse_attrs(data: bytes) -> Dict[int, bytes]:
    """Attributes by type (nested flag dropped); a malformed run raises ParseError."""
    out: Dict[int, bytes] = {}
    pos = 0
    while pos + _NLA.size <= len(data):
        n, kind = _NLA.unpack_from(data, pos)
        if n < _NLA.size or pos + n > len(data):
            raise ParseError(f"netlink attribute of length {n} at {pos} overruns its message")
        out[kind & ~NLA_F_NESTED] = data[pos + _NLA.size : pos + n]
        pos += _align(n)
    return out


class RtNetlink:
    """A NETLINK_ROUTE socket in the caller's network namespace."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            self.sock.bind((0, 0))
            self.sock.setsockopt(270, 11, 1)  # SOL_NETLINK, NETLINK_EXT_ACK: error messages from the kernel
        except OSError:
            pass
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RtNetlink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, msg_type: int, flags: int, payload: bytes) -> int:
        self.seq += 1
        self.sock.sendto(_HDR.pack(_HDR.size + len(payload), msg_type, flags, self.seq, 0) + payload, (0, 0))
        return self.seq

    def _messages(self, seq: int) -> Iterator[Tuple[int, int, bytes]]:
        while True:
            data = self.sock.recv(_MAX_REPLY)
            pos = 0
            while pos + _HDR.size <= len(data):
                n, mtype, flags, mseq, _ = _HDR.unpack_from(data, pos)
                if n < _HDR.size or pos + n > len(data):
                    raise ParseError(f"netlink message of length {n} overruns the reply")
                body = data[pos + _HDR.size : pos + n]
                pos += _align(n)
                if mseq != seq:
                    continue
                yield mtype, flags, body

    def request(self, msg_type: int, flags: int, payload: bytes, what: str) -> None:
        """Send a request and wait for its acknowledgement; a negative ack raises SyscallError."""
        seq = self._send(msg_type, flags | NLM_F_REQUEST | NLM_F_ACK, payload)
        for mtype, _, body in self._messages(seq):
            if mtype == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", body)
                if err:
                    raise SyscallError(-err, "netlink", detail=what)
                return

    def dump(self, msg_type: int, payload: bytes, what: str) -> List[bytes]:
        """Send a dump request; the bodies of every reply message."""
        seq = self._send(msg_type, NLM_F_REQUEST | NLM_F_DUMP, payload)
        out: List[bytes] = []
        for mtype, _, body in self._messages(seq):
            if mtype == NLMSG_DONE:
                return out
            if mtype == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", body)
                if err:
                    raise SyscallError(-err, "netlink", detail=what)
                return out
            out.append(body)
        return out  # pragma: no cover
