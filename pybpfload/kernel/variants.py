"""Multi-instance programs: several variants of one program loaded from one object.

libbpf 0.x had ``bpf_program__set_prep(prog, nr_instances, prep)``: at load,
``prep`` was called once per instance with the program's relocated
instructions and returned the instructions of that instance (perf used it to
put a different argument-fetching prologue in front of one program body per
probe point); ``bpf_program__nth_fd(prog, n)`` gave the fd of instance ``n``.
libbpf 1.0 removed both in favour of ``bpf_program__insns`` /
``bpf_program__set_insns``.

The modern equivalent here:

* before load, a program's instructions are readable and replaceable
  (:attr:`Program.insns <pybpfload.kernel.program.Program.insns>`, as
  ``bpf_program__insns`` / ``bpf_program__set_insns``);
* after load, :func:`load_variants` (``obj.program_variants(...)``) calls
  ``prep(n, insns)`` for ``n`` in ``range(count)`` with the program's
  *relocated* instructions — map references already hold the object's map
  fds, subprograms are appended — and loads each result as a program of
  the same type, attach type, flags and license.  Every variant shares the
  object's maps.  ``prep`` returning None skips that instance (its fd is
  -1, as an instance whose prep result had no instructions in libbpf).

Variants are loaded without .BTF.ext func_info / line_info (a prologue
would shift them), so programs calling *global* BPF functions, which the
verifier checks through BTF, cannot be varied; programs calling kfuncs in
modules neither (their BTF fds are closed after the object's load).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Sequence

from ..errors import BPFError, NotSupportedError, StateError

if TYPE_CHECKING:  # pragma: no cover
    from .program import Insns, Program
    from ..syscall.token import Token

__all__ = ["ProgramVariants", "load_variants", "Prep"]

# prep(n, insns) -> the instructions of instance n, or None to skip it
Prep = Callable[[int, bytes], "Optional[Insns]"]


class ProgramVariants:
    """The loaded instances of one program; ``variants[n]`` is a Program or None (skipped).

    Owns every instance's fd: :meth:`close` (or leaving a ``with`` block)
    closes them all.
    """

    def __init__(self, name: str, instances: Sequence[Optional["Program"]]) -> None:
        self.name = name
        self._instances: List[Optional["Program"]] = list(instances)

    def __len__(self) -> int:
        return len(self._instances)

    def __getitem__(self, n: int) -> Optional["Program"]:
        return self._instances[n]

    def __iter__(self) -> Iterator[Optional["Program"]]:
        return iter(self._instances)

    def nth_fd(self, n: int) -> int:
        """The fd of instance ``n``; -1 when it was skipped (bpf_program__nth_fd).

        Raises IndexError for an ``n`` outside ``range(len(self))``.
        """
        if not 0 <= n < len(self._instances):
            raise IndexError(f"program {self.name!r} has {len(self._instances)} instances, not {n + 1}")
        p = self._instances[n]
        return p.fd if p is not None else -1

    @property
    def fds(self) -> List[int]:
        return [p.fd if p is not None else -1 for p in self._instances]

    def pin(self, directory: str) -> None:
        """Pin instance ``n`` at ``directory/<n>`` (old libbpf's multi-instance bpf_program__pin).

        The directory is created (on bpffs); skipped instances are not
        pinned.  A failure unpins what this call pinned.
        """
        from ..syscall import pinning

        pinning.check_pin_path(directory)  # its parent is on bpffs
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise BPFError(f"cannot create {directory!r}: {e.strerror}") from None
        done: List["Program"] = []
        try:
            for n, p in enumerate(self._instances):
                if p is not None:
                    p.pin(os.path.join(directory, str(n)))
                    done.append(p)
        except BaseException:
            for p in done:
                p.unpin()
            raise

    def unpin(self, directory: str) -> None:
        """Remove the pins :meth:`pin` made, and the directory once empty."""
        for n, p in enumerate(self._instances):
            if p is not None:
                p.unpin(os.path.join(directory, str(n)))
        try:
            os.rmdir(directory)
        except OSError:
            pass

    def close(self) -> None:
        for p in self._instances:
            if p is not None:
                p.close()

    def __enter__(self) -> "ProgramVariants":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ProgramVariants {self.name!r} fds={self.fds}>"


def load_variants(base: "Program", prep: Prep, count: int, token: Optional["Token"] = None) -> ProgramVariants:
    """Load ``count`` variants of the loaded program ``base`` (of a loaded object:
    :meth:`pybpfload.Object.program_variants` checks the object and finds the program).

    ``prep(n, insns)`` gets the program's relocated instructions (bytes, 8
    per slot) and returns instance ``n``'s instructions (bytes or
    :class:`~pybpfload.elf.insn.Insn` objects), or None to skip instance ``n``.
    A failure (prep raising, the verifier refusing) closes the instances
    already loaded and propagates.  ``token``: the BPF token ``base``'s object
    loaded through (the variants go through it too).
    """
    from .program import Program

    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f"count must be a positive int, got {count!r}")
    name = base.name
    if not base.loaded:
        raise StateError(f"program {name!r} was not loaded (autoload off?): it has no relocated instructions")
    if base.attach_btf_obj_fd:
        raise NotSupportedError("variants of programs attached to module BTF")
    relocated = base.insns
    out: List[Optional[Program]] = []
    try:
        for n in range(count):
            insns = prep(n, relocated)
            if insns is None:
                out.append(None)
                continue
            p = Program(
                base.name,
                base.type,
                insns,
                base.license,
                expected_attach_type=base.expected_attach_type,
                flags=base.flags,
                kern_version=base.kern_version,
                section_name=base.section_name,
                attach_btf_id=base.attach_btf_id,
                attach_prog_fd=base.attach_prog_fd,
                ifindex=base.ifindex,
                log_level=base.log_level,
            )
            out.append(p._load(token=token))
    except BaseException:
        for q in out:
            if q is not None:
                q.close()
        raise
    return ProgramVariants(name, out)
