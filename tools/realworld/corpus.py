"""Collect compiled BPF objects from Debian packages (files and embedded skeletons)."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

from vmtest.kernels import AptSuite, KernelSpec, VMTestError, default_cache, system_archive_uris

EM_BPF = 247
ET_REL = 1
# Packages whose payload holds compiled BPF objects, by suite (cilium/ebpf ships its
# compiled testdata).  bookworm and
# trixie are stable releases (their objects change only with point releases);
# sid is the newest compiler output and changes daily.
PACKAGES = ("libbpf-tools", "libxdp1", "xdp-tools", "xdp-tests", "libsystemd-shared", "golang-github-cilium-ebpf-dev",
            "libbpftune0", "bpftop", "bpfilter")  # the last three from trixie on
SUITES = ("bookworm", "trixie", "sid")


def bpf_objects_in(blob: bytes) -> Iterator[Tuple[int, bytes]]:
    """Every 64-bit little-endian BPF relocatable ELF inside ``blob`` (offset, bytes).

    A libbpf skeleton embeds the object verbatim, so its extent is the ELF
    header's section header table end (it is the last part of clang's output).
    """
    at = 0
    while True:
        at = blob.find(b"\x7fELF\x02\x01\x01", at)
        if at < 0 or at + 64 > len(blob):
            return
        e_type, e_machine = struct.unpack_from("<HH", blob, at + 16)
        (shoff,) = struct.unpack_from("<Q", blob, at + 0x28)
        shentsize, shnum = struct.unpack_from("<HH", blob, at + 0x3A)
        end = at + shoff + shentsize * shnum
        if e_machine == EM_BPF and e_type == ET_REL and 64 < end - at and end <= len(blob):
            yield at, blob[at:end]
        at += 4


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text)


def collect(debs: Sequence[Path], out: Path) -> List[Dict[str, object]]:
    """Unpack ``debs`` and write each distinct BPF object into ``out``; return the manifest entries."""
    out.mkdir(parents=True, exist_ok=True)
    entries: List[Dict[str, object]] = []
    seen = set()
    for deb in debs:
        package, version = deb.stem.split("_")[:2]
        with tempfile.TemporaryDirectory(prefix="realworld-") as tmp:
            subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
            for f in sorted(Path(tmp).rglob("*")):
                if not f.is_file() or f.is_symlink():
                    continue
                blob = f.read_bytes()
                for offset, data in bpf_objects_in(blob):
                    digest = hashlib.sha256(data).hexdigest()[:12]
                    if digest in seen:
                        continue
                    seen.add(digest)
                    where = f.name if offset == 0 and len(data) == len(blob) else f"{f.name}@{offset:x}"
                    name = _safe(f"{package}_{version}_{where}_{digest}") + ".o"
                    (out / name).write_bytes(data)
                    entries.append({"file": name, "package": package, "version": version,
                                    "path": "/" + str(f.relative_to(tmp)), "offset": offset, "sha256_12": digest})
    return entries


def fetch(out: Path, suites: Sequence[str] = SUITES, packages: Sequence[str] = PACKAGES) -> List[Dict[str, object]]:
    """Download ``packages`` from each suite (private apt state, nothing installed) and collect their objects."""
    uris = system_archive_uris()
    if "debian" not in uris:
        raise VMTestError("this machine's apt reaches no Debian archive")
    debs: List[Path] = []
    cache = default_cache()
    for suite in suites:
        apt = AptSuite(KernelSpec(suite, suite, "debian"), cache / "apt" / suite, uris["debian"])
        apt.update()
        dest = cache / "realworld-debs" / suite
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.glob("*.deb"):
            old.unlink()
        for package in packages:
            try:
                subprocess.run(["apt-get", *_apt_options(apt), "download", package], cwd=dest, check=True,
                               capture_output=True, text=True)
            except subprocess.CalledProcessError as e:
                print(f"realworld: {suite}: no {package} ({e.stderr.strip()[-200:]})")
        debs += sorted(dest.glob("*.deb"))
    entries = collect(debs, out)
    (out / "manifest.json").write_text(json.dumps(entries, indent=1) + "\n")
    return entries


def _apt_options(apt: AptSuite) -> List[str]:
    from vmtest.kernels import apt_options

    return apt_options(apt.state)
