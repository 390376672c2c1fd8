"""bcc's batteries in pure Python: histograms, per-CPU sums, stacks, symbols, syscall names.

Nothing is imported here: use the submodules (:mod:`.hist`, :mod:`.percpu`,
:mod:`.symbols`, :mod:`.stacks`, :mod:`.syscalls`, :mod:`.errnos`), or the
top-level names ``pybpfload.print_log2_hist``, ``pybpfload.sym``...
"""
