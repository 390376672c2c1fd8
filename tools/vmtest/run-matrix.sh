#!/usr/bin/env bash
# Run the kernel-marked tests on Debian's 5.10, 6.1, 6.12 and sid 7.x kernels
# under qemu (TCG, 1 vCPU, 512 MB each, two guests at a time), with
# PYBPFLOAD_REQUIRE_KERNEL=1.  Exits non-zero if any kernel fails.
#
#   tools/vmtest/run-matrix.sh                   # all kernels
#   tools/vmtest/run-matrix.sh --kernels 5.10    # one (or a comma-separated list)
#   tools/vmtest/run-matrix.sh --host -- -k maps # also the host; extra pytest args after --
#
# Needs: qemu-system-x86 and busybox-static (apt), root, the package installed
# in .venv (or VMTEST_PYTHON / --python).  Kernels and initramfs are cached in
# $VMTEST_CACHE (default ~/.cache/pybpfload-vmtest).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
py="${VMTEST_RUNNER_PYTHON:-python3}"
cd "$repo"
PYTHONPATH="$repo/tools${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m vmtest matrix "$@"
