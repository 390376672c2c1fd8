"""Fuzzing pybpfload (issue 16): coverage-guided, in-process, no bpf(2) calls.

``python -m fuzz run --seconds 30 --target all`` fuzzes each target for that
long, one after the other, one process at a time; a crash (any exception
other than :class:`pybpfload.errors.BPFError`, a RecursionError or
MemoryError, or an input that runs past its time bound) is saved under
``fuzz/regressions/<target>/`` and, unless it is a known open bug
(:mod:`fuzz.known`), fails the run.  ``tests/test_fuzz_regressions.py``
replays every saved crash.

Modules: :mod:`.targets` (what each target does with its input),
:mod:`.harness` (running one input under time and memory bounds,
classifying the outcome, saving crashes), :mod:`.engine` (atheris /
libFuzzer driver, and a blind mutator when atheris is missing),
:mod:`.make_corpus` (the committed seed corpus), :mod:`.known`.
"""

from __future__ import annotations

from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parent
DATA = FUZZ_DIR / "data"
REGRESSIONS = FUZZ_DIR / "regressions"

TARGETS = ("elf", "btf", "btf_ext", "core", "prepare")
SEEDS = {t: FUZZ_DIR / "corpus" / t for t in TARGETS}

# Objects with CO-RE relocations: the btf_ext and core targets pick one with
# their input's first byte (index modulo the length).
CORE_FIXTURES = (
    "btf_core.bpf.o",
    "core_fields.bpf.o",
    "core_task.bpf.o",
    "core_types.bpf.o",
    "core_types_matches.bpf.o",
)
