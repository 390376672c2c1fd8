"""Where an object's ``__arena`` globals live in its arena, and the ld_imm64 that reach them. Pure.

clang 19 puts ``address_space(1)`` variables in ``.addr_space.1``; libbpf copies
that section into the object's one BPF_MAP_TYPE_ARENA map right after mmapping
it, and relocates every ld_imm64 of such a variable as global data of that map:
``src_reg`` BPF_PSEUDO_MAP_VALUE, ``imm`` the arena's fd, the next slot's ``imm``
the instruction's own ``imm`` + the symbol's offset + where the globals start in
the arena (``arena_data_off``).  The kernel turns that into the user address of
the variable (user_vm_start + offset).

Where they start:

* libbpf 1.4 to 1.6: at the start of the arena (offset 0);
* libbpf 1.7: at its end, ``mmap size - data size rounded up to whole pages``,
  leaving the first pages free (a NULL dereference then faults), when the kernel
  takes ld_imm64 map value offsets past 512 MiB (FEAT_LDIMM64_FULL_RANGE_OFF,
  :func:`pybpfload.syscall.features.has_ldimm64_full_range_off`); at the start
  on other kernels.

pybpfload follows 1.7.
"""

from __future__ import annotations

from ..elf.model import PAGE_SIZE
from .linker import BPF_PSEUDO_MAP_VALUE, ld_imm64_imm, patch_ld_imm64

__all__ = ["mmap_size", "data_offset", "patch_ref"]


def mmap_size(max_entries: int, page_size: int = PAGE_SIZE) -> int:
    """The size of an arena's user mapping: ``max_entries`` pages (libbpf's bpf_map_mmap_sz)."""
    return page_size * max_entries


def data_offset(max_entries: int, data_size: int, *, full_range_off: bool, page_size: int = PAGE_SIZE) -> int:
    """Where the arena globals start in the arena (libbpf 1.7's ``arena_data_off``).

    ``full_range_off``: the kernel takes ld_imm64 map value offsets past 512 MiB;
    only then are the globals placed at the end.
    """
    if not full_range_off:
        return 0
    whole_pages = (data_size + page_size - 1) // page_size * page_size
    return mmap_size(max_entries, page_size) - whole_pages


def patch_ref(insns: bytearray, idx: int, map_fd: int, sym_off: int, data_off: int) -> None:
    """Point the ld_imm64 at ``idx`` at an arena global: the variable at ``sym_off`` of
    ``.addr_space.1`` (plus the instruction's own ``imm``), ``data_off`` into the arena."""
    imm, _ = ld_imm64_imm(insns, idx)
    patch_ld_imm64(insns, idx, BPF_PSEUDO_MAP_VALUE, map_fd, imm + sym_off + data_off)
