"""Objects in the kernel, each owning its fd: :class:`~.maps.Map`,
:class:`~.program.Program` and the multi-instance programs of :mod:`.variants`.

Attachments are :mod:`pybpfload.link`'s, ring and perf buffers
:mod:`pybpfload.events`'; the syscalls themselves, feature probes and pinning
live in :mod:`pybpfload.syscall`.
"""
