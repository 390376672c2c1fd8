"""Fetch Debian kernels by suite and cache them, extracted, for booting.

Nothing is installed: the image (and, from 7.x on, its split binary and
modules packages) is downloaded with ``apt-get download`` through a private
apt state directory per suite, so the system's sources and lists stay as they
are, then unpacked with ``dpkg-deb -x``.  The archive's address is the one this
machine's apt already uses (``apt-get indextargets``), never a hard-coded one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class VMTestError(Exception):
    """A step of the VM test runner failed (not a test failure)."""


@dataclass(frozen=True)
class KernelSpec:
    """A guest kernel of the matrix: a short name and the suite it comes from."""

    name: str
    suite: str
    archive: str  # "debian" or "debian-security"


KERNELS: Tuple[KernelSpec, ...] = (
    KernelSpec("5.10", "bullseye-security", "debian-security"),
    KernelSpec("6.1", "bookworm", "debian"),
    KernelSpec("6.12", "trixie", "debian"),
    KernelSpec("7.x", "sid", "debian"),
)


def kernel_spec(name: str) -> KernelSpec:
    """The KernelSpec called ``name`` (or whose suite is ``name``)."""
    for k in KERNELS:
        if name in (k.name, k.suite):
            return k
    known = ", ".join(k.name for k in KERNELS)
    raise VMTestError(f"unknown kernel {name!r} (known: {known})")


@dataclass(frozen=True)
class Kernel:
    """An extracted kernel ready to boot."""

    spec: KernelSpec
    version: str  # package version, e.g. 6.12.117-1
    release: str  # uname -r, e.g. 6.12.117+deb13-amd64
    root: Path  # dpkg-deb -x target

    @property
    def vmlinuz(self) -> Path:
        """The kernel image: /boot/vmlinuz-RELEASE, or (7.x) /usr/lib/modules/RELEASE/vmlinuz."""
        for p in (
            self.root / "boot" / f"vmlinuz-{self.release}",
            self.root / "usr/lib/modules" / self.release / "vmlinuz",
            self.root / "lib/modules" / self.release / "vmlinuz",
        ):
            if p.exists():
                return p
        raise VMTestError(f"no vmlinuz for {self.release} under {self.root}")

    @property
    def config(self) -> Optional[Path]:
        """The kernel's build configuration, if its packages ship one."""
        for p in (self.root / "boot" / f"config-{self.release}", self.modules_dir / "config"):
            if p.exists():
                return p
        return None

    @property
    def modules_dir(self) -> Path:
        for base in ("lib/modules", "usr/lib/modules"):
            p = self.root / base / self.release
            if p.is_dir():
                return p
        raise VMTestError(f"no modules directory for {self.release} under {self.root}")


# --- pure helpers -----------------------------------------------------------


def parse_deb822(text: str) -> List[Dict[str, str]]:
    """Split RFC-822 style records (apt-cache show, indextargets) into dicts.

    Continuation lines are joined to the field they continue.
    """
    records: List[Dict[str, str]] = []
    cur: Dict[str, str] = {}
    last: Optional[str] = None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                records.append(cur)
            cur, last = {}, None
            continue
        if line[0] in " \t":
            if last is not None:
                cur[last] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        last = key.strip()
        cur[last] = value.strip()
    if cur:
        records.append(cur)
    return records


def depends_names(field: str) -> List[str]:
    """Package names of a Depends field, first alternative of each entry."""
    names = []
    for entry in field.split(","):
        first = entry.split("|")[0].strip()
        m = re.match(r"[a-z0-9][a-z0-9+.\-]*", first)
        if m:
            names.append(m.group(0))
    return names


def image_package(meta: Dict[str, str]) -> str:
    """The versioned linux-image package the linux-image-amd64 metapackage depends on."""
    for name in depends_names(meta.get("Depends", "")):
        if name.startswith("linux-image-"):
            return name
    raise VMTestError(f"{meta.get('Package')} {meta.get('Version')} depends on no linux-image package")


def payload_packages(image: Dict[str, str]) -> List[str]:
    """Packages holding the kernel and its modules for a linux-image record.

    Before 7.x the image package holds both; sid splits them into
    linux-binary-*, linux-modules-* and linux-base-* (config, System.map)
    which the image package depends on.
    """
    prefixes = ("linux-binary-", "linux-modules-", "linux-base-")
    split = [n for n in depends_names(image.get("Depends", "")) if n.startswith(prefixes)]
    return [image["Package"], *split]


def release_of(image_pkg: str) -> str:
    """uname -r of a linux-image-RELEASE package (its -unsigned suffix dropped)."""
    rel = image_pkg[len("linux-image-") :]
    return rel[: -len("-unsigned")] if rel.endswith("-unsigned") else rel


def archive_uris(indextargets: str) -> Dict[str, str]:
    """Map "debian"/"debian-security" to the archive URIs of ``apt-get indextargets``."""
    uris: Dict[str, str] = {}
    for rec in parse_deb822(indextargets):
        label, uri = rec.get("Label", ""), rec.get("Repo-URI", "")
        if rec.get("Target-Of", "deb") != "deb" or not uri:
            continue
        if label == "Debian":
            uris.setdefault("debian", uri.rstrip("/"))
        elif label == "Debian-Security":
            uris.setdefault("debian-security", uri.rstrip("/"))
    return uris


def sources_line(uri: str, suite: str, keyring: str = KEYRING) -> str:
    return f"deb [signed-by={keyring}] {uri} {suite} main\n"


def apt_options(state: Path) -> List[str]:
    """apt options that confine it to the private state directory ``state``."""
    return [
        "-o", f"Dir::Etc::sourcelist={state / 'sources.list'}",
        "-o", f"Dir::Etc::sourceparts={state / 'sources.list.d'}",
        "-o", f"Dir::State::Lists={state / 'lists'}",
        "-o", f"Dir::State::status={state / 'status'}",
        "-o", f"Dir::Cache={state / 'cache'}",
        "-o", "Debug::NoLocking=1",
        "-o", "APT::Sandbox::User=root",
        "-q",
    ]  # fmt: skip


# --- side effects -----------------------------------------------------------


def default_cache() -> Path:
    """$VMTEST_CACHE, else $XDG_CACHE_HOME/pybpfload-vmtest, else ~/.cache/pybpfload-vmtest."""
    env = os.environ.get("VMTEST_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pybpfload-vmtest"


def _run(argv: Sequence[str], cwd: Optional[Path] = None) -> str:
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise VMTestError(f"{' '.join(argv[:3])}... failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc.stdout


def system_archive_uris() -> Dict[str, str]:
    """Archive URIs from this machine's apt set-up, overridable by $VMTEST_DEBIAN_URI / $VMTEST_DEBIAN_SECURITY_URI."""
    uris = archive_uris(_run(["apt-get", "indextargets"]))
    for key, env in (("debian", "VMTEST_DEBIAN_URI"), ("debian-security", "VMTEST_DEBIAN_SECURITY_URI")):
        if os.environ.get(env):
            uris[key] = os.environ[env].rstrip("/")
    if "debian" in uris and "debian-security" not in uris:
        uris["debian-security"] = uris["debian"] + "-security"
    return uris


class AptSuite:
    """A private apt state directory holding the lists of one suite."""

    def __init__(self, spec: KernelSpec, state: Path, uri: str) -> None:
        self.spec = spec
        self.state = state
        self.uri = uri

    def update(self) -> None:
        for d in ("lists/partial", "cache/archives/partial", "sources.list.d"):
            (self.state / d).mkdir(parents=True, exist_ok=True)
        (self.state / "status").touch()
        (self.state / "sources.list").write_text(sources_line(self.uri, self.spec.suite))
        _run(["apt-get", *apt_options(self.state), "update"])

    def show(self, package: str) -> Dict[str, str]:
        out = _run(["apt-cache", *apt_options(self.state), "show", "--no-all-versions", package])
        recs = parse_deb822(out)
        if not recs:
            raise VMTestError(f"apt-cache show {package}: no record in {self.spec.suite}")
        return recs[0]

    def download(self, packages: Iterable[str], dest: Path) -> List[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.glob("*.deb"):
            old.unlink()
        _run(["apt-get", *apt_options(self.state), "download", *packages], cwd=dest)
        return sorted(dest.glob("*.deb"))


def fetch_kernel(spec: KernelSpec, cache: Optional[Path] = None, offline: bool = False) -> Kernel:
    """Resolve the suite's current kernel and return it extracted, downloading it if not cached.

    With ``offline`` the newest already-cached kernel of the suite is used.
    """
    cache = cache or default_cache()
    kdir = cache / "kernels" / spec.suite
    if offline:
        found = sorted(p for p in kdir.glob("*/.complete"))
        if not found:
            raise VMTestError(f"no cached kernel for {spec.suite} (run without --offline first)")
        return _load_cached(spec, found[-1].parent)
    uris = system_archive_uris()
    if spec.archive not in uris:
        raise VMTestError(f"this machine's apt reaches no {spec.archive} archive; set $VMTEST_DEBIAN_URI")
    apt = AptSuite(spec, cache / "apt" / spec.suite, uris[spec.archive])
    apt.update()
    meta = apt.show("linux-image-amd64")
    image_name = image_package(meta)
    target = kdir / meta["Version"]
    if (target / ".complete").exists():
        return _load_cached(spec, target)
    image = apt.show(image_name)
    debs = apt.download(payload_packages(image), cache / "debs" / spec.suite)
    if target.exists():
        shutil.rmtree(target)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=kdir if kdir.exists() else _mkdir(kdir)))
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(tmp)])
    (tmp / ".release").write_text(release_of(image_name) + "\n")
    (tmp / ".version").write_text(meta["Version"] + "\n")
    (tmp / ".complete").touch()
    tmp.rename(target)
    for deb in debs:
        deb.unlink()
    for old in kdir.iterdir():  # keep one kernel per suite
        if old != target and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return _load_cached(spec, target)


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _load_cached(spec: KernelSpec, target: Path) -> Kernel:
    release = (target / ".release").read_text().strip()
    version = (target / ".version").read_text().strip()
    k = Kernel(spec, version, release, target)
    k.vmlinuz  # noqa: B018 - raises when the image is missing
    return k
