"""tcx: tc programs as links on a device's ingress or egress (Linux 6.6+)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

from ..errors import BPFError
from ..abi.uapi import AttachType
from ._attach_cmd import BPF_F_AFTER, BPF_F_BEFORE, BPF_F_ID, BPF_F_LINK, link_create, link_create_attr
from ..abi import uapi as t
from .base import Link, hook, prog_fd_of
from .xdp import ifindex_of

if TYPE_CHECKING:  # pragma: no cover
    from .base import ProgramLike

__all__ = ["attach_tcx", "tcx_link_attr", "tcx_attach_type"]


def tcx_attach_type(direction: Union[str, int]) -> int:
    """BPF_TCX_INGRESS / BPF_TCX_EGRESS from ``"ingress"`` / ``"egress"`` (or the number itself)."""
    if isinstance(direction, int):
        return direction
    try:
        return int({"ingress": AttachType.BPF_TCX_INGRESS, "egress": AttachType.BPF_TCX_EGRESS}[direction])
    except KeyError:
        raise BPFError(f"tcx direction must be 'ingress' or 'egress', got {direction!r}") from None


def tcx_link_attr(prog_fd: int, ifindex: int, attach_type: int, *, flags: int = 0, relative: int = 0, expected_revision: int = 0) -> Any:
    """LINK_CREATE attributes of a tcx link."""
    return link_create_attr(prog_fd, ifindex, attach_type, flags, tcx={"relative_fd": relative, "expected_revision": expected_revision})


def _relative(anchor: Any) -> tuple:
    """(flags, fd or id) naming a program or link to attach next to."""
    if isinstance(anchor, Link):
        return BPF_F_LINK, anchor.fileno()
    if isinstance(anchor, int):
        return BPF_F_ID, anchor  # a program id
    return 0, prog_fd_of(anchor, "attach next to")


@hook("tcx", t.ProgType.BPF_PROG_TYPE_SCHED_CLS, t.ProgType.BPF_PROG_TYPE_SCHED_ACT)
def attach_tcx(
    prog: "ProgramLike",
    dev: Union[int, str],
    direction: Union[str, int] = "ingress",
    *,
    before: Optional[Any] = None,
    after: Optional[Any] = None,
    expected_revision: int = 0,
) -> Link:
    """Attach a tc program as a tcx link on ``dev``'s ``direction`` ("ingress" / "egress").

    ``before`` / ``after`` place it next to a Program, a Link or a program
    id (default: last); ``expected_revision`` makes the attach fail if the
    device's program list changed meanwhile.
    """
    prog_fd = prog_fd_of(prog)
    ifindex = ifindex_of(dev)
    atype = tcx_attach_type(direction)
    flags, rel = 0, 0
    if before is not None and after is not None:
        raise BPFError("attach_tcx: give before or after, not both")
    if before is not None or after is not None:
        kind_flag, rel = _relative(before if before is not None else after)
        flags = (BPF_F_BEFORE if before is not None else BPF_F_AFTER) | kind_flag
    attr = tcx_link_attr(prog_fd, ifindex, atype, flags=flags, relative=rel, expected_revision=expected_revision)
    side = "ingress" if atype == AttachType.BPF_TCX_INGRESS else "egress"
    fd = link_create(attr, what=f"tcx {side} on ifindex {ifindex}", feature="tcx links", since=(6, 6))
    return Link(fd, prog, kind="tcx", target=f"{dev}:{side}")
