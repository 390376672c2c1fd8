"""BPF tokens (Linux 6.9+): bpf() rights a privileged parent delegates to a user namespace.

A bpffs instance made for a user namespace (``fsopen("bpf")`` inside it) and
configured by a process privileged in the initial namespace with the mount
options ``delegate_cmds``, ``delegate_maps``, ``delegate_progs`` and
``delegate_attachs`` lets a process of that namespace create a token from its
root (BPF_TOKEN_CREATE).  Passed with a command (map and program creation, BTF
load), the token answers the capability checks within the namespace for what
that bpffs delegates; what it does not delegate is checked as without a token.

:class:`Token` owns a token fd and the feature probe results made through it
(libbpf caches its probes per token too).  :func:`prepare` is libbpf's
``bpf_object_prepare_token``: the token an object loads through, from its
``bpf_token_path`` (or ``LIBBPF_BPF_TOKEN_PATH``), or the optional attempt at
/sys/fs/bpf when neither says anything.

What the kernel answers BPF_TOKEN_CREATE, and what it means here:

- EINVAL: the fd is not the root of a bpffs mount — or the kernel does not know
  the command (before 6.9).  A probe tells which (:func:`has_bpf_token`): the
  latter is a :class:`~pybpfload.errors.NotSupportedError`;
- ENOENT: that bpffs delegates nothing;
- EPERM: the bpffs belongs to another user namespace, or the caller lacks
  CAP_BPF in it;
- EOPNOTSUPP: the caller is in the initial user namespace (tokens are for
  namespaced, unprivileged processes).
"""

from __future__ import annotations

import errno
import os
from typing import Any, Dict, FrozenSet, Optional, Union

from ..abi.record import Record, _set
from ..abi.uapi import AttachType, Cmd, MapType, ProgType
from ..errors import BPFOSError, NotSupportedError, SyscallError
from .fd import Fd, FdOwner
from .features import has_bpf_token

__all__ = ["Token", "TokenInfo", "prepare", "has_bpf_token", "DEFAULT_BPFFS", "TOKEN_PATH_ENV"]

# libbpf's BPF_FS_DEFAULT_PATH and the variable bpf_object__open reads when bpf_token_path is unset
DEFAULT_BPFFS = "/sys/fs/bpf"
TOKEN_PATH_ENV = "LIBBPF_BPF_TOKEN_PATH"

_WHY = {
    errno.ENOENT: "this BPF FS delegates nothing: it needs delegate_cmds / delegate_maps / delegate_progs / delegate_attachs mount options",
    errno.EPERM: "the BPF FS belongs to another user namespace, or this process lacks CAP_BPF in its namespace",
    errno.EOPNOTSUPP: "tokens are not created in the initial user namespace",
    errno.EINVAL: "not the root of a BPF FS mount",
}


def _bits(mask: int, enum: Any) -> FrozenSet[int]:
    out = set()
    for bit in range(64):
        if mask >> bit & 1:
            try:
                out.add(enum(bit))
            except ValueError:
                out.add(bit)
    return frozenset(out)


class TokenInfo(Record):
    """What a token allows (struct bpf_token_info): commands, map, program and attach types.

    Members are the uapi enums (:class:`~pybpfload.abi.uapi.Cmd`, ``MapType``,
    ``ProgType``, ``AttachType``); a bit this package's enums do not name stays an int.
    """

    __slots__ = _fields = ("allowed_cmds", "allowed_maps", "allowed_progs", "allowed_attachs")
    allowed_cmds: FrozenSet[int]
    allowed_maps: FrozenSet[int]
    allowed_progs: FrozenSet[int]
    allowed_attachs: FrozenSet[int]

    def __init__(self, allowed_cmds: int, allowed_maps: int, allowed_progs: int, allowed_attachs: int) -> None:
        _set(self, "allowed_cmds", _bits(allowed_cmds, Cmd))
        _set(self, "allowed_maps", _bits(allowed_maps, MapType))
        _set(self, "allowed_progs", _bits(allowed_progs, ProgType))
        _set(self, "allowed_attachs", _bits(allowed_attachs, AttachType))


class Token(FdOwner):
    """A BPF token; owns its fd (closed by :meth:`close` or ``with``).

    Commands take it as ``token_fd`` (``commands.map_create(..., token_fd=tok.fd)``);
    an :class:`~pybpfload.Object` makes its own from ``bpf_token_path``.
    """

    __slots__ = ("_fd", "path", "_features")

    def __init__(self, fd: Fd, path: Optional[str] = None) -> None:
        self._fd = fd
        self.path = path  # the bpffs it came from, when known
        self._features: Dict[tuple, Any] = {}  # feature probes made through this token (bools, BtfFeatures)

    @classmethod
    def create(cls, bpffs: Union[str, "os.PathLike[str]", int], *, context: str = "") -> "Token":
        """A token from a bpffs mount: its path, or an fd of its root (an ``fsmount`` fd too).

        Errors name the path and what the kernel's answer means (see the module
        docstring); ``context`` ("object 'x': ") prefixes them.  A kernel without
        BPF_TOKEN_CREATE raises :class:`~pybpfload.errors.NotSupportedError`.
        """
        from . import commands

        if isinstance(bpffs, int):
            path = f"fd {bpffs}"
            dir_fd = bpffs
            opened = False
        else:
            path = os.fspath(bpffs)
            try:
                dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise BPFOSError(e.errno or errno.EINVAL, f"{context}cannot open BPF FS mount {path!r} for a BPF token", filename=path) from None
            opened = True
        try:
            fd = commands.token_create(dir_fd, name=path)
        except SyscallError as e:
            if e.errno == errno.EINVAL and _lacks_tokens():
                raise NotSupportedError(
                    "BPF tokens (BPF_TOKEN_CREATE)",
                    f"{context}creating a token from {path!r}: the kernel does not know the command (EINVAL); tokens came in Linux 6.9",
                    errno=errno.EINVAL,
                ) from None
            why = _WHY.get(e.errno or 0, "")
            raise SyscallError(e.errno or 0, f"{context}BPF_TOKEN_CREATE", path, detail=why) from None
        finally:
            if opened:
                os.close(dir_fd)
        return cls(fd, path)

    # -- fd ownership ------------------------------------------------------------------
    def close(self) -> None:
        """Close the token fd (what was created through it lives on)."""
        self._fd.close()

    def __repr__(self) -> str:
        where = f" from {self.path!r}" if self.path else ""
        return f"<Token fd={self._fd.raw}{where}>"

    # -- what it allows ------------------------------------------------------------------
    def info(self) -> TokenInfo:
        """What the token allows: BPF_OBJ_GET_INFO_BY_FD where the kernel answers it for
        tokens, else the token's /proc fdinfo (every token kernel writes it; "any" there
        reads as every value the running kernel's enums have)."""
        from ..abi.uapi import TokenInfo as _Raw
        from . import commands

        try:
            raw = commands.obj_get_info_by_fd(self.fd, _Raw(), name="BPF token")
            return TokenInfo(raw.allowed_cmds, raw.allowed_maps, raw.allowed_progs, raw.allowed_attachs)
        except SyscallError as e:
            if e.errno != errno.EINVAL:
                raise
        fields: Dict[str, int] = {}
        full = {
            "allowed_cmds": _all_bits(Cmd),
            "allowed_maps": _all_bits(MapType),
            "allowed_progs": _all_bits(ProgType),
            "allowed_attachs": _all_bits(AttachType),
        }
        with open(f"/proc/self/fdinfo/{self.fd}") as f:
            for line in f:
                key, _, value = line.partition(":")
                value = value.strip()
                if key in full:
                    fields[key] = full[key] if value == "any" else int(value, 16)
        return TokenInfo(**{k: fields.get(k, 0) for k in full})


def _lacks_tokens() -> bool:
    """The kernel does not know BPF_TOKEN_CREATE (False when the probe cannot tell)."""
    try:
        return not has_bpf_token()
    except SyscallError:
        return False


def _all_bits(enum: Any) -> int:
    mask = 0
    for member in enum:
        if 0 <= int(member) < 64:
            mask |= 1 << int(member)
    return mask


def prepare(token_path: Optional[str], obj_name: str) -> Optional[Token]:
    """The token an object loads through (libbpf's ``bpf_object_prepare_token``).

    ``token_path`` is the object's ``bpf_token_path`` as opened (the option, else
    ``LIBBPF_BPF_TOKEN_PATH``): "" makes no token; a path must give one (failures
    raise); None tries /sys/fs/bpf and goes on without a token on any failure
    (logged at debug level, as libbpf).
    """
    from .. import log

    if token_path == "":
        log.debug("object '%s': token is prevented, skipping...", obj_name)
        return None
    mandatory = token_path is not None
    path = token_path if token_path is not None else DEFAULT_BPFFS
    context = f"object {obj_name!r}: "
    try:
        token = Token.create(path, context=context)
    except (BPFOSError, NotSupportedError) as e:
        if mandatory:
            log.warn("%s", e)  # the error names the object, the path and the kernel's answer
            raise
        if isinstance(e, SyscallError) and e.errno == errno.ENOENT:
            log.debug("object '%s': BPF FS at '%s' doesn't have BPF token delegation set up, skipping...", obj_name, path)
        else:
            log.debug("%s, skipping optional step...", e)
        return None
    log.debug("object '%s': created BPF token from '%s', fd %d", obj_name, path, token.fd)
    return token
