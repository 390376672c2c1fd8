"""The relocation engine: from the ELF model and BTF to instructions the kernel
accepts.

- :mod:`.linker` — static linking of one program (subprograms appended, calls fixed);
- :mod:`.co_re` — CO-RE relocation of an object's programs (the engine is
  :mod:`pybpfload.btf.relo_core`);
- :mod:`.extern_values` — values of ``__kconfig`` / ``__ksym`` externs;
- :mod:`.struct_ops_plan` — struct_ops maps planned against the kernel's BTF;
- :mod:`.loader` — the one place that performs the load (BTF, maps, programs,
  in libbpf's order, undone on failure).

All of it is pure (bytes and models in, models out) except :mod:`.loader`.
"""
