"""pybpfload: a pure-Python eBPF ELF loader with libbpf's semantics."""
