"""realworld: pybpfload against libbpf on BPF objects from compiled open-source tools.

A test-infrastructure tool of the project (not part of the pybpfload package).
``corpus.py`` downloads Debian packages that ship compiled BPF objects (bcc's
libbpf-tools, xdp-tools / libxdp, systemd, cilium/ebpf's testdata, bpftune, bpftop,
bpfilter) from several suites, unpacks them
and collects every BPF relocatable ELF, whether it is a file of its own or
embedded in a program as a libbpf skeleton.  ``sweep.py`` opens and loads each
object with libbpf (Debian's libbpf.so.1 through ctypes, the ORACLE) and with
pybpfload, and reports every difference: programs, sections, types, attach
types, instructions before load, map definitions, and after load the program
tags (hash of the translated instructions) and the maps the kernel holds.
Entry point: ``python -m realworld`` with tools/ on PYTHONPATH.
"""
