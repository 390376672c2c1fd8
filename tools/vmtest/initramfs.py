"""Build (and cache) the guest's initramfs: a static busybox, the kernel's 9p,
virtio and overlay modules, and an /init that mounts the host's root read-only
over 9p under a tmpfs overlay, then runs the job handed over a second 9p share.
The guest's /tmp is the overlay's (host files visible, writes private to the
guest), so a checkout anywhere on the host, /tmp included, is seen in place.

The cpio archive is written here in plain Python (newc format, uncompressed:
the guest, emulated, unpacks it faster than it would gunzip it).
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .kernels import Kernel, VMTestError, default_cache

BUSYBOX = "/bin/busybox"

# Modules the guest needs, in the order they are wanted; dependencies are
# added in front of each by ``load_order``.  Any of them may be built in.
WANTED_MODULES: Tuple[str, ...] = (
    "virtio",
    "virtio_ring",
    "virtio_pci",
    "netfs",
    "9pnet",
    "9pnet_virtio",
    "9p",
    "overlay",
)

ROOT_TAG = "hostroot"
SHARE_TAG = "vmtest"
SHARE_MOUNT = "/run/vmtest"  # where the job share appears inside the guest's root
JOB_SCRIPT = "job.sh"
OUTPUT_FILE = "output"
STATUS_FILE = "status"
DMESG_FILE = "dmesg"
MSIZE = 512 * 1024


def module_name(path: str) -> str:
    """Canonical module name of a path such as kernel/fs/9p/9p.ko.xz (dashes become underscores)."""
    base = os.path.basename(path)
    base = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base)
    return base.replace("-", "_")


def modinfo_depends(ko: bytes) -> List[str]:
    """The ``depends=`` list of a module's .modinfo strings (uncompressed .ko bytes)."""
    m = re.search(rb"(?:^|\x00)depends=([^\x00]*)\x00", ko)
    if not m or not m.group(1):
        return []
    return [d.decode().replace("-", "_") for d in m.group(1).split(b",") if d]


def load_order(wanted: Iterable[str], depends: Dict[str, List[str]]) -> List[str]:
    """Modules to insmod, dependencies first, each once; names absent from ``depends`` are built in."""
    order: List[str] = []
    seen: set = set()

    def visit(name: str, stack: Tuple[str, ...]) -> None:
        if name in seen or name not in depends:
            return
        if name in stack:
            raise VMTestError(f"module dependency cycle: {' -> '.join(stack + (name,))}")
        for dep in depends[name]:
            visit(dep, stack + (name,))
        seen.add(name)
        order.append(name)

    for w in wanted:
        visit(w, ())
    return order


def read_module(path: Path) -> bytes:
    """A module's ELF bytes, decompressed from .ko.xz if need be."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko"):
        return data
    raise VMTestError(f"cannot decompress module {path} (only .ko and .ko.xz are handled)")


def index_modules(modules_dir: Path) -> Dict[str, Path]:
    """Map module name to its file for every module of a kernel."""
    index: Dict[str, Path] = {}
    for p in (modules_dir / "kernel").rglob("*.ko*"):
        index.setdefault(module_name(p.name), p)
    return index


def init_script(modules: Sequence[str], modules_dir: str = "") -> str:
    """The guest's /init (busybox sh).

    ``modules``: names to insmod from the initramfs, in order.  ``modules_dir``:
    the host path of the kernel's whole module tree (depmod'ed); the guest's
    /lib/modules/RELEASE points there, and the kernel's on-demand module
    loading (veth, sch_*, ...) runs busybox modprobe from the initramfs.
    """
    mods = " ".join(f"{m}.ko" for m in modules)
    new = "/newroot"
    share = new + SHARE_MOUNT
    # what /init still needs of the new root once it is moved onto / (bind mounts made before)
    keep_share, keep_root = "/keep/share", "/keep/root"
    return f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {{ echo "vmtest-init: $*"; poweroff -f; }}
for m in {mods}; do insmod /lib/modules/$m || fail "insmod $m"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=none,msize={MSIZE} {ROOT_TAG} /lower || fail "mount host root"
mount -t tmpfs -o mode=0755 tmpfs /rw || fail "mount tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work {new} || fail "mount overlay"
mount -t proc proc {new}/proc
mount -t sysfs sysfs {new}/sys
mount -t devtmpfs devtmpfs {new}/dev
mkdir -p {new}/dev/pts {new}/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts {new}/dev/pts
mount -t tmpfs tmpfs {new}/dev/shm
mount -t tmpfs -o mode=0755 tmpfs {new}/run
mkdir -p {share}
mount -t 9p -o trans=virtio,version=9p2000.L,msize={MSIZE} {SHARE_TAG} {share} || fail "mount job share"
mount -t bpf bpf {new}/sys/fs/bpf || fail "mount bpffs"
mount -t debugfs debugfs {new}/sys/kernel/debug || echo "vmtest-init: no debugfs"
mount -t tracefs tracefs {new}/sys/kernel/tracing || echo "vmtest-init: no tracefs"
mount -t cgroup2 cgroup2 {new}/sys/fs/cgroup || echo "vmtest-init: no cgroup2"
mount -t securityfs securityfs {new}/sys/kernel/security || echo "vmtest-init: no securityfs"
if [ -n "{modules_dir}" ] && [ -f "{new}{modules_dir}/modules.dep" ]; then
  mkdir -p /lib/modules /sbin {new}/lib/modules
  ln -s {keep_root}{modules_dir} /lib/modules/$(uname -r)
  ln -sfn {modules_dir} {new}/lib/modules/$(uname -r)
  ln -s /bin/busybox /sbin/modprobe
  echo /sbin/modprobe > /proc/sys/kernel/modprobe
  if [ ! -e {new}/sbin/modprobe ]; then cp /bin/busybox {new}/run/busybox && ln -s /run/busybox {new}/sbin/modprobe; fi
fi
ip link set lo up
if [ -f /kconfig ]; then mkdir -p {new}/boot && cp /kconfig {new}/boot/config-$(uname -r); fi
ulimit -l unlimited
# The job's root is the root of the guest's mount namespace, as after switch_root: the new
# root is moved onto / and entered, not chroot()ed into below it (the kernel refuses user
# namespaces to chrooted processes).  /init keeps the job share and the module tree (on-demand
# modprobe runs in its root) through bind mounts made before the move.
mkdir -p {keep_share} {keep_root}
mount -o bind {share} {keep_share} || fail "bind job share"
mount -o bind {new} {keep_root} || fail "bind new root"
cd {new} && mount -o move . / || fail "move new root onto /"
chroot . /bin/sh {SHARE_MOUNT}/{JOB_SCRIPT} > {keep_share}/{OUTPUT_FILE} 2>&1 < /dev/null
echo $? > {keep_share}/{STATUS_FILE}
dmesg > {keep_share}/{DMESG_FILE}
sync
umount {keep_share}
poweroff -f
"""


# --- cpio (newc) ----------------------------------------------------------


@dataclass(frozen=True)
class CpioEntry:
    """One member of a newc archive."""

    name: str
    mode: int  # full st_mode, type bits included
    data: bytes = b""
    rdev: Tuple[int, int] = (0, 0)  # major, minor of a device node


def _pad4(n: int) -> bytes:
    return b"\x00" * (-n % 4)


def cpio_newc(entries: Iterable[CpioEntry]) -> bytes:
    """Serialize entries as an uncompressed newc cpio archive, as the kernel unpacks it."""
    out = bytearray()
    ino = 1
    for e in list(entries) + [CpioEntry("TRAILER!!!", 0)]:
        name = e.name.encode() + b"\x00"
        nlink = 2 if (e.mode & 0o170000) == 0o040000 else 1
        fields = (ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.rdev[0], e.rdev[1], len(name), 0)
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        out += hdr + name
        out += _pad4(len(hdr) + len(name))
        out += e.data + _pad4(len(e.data))
        ino += 1
    return bytes(out)


DIR = 0o040755
FILE = 0o100644
EXEC = 0o100755
LINK = 0o120777


def initramfs_entries(
    init: str, busybox: bytes, modules: Sequence[Tuple[str, bytes]], kconfig: Optional[bytes] = None
) -> List[CpioEntry]:
    """The archive's members: directories, /init, busybox, the modules and the kernel's config."""
    dirs = ["bin", "dev", "proc", "sys", "lower", "rw", "newroot", "lib", "lib/modules"]
    entries = [CpioEntry(d, DIR) for d in dirs]
    entries.append(CpioEntry("dev/console", 0o020600, rdev=(5, 1)))
    entries.append(CpioEntry("init", EXEC, init.encode()))
    entries.append(CpioEntry("bin/busybox", EXEC, busybox))
    entries.append(CpioEntry("bin/sh", LINK, b"busybox"))
    entries += [CpioEntry(f"lib/modules/{n}.ko", FILE, data) for n, data in modules]
    if kconfig is not None:
        entries.append(CpioEntry("kconfig", FILE, kconfig))
    return entries


def depmod(kernel: Kernel, busybox: str = BUSYBOX) -> bool:
    """Give the cached module tree its modules.dep / modules.alias (busybox depmod, once); False if that failed."""
    mdir = kernel.modules_dir
    if (mdir / "modules.dep").exists() and (mdir / "modules.alias").exists():
        return True
    base = kernel.root
    rel = mdir.relative_to(base)
    if rel.parts[0] == "usr" and not (base / "lib").exists():
        (base / "lib").symlink_to("usr/lib")  # depmod -b expects BASE/lib/modules
    try:
        proc = subprocess.run([busybox, "depmod", "-b", str(base), kernel.release], capture_output=True, text=True)
    except OSError:
        return False
    return proc.returncode == 0 and (mdir / "modules.dep").exists()


def build_initramfs(kernel: Kernel, cache: Optional[Path] = None, busybox: str = BUSYBOX) -> Path:
    """The cached initramfs for ``kernel``, built if its inputs changed."""
    if not os.path.exists(busybox):
        raise VMTestError(f"{busybox} not found: apt-get install busybox-static")
    cache = cache or default_cache()
    index = index_modules(kernel.modules_dir)
    depends: Dict[str, List[str]] = {}
    blobs: Dict[str, bytes] = {}
    todo = [m for m in WANTED_MODULES if m in index]
    while todo:
        name = todo.pop()
        if name in depends:
            continue
        blobs[name] = read_module(index[name])
        depends[name] = [d for d in modinfo_depends(blobs[name]) if d in index]
        todo += depends[name]
    order = load_order(WANTED_MODULES, depends)
    init = init_script(order, str(kernel.modules_dir) if depmod(kernel, busybox) else "")
    bb = Path(busybox).read_bytes()
    kconfig = kernel.config.read_bytes() if kernel.config else None
    h = hashlib.sha256(init.encode() + bb + (kconfig or b""))
    for n in order:
        h.update(n.encode() + hashlib.sha256(blobs[n]).digest())
    out = cache / "initramfs" / f"{kernel.release}-{h.hexdigest()[:16]}.cpio"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f"{kernel.release}-*.cpio"):
        old.unlink()
    data = cpio_newc(initramfs_entries(init, bb, [(n, blobs[n]) for n in order], kconfig))
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.rename(out)
    return out
