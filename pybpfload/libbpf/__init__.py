"""libbpf's C API under libbpf's names, so that C code ports to Python line by line.

Split as libbpf's own headers: :mod:`.libbpf_h` (version, print, probes,
bpf_object / bpf_program / bpf_map, attach), :mod:`.bpf_h` (the low-level
bpf.h API), :mod:`.btf_h` (btf.h) and :mod:`.buffers` (ring, perf and user
ring buffers); every name is importable from here.

    obj = bpf_object__open_file(path, None)
    if libbpf_get_error(obj):
        ...
    err = bpf_object__load(obj)

API level
---------
We mirror **libbpf 1.1**: ``libbpf_major_version()`` is 1,
``libbpf_minor_version()`` 1, ``libbpf_version_string()`` "v1.1".  The spec
documents libbpf 0.8, but what pybpfload does follows libbpf 1.x: functions
return NULL with errno set instead of error pointers, getters and setters
have their 1.x return codes (``bpf_program__fd`` of an unloaded program is
-ENOENT, setters after load -EBUSY), ``bpf_program__set_prep`` is gone from
libbpf (we keep it and ``bpf_program__nth_fd`` on top of
:mod:`pybpfload.kernel.variants`, for the spec's section 6).  1.1 is also the
libbpf the test suite checks this module against (Debian's libbpf1), so
every behaviour claimed here is compared with the real thing.

Conventions
-----------
* ``struct bpf_object`` / ``bpf_program`` / ``bpf_map`` / ``ring_buffer`` are
  pybpfload's :class:`~pybpfload.object.Object`, :class:`~pybpfload.kernel.program.Program`,
  :class:`~pybpfload.kernel.maps.Map`, :class:`~pybpfload.events.ringbuf.RingBuffer`;
  ``struct btf`` is :class:`Btf` (a :class:`~pybpfload.btf.Spec` and the fd
  it has in the kernel).
* Functions returning ``int`` return a negative errno (or
  ``-LIBBPF_ERRNO__*``) on failure and set errno; functions returning a
  pointer return None on failure with errno set.  pybpfload exceptions
  never escape for failures libbpf reports by return value (wrong Python
  types still raise TypeError, where C would not compile).
* Test results for None with ``is None`` where C writes ``if (!map)``: a
  :class:`~pybpfload.kernel.maps.Map` is a mapping, so ``not map`` asks its length.
* errno is ctypes' thread-local errno slot: :func:`get_errno` (or
  ``ctypes.get_errno()``) reads it, and ``libbpf_get_error(None)`` returns
  ``-errno``, as in libbpf 1.x.  It is per thread, like C's errno, and like
  C's, a later call may overwrite it.
* ``const void *`` inputs (keys, values, BTF data) take any bytes-like or
  ctypes object; ``void *`` outputs take a writable one (bytearray, ctypes
  array or structure) and are filled.  Sizes are checked against the map,
  so a short Python buffer is -EINVAL where C would overflow.
* Scalar out-parameters (``__u32 *next_id``, ``size_t *psize``) take a
  ctypes scalar (``ctypes.c_uint32()``) or any object with a ``value``
  attribute, which is set.
* ``char *buf, size_t size`` outputs (``libbpf_strerror``, log buffers) take
  a bytearray, filled NUL-terminated as C does.
* Options structs (``struct bpf_object_open_opts`` ...) are the dataclasses
  below, or dicts with the same keys, or None.  Those with outputs
  (:class:`BpfTestRunOpts`) are mutable, as their C structs.
* Fds returned by the bpf.h functions (``bpf_map_create``, ``bpf_prog_load``,
  ``bpf_obj_get``, ``bpf_*_get_fd_by_id``) belong to the caller, who closes
  them with ``os.close`` as C calls ``close``.
"""

from __future__ import annotations

from ._common import (  # noqa: F401
    BPF_ANY,
    BPF_EXIST,
    BPF_F_LOCK,
    BPF_NOEXIST,
    BpfMapCreateOpts,
    BpfObjectOpenOpts,
    BpfProgLoadOpts,
    BpfTestRunOpts,
    LIBBPF_DEBUG,
    LIBBPF_ERRNO__ENDIAN,
    LIBBPF_ERRNO__FORMAT,
    LIBBPF_ERRNO__INTERNAL,
    LIBBPF_ERRNO__INVSEQ,
    LIBBPF_ERRNO__KVER,
    LIBBPF_ERRNO__KVERSION,
    LIBBPF_ERRNO__LIBELF,
    LIBBPF_ERRNO__LOAD,
    LIBBPF_ERRNO__NLPARSE,
    LIBBPF_ERRNO__PROG2BIG,
    LIBBPF_ERRNO__PROGTYPE,
    LIBBPF_ERRNO__RELOC,
    LIBBPF_ERRNO__VERIFY,
    LIBBPF_ERRNO__WRNGPID,
    LIBBPF_INFO,
    LIBBPF_MAJOR_VERSION,
    LIBBPF_MINOR_VERSION,
    LIBBPF_WARN,
    bpf_insn,
    get_errno,
)
from .btf_h import (  # noqa: F401
    Btf,
    btf__align_of,
    btf__base_btf,
    btf__fd,
    btf__find_by_name,
    btf__find_by_name_kind,
    btf__free,
    btf__load_into_kernel,
    btf__load_vmlinux_btf,
    btf__name_by_offset,
    btf__new,
    btf__parse,
    btf__parse_elf,
    btf__parse_raw,
    btf__raw_data,
    btf__resolve_size,
    btf__resolve_type,
    btf__str_by_offset,
    btf__type_by_id,
    btf__type_cnt,
)
from .bpf_h import (  # noqa: F401
    BpfLinkCreateOpts,
    BpfLinkUpdateOpts,
    bpf_btf_get_fd_by_id,
    bpf_btf_get_next_id,
    bpf_btf_load,
    bpf_enable_stats,
    bpf_link_create,
    bpf_link_detach,
    bpf_link_get_fd_by_id,
    bpf_link_get_info_by_fd,
    bpf_link_get_next_id,
    bpf_link_update,
    bpf_map_create,
    bpf_map_delete_elem,
    bpf_map_delete_elem_flags,
    bpf_map_freeze,
    bpf_map_get_fd_by_id,
    bpf_map_get_next_id,
    bpf_map_get_next_key,
    bpf_map_lookup_and_delete_elem,
    bpf_map_lookup_and_delete_elem_flags,
    bpf_map_lookup_elem,
    bpf_map_lookup_elem_flags,
    bpf_map_update_elem,
    bpf_obj_get,
    bpf_obj_get_info_by_fd,
    bpf_obj_pin,
    bpf_prog_bind_map,
    bpf_prog_get_fd_by_id,
    bpf_prog_get_next_id,
    bpf_prog_load,
    bpf_prog_test_run_opts,
)
from .libbpf_h import (  # noqa: F401
    BpfKprobeMultiOpts,
    BpfProgramPrepResult,
    BpfUprobeMultiOpts,
    BpfUsdtOpts,
    bpf_link__update_map,
    bpf_map__attach_struct_ops,
    bpf_map__autocreate,
    bpf_map__btf_key_type_id,
    bpf_map__btf_value_type_id,
    bpf_map__delete_elem,
    bpf_map__fd,
    bpf_map__get_next_key,
    bpf_map__ifindex,
    bpf_map__initial_value,
    bpf_map__inner_map,
    bpf_map__is_internal,
    bpf_map__is_pinned,
    bpf_map__key_size,
    bpf_map__lookup_and_delete_elem,
    bpf_map__lookup_elem,
    bpf_map__map_extra,
    bpf_map__map_flags,
    bpf_map__max_entries,
    bpf_map__name,
    bpf_map__numa_node,
    bpf_map__pin,
    bpf_map__pin_path,
    bpf_map__reuse_fd,
    bpf_map__set_autocreate,
    bpf_map__set_ifindex,
    bpf_map__set_initial_value,
    bpf_map__set_key_size,
    bpf_map__set_map_extra,
    bpf_map__set_map_flags,
    bpf_map__set_max_entries,
    bpf_map__set_numa_node,
    bpf_map__set_pin_path,
    bpf_map__set_type,
    bpf_map__set_value_size,
    bpf_map__type,
    bpf_map__unpin,
    bpf_map__update_elem,
    bpf_map__value_size,
    bpf_object__btf,
    bpf_object__btf_fd,
    bpf_object__close,
    bpf_object__find_map_by_name,
    bpf_object__find_map_fd_by_name,
    bpf_object__find_program_by_name,
    bpf_object__for_each_map,
    bpf_object__for_each_program,
    bpf_object__kversion,
    bpf_object__load,
    bpf_object__name,
    bpf_object__next_map,
    bpf_object__next_program,
    bpf_object__open,
    bpf_object__open_file,
    bpf_object__open_mem,
    bpf_object__pin,
    bpf_object__pin_maps,
    bpf_object__pin_programs,
    bpf_object__prev_map,
    bpf_object__prev_program,
    bpf_object__set_kversion,
    bpf_object__unpin,
    bpf_object__unpin_maps,
    bpf_object__unpin_programs,
    bpf_program__attach_kprobe_multi_opts,
    bpf_program__attach_uprobe_multi,
    bpf_program__attach_usdt,
    bpf_program__autoload,
    bpf_program__expected_attach_type,
    bpf_program__fd,
    bpf_program__flags,
    bpf_program__insn_cnt,
    bpf_program__insns,
    bpf_program__log_level,
    bpf_program__name,
    bpf_program__nth_fd,
    bpf_program__pin,
    bpf_program__section_name,
    bpf_program__set_attach_target,
    bpf_program__set_autoload,
    bpf_program__set_expected_attach_type,
    bpf_program__set_flags,
    bpf_program__set_ifindex,
    bpf_program__set_insns,
    bpf_program__set_log_level,
    bpf_program__set_prep,
    bpf_program__set_type,
    bpf_program__type,
    bpf_program__unpin,
    libbpf_bpf_attach_type_str,
    libbpf_bpf_link_type_str,
    libbpf_bpf_map_type_str,
    libbpf_bpf_prog_type_str,
    libbpf_get_error,
    libbpf_major_version,
    libbpf_minor_version,
    libbpf_num_possible_cpus,
    libbpf_probe_bpf_helper,
    libbpf_probe_bpf_map_type,
    libbpf_probe_bpf_prog_type,
    libbpf_prog_type_by_name,
    libbpf_set_print,
    libbpf_strerror,
    libbpf_version_string,
)
from .buffers import (  # noqa: F401
    PerfBufferLostFn,
    PerfBufferSampleFn,
    RingBufferSampleFn,
    perf_buffer__buffer_cnt,
    perf_buffer__buffer_fd,
    perf_buffer__consume,
    perf_buffer__consume_buffer,
    perf_buffer__epoll_fd,
    perf_buffer__free,
    perf_buffer__new,
    perf_buffer__poll,
    ring_buffer__add,
    ring_buffer__consume,
    ring_buffer__epoll_fd,
    ring_buffer__free,
    ring_buffer__new,
    ring_buffer__poll,
    user_ring_buffer__discard,
    user_ring_buffer__free,
    user_ring_buffer__new,
    user_ring_buffer__reserve,
    user_ring_buffer__reserve_blocking,
    user_ring_buffer__submit,
)

_EXTRA = ["LIBBPF_MAJOR_VERSION", "LIBBPF_MINOR_VERSION", "get_errno", "Btf", "bpf_insn", "BpfObjectOpenOpts",
          "BpfMapCreateOpts", "BpfProgLoadOpts", "BpfTestRunOpts", "BpfProgramPrepResult"]
_PREFIXES = ("bpf_", "btf__", "libbpf_", "ring_buffer__", "perf_buffer__", "user_ring_buffer__", "LIBBPF_", "BPF_")
# the names libbpf has, and the helper types above
__all__ = sorted(set(_EXTRA) | {n for n in dir() if n.startswith(_PREFIXES)})
