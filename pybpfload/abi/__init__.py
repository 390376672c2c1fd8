"""The kernel's BPF ABI as plain Python: enums (program, map, attach, link
types, helper ids, commands) and the ctypes layouts of ``union bpf_attr`` and
the info structs, generated from kernel BTF by ``tools/gen_syscall_types.py``
into :mod:`.uapi`; and :mod:`.record`, the immutable record base of the model
classes (BTF types, ELF sections and symbols).  Definitions only: nothing here
calls the kernel, so every stage (the pure ones included) may use them.
"""
