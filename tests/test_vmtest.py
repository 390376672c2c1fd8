"""The pure parts of the qemu kernel-matrix runner (tools/vmtest): no qemu, no network."""

from __future__ import annotations

import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from .conftest import require_tool

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))

from vmtest import __main__ as cli  # noqa: E402
from vmtest import initramfs, kernels, matrix, qemu, results  # noqa: E402
from vmtest.kernels import VMTestError  # noqa: E402

# Records as apt-cache prints them (inputs, copied from the archive's metadata).
SID_META = """\
Package: linux-image-amd64
Source: linux-signed-amd64 (7.2.13+1)
Version: 7.2.13-1
Depends: linux-base-amd64 (= 7.2.13-1), linux-image-7.2.13+deb14-amd64 (= 7.2.13-1)
Description: Linux for 64-bit PCs (meta-package)
 This package depends on the latest Linux kernel
 and modules for use on PCs.
"""
SID_IMAGE = """\
Package: linux-image-7.2.13+deb14-amd64
Version: 7.2.13-1
Depends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), \
linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1), linux-modules-7.2.13+deb14-amd64 (= 7.2.13-1)
Recommends: apparmor
"""
TRIXIE_IMAGE = """\
Package: linux-image-6.12.117+deb13-amd64
Version: 6.12.117-1
Depends: kmod, initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
"""


# --- kernels ----------------------------------------------------------------


def test_deb822_records_and_continuations() -> None:
    recs = kernels.parse_deb822(SID_META + "\n\n" + TRIXIE_IMAGE)
    assert [r["Package"] for r in recs] == ["linux-image-amd64", "linux-image-6.12.117+deb13-amd64"]
    assert recs[0]["Description"].splitlines() == [
        "Linux for 64-bit PCs (meta-package)",
        "This package depends on the latest Linux kernel",
        "and modules for use on PCs.",
    ]
    assert recs[0]["Source"] == "linux-signed-amd64 (7.2.13+1)"  # value with a colon-free tail kept whole


def test_depends_names_takes_first_alternative_and_drops_versions() -> None:
    field = kernels.parse_deb822(SID_IMAGE)[0]["Depends"]
    assert kernels.depends_names(field) == [
        "dracut",
        "linux-base-7.2.13+deb14-amd64",
        "linux-binary-7.2.13+deb14-amd64",
        "linux-modules-7.2.13+deb14-amd64",
    ]


def test_metapackage_resolves_to_versioned_image() -> None:
    meta = kernels.parse_deb822(SID_META)[0]
    assert kernels.image_package(meta) == "linux-image-7.2.13+deb14-amd64"
    with pytest.raises(VMTestError, match="no linux-image"):
        kernels.image_package({"Package": "linux-image-amd64", "Depends": "linux-base-amd64"})


def test_payload_is_image_alone_or_split_packages() -> None:
    assert kernels.payload_packages(kernels.parse_deb822(TRIXIE_IMAGE)[0]) == ["linux-image-6.12.117+deb13-amd64"]
    assert kernels.payload_packages(kernels.parse_deb822(SID_IMAGE)[0]) == [
        "linux-image-7.2.13+deb14-amd64",
        "linux-base-7.2.13+deb14-amd64",
        "linux-binary-7.2.13+deb14-amd64",
        "linux-modules-7.2.13+deb14-amd64",
    ]


@pytest.mark.parametrize(
    "pkg,release",
    [
        ("linux-image-5.10.0-46-amd64", "5.10.0-46-amd64"),
        ("linux-image-6.1.0-50-amd64-unsigned", "6.1.0-50-amd64"),
        ("linux-image-7.2.13+deb14-amd64", "7.2.13+deb14-amd64"),
    ],
)
def test_release_of_image_package(pkg: str, release: str) -> None:
    assert kernels.release_of(pkg) == release


def test_archive_uris_from_indextargets() -> None:
    text = textwrap.dedent(
        """\
        MetaKey: main/binary-amd64/Packages
        Label: Debian
        Repo-URI: http://mirror.example/debian/
        Target-Of: deb

        MetaKey: main/source/Sources
        Label: Debian
        Repo-URI: http://elsewhere.example/debian/
        Target-Of: deb-src

        Label: Debian-Security
        Repo-URI: http://mirror.example/debian-security/
        Target-Of: deb

        Label: Node
        Repo-URI: http://other.example/node/
        Target-Of: deb
        """
    )
    assert kernels.archive_uris(text) == {
        "debian": "http://mirror.example/debian",
        "debian-security": "http://mirror.example/debian-security",
    }


def test_apt_is_confined_to_the_private_state(tmp_path: Path) -> None:
    opts = kernels.apt_options(tmp_path)
    settings = dict(o.split("=", 1) for o in opts[1::2] if "=" in o and o.startswith("Dir"))
    for key in ("Dir::Etc::sourcelist", "Dir::Etc::sourceparts", "Dir::State::Lists", "Dir::State::status", "Dir::Cache"):
        assert Path(settings[key]).is_relative_to(tmp_path), key
    line = kernels.sources_line("http://mirror.example/debian", "sid")
    assert line.split()[2:] == ["http://mirror.example/debian", "sid", "main"]
    assert "signed-by=" in line


def test_kernel_specs_cover_the_matrix() -> None:
    assert [k.name for k in kernels.KERNELS] == ["5.10", "6.1", "6.12", "7.x"]
    assert kernels.kernel_spec("trixie").name == "6.12"
    assert kernels.kernel_spec("5.10").archive == "debian-security"
    with pytest.raises(VMTestError, match="unknown kernel"):
        kernels.kernel_spec("4.19")
    assert [k.name for k in cli.parse_kernels("all")] == ["5.10", "6.1", "6.12", "7.x"]
    assert [k.name for k in cli.parse_kernels("7.x, 5.10")] == ["7.x", "5.10"]


def _fake_kernel_tree(root: Path, release: str, layout: str) -> None:
    base = root / ("usr/lib/modules" if layout == "split" else "lib/modules") / release
    (base / "kernel").mkdir(parents=True)
    if layout == "split":
        (base / "vmlinuz").write_bytes(b"kernel")
        (base / "config").write_text("CONFIG_BPF=y\n")
    else:
        (root / "boot").mkdir()
        (root / "boot" / f"vmlinuz-{release}").write_bytes(b"kernel")
        (root / "boot" / f"config-{release}").write_text("CONFIG_BPF=y\n")
    (root / ".release").write_text(release + "\n")
    (root / ".version").write_text("1.0-1\n")
    (root / ".complete").touch()


@pytest.mark.parametrize("layout", ["split", "classic"])
def test_offline_fetch_uses_the_cached_kernel(tmp_path: Path, layout: str) -> None:
    spec = kernels.kernel_spec("7.x")
    with pytest.raises(VMTestError, match="no cached kernel"):
        kernels.fetch_kernel(spec, cache=tmp_path, offline=True)
    root = tmp_path / "kernels" / spec.suite / "1.0-1"
    _fake_kernel_tree(root, "7.0.0-test", layout)
    k = kernels.fetch_kernel(spec, cache=tmp_path, offline=True)
    assert (k.release, k.version) == ("7.0.0-test", "1.0-1")
    assert k.vmlinuz.read_bytes() == b"kernel"
    assert k.config is not None and k.config.read_text() == "CONFIG_BPF=y\n"
    assert k.modules_dir.name == "7.0.0-test"


# --- initramfs --------------------------------------------------------------


def _modinfo(depends: str) -> bytes:
    return b"\x7fELF-not-really\x00license=GPL\x00depends=" + depends.encode() + b"\x00intree=Y\x00name=x\x00"


def test_modinfo_depends_and_module_names() -> None:
    assert initramfs.modinfo_depends(_modinfo("9pnet,netfs")) == ["9pnet", "netfs"]
    assert initramfs.modinfo_depends(_modinfo("")) == []
    assert initramfs.modinfo_depends(b"no modinfo here") == []
    assert initramfs.module_name("kernel/net/9p/9pnet_virtio.ko.xz") == "9pnet_virtio"
    assert initramfs.module_name("virtio-rng.ko") == "virtio_rng"


def test_load_order_puts_dependencies_first_and_skips_builtins() -> None:
    deps = {"9p": ["9pnet", "netfs"], "9pnet_virtio": ["9pnet", "virtio_ring"], "9pnet": [], "netfs": [], "overlay": []}
    order = initramfs.load_order(["virtio_ring", "9pnet_virtio", "9p", "overlay"], deps)
    assert sorted(order) == sorted(deps)  # virtio_ring is built in: not in the map, not loaded
    for mod, needs in deps.items():
        assert all(order.index(n) < order.index(mod) for n in needs if n in deps)
    with pytest.raises(VMTestError, match="cycle"):
        initramfs.load_order(["a"], {"a": ["b"], "b": ["a"]})


def _read_newc(data: bytes) -> List[Tuple[str, int, bytes, Tuple[int, int]]]:
    """An independent newc reader: (name, mode, data, rdev) per member, until the trailer."""
    out, off = [], 0
    while True:
        assert data[off : off + 6] == b"070701"
        f = [int(data[off + 6 + 8 * i : off + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name = data[off + 110 : off + 110 + namesize - 1].decode()
        off = (off + 110 + namesize + 3) & ~3
        body = data[off : off + filesize]
        off = (off + filesize + 3) & ~3
        if name == "TRAILER!!!":
            assert off == len(data)
            return out
        out.append((name, f[1], body, (f[9], f[10])))


def test_cpio_newc_round_trip() -> None:
    entries = [
        initramfs.CpioEntry("bin", initramfs.DIR),
        initramfs.CpioEntry("bin/odd", initramfs.EXEC, b"12345"),
        initramfs.CpioEntry("dev/console", 0o020600, rdev=(5, 1)),
        initramfs.CpioEntry("empty", initramfs.FILE),
    ]
    got = _read_newc(initramfs.cpio_newc(entries))
    assert got == [(e.name, e.mode, e.data, e.rdev) for e in entries]


def test_cpio_archive_extracts_with_busybox(tmp_path: Path) -> None:
    bb = require_tool("busybox")
    data = initramfs.cpio_newc(
        initramfs.initramfs_entries("#!/bin/sh\necho hi\n", b"BB", [("9p", b"ko-bytes")], kconfig=b"CONFIG_X=y\n")
    )
    listing = subprocess.run([bb, "cpio", "-t"], input=data, capture_output=True, check=True).stdout.decode().split()
    assert {"init", "bin/busybox", "bin/sh", "lib/modules/9p.ko", "kconfig", "dev/console"} <= set(listing)
    out = tmp_path / "x"
    out.mkdir()
    files = [n for n in listing if n not in ("dev/console",)]
    subprocess.run([bb, "cpio", "-id", *files], input=data, cwd=out, check=True, capture_output=True)
    assert (out / "init").read_text() == "#!/bin/sh\necho hi\n"
    assert os.access(out / "init", os.X_OK)
    assert (out / "lib/modules/9p.ko").read_bytes() == b"ko-bytes"
    assert os.readlink(out / "bin/sh") == "busybox"


def test_init_script_is_valid_sh_and_mounts_what_tests_need() -> None:
    script = initramfs.init_script(["netfs", "9pnet", "9p"])
    sh = shutil.which("sh") or "/bin/sh"
    subprocess.run([sh, "-n"], input=script.encode(), check=True)
    assert script.index("insmod /lib/modules/$m") < script.index(f"{initramfs.ROOT_TAG} /lower")
    assert "for m in netfs.ko 9pnet.ko 9p.ko;" in script
    assert re.search(r"-o trans=virtio,version=9p2000\.L,ro,", script)  # the host's root stays read-only
    for fs, where in [
        ("bpf", "/sys/fs/bpf"),
        ("debugfs", "/sys/kernel/debug"),
        ("tracefs", "/sys/kernel/tracing"),
        ("proc", "/proc"),
        ("sysfs", "/sys"),
        ("devtmpfs", "/dev"),
        ("overlay", ""),
    ]:
        assert re.search(rf"mount -t {fs} .*/newroot{where}\b", script), fs
    assert f"mount -o bind /newroot{initramfs.SHARE_MOUNT} /keep/share" in script
    assert f"> /keep/share/{initramfs.STATUS_FILE}" in script
    # the job's root is the namespace's root (moved onto /), not a chroot below it: user namespaces work
    assert script.index("mount -o move . /") < script.index("chroot . /bin/sh")
    assert "/newroot/tmp" not in script  # a checkout under the host's /tmp stays visible


def test_build_initramfs_from_a_fake_kernel(tmp_path: Path) -> None:
    root = tmp_path / "k"
    _fake_kernel_tree(root, "6.99-test", "classic")
    mods = root / "lib/modules/6.99-test/kernel"
    layout: Dict[str, str] = {  # 9p needs 9pnet and netfs; virtio* are built in (absent)
        "fs/9p/9p.ko.xz": "9pnet,netfs",
        "fs/netfs/netfs.ko.xz": "",
        "net/9p/9pnet.ko.xz": "",
        "net/9p/9pnet_virtio.ko.xz": "9pnet",
        "fs/overlayfs/overlay.ko": "",
        "drivers/unrelated.ko.xz": "",
    }
    for rel, deps in layout.items():
        p = mods / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        blob = _modinfo(deps)
        p.write_bytes(lzma.compress(blob) if rel.endswith(".xz") else blob)
    busybox = tmp_path / "busybox"  # stands in for busybox depmod -b BASE RELEASE
    busybox.write_text(
        '#!/bin/sh\n[ "$1" = depmod ] && touch "$3/lib/modules/$4/modules.dep" "$3/lib/modules/$4/modules.alias"\n'
    )
    busybox.chmod(0o755)
    k = kernels.Kernel(kernels.kernel_spec("6.12"), "1.0-1", "6.99-test", root)
    cpio = initramfs.build_initramfs(k, cache=tmp_path / "cache", busybox=str(busybox))
    members = {name: body for name, _, body, _ in _read_newc(cpio.read_bytes())}
    loaded = sorted(n for n in members if n.startswith("lib/modules/") and n.endswith(".ko"))
    assert loaded == [
        "lib/modules/9p.ko",
        "lib/modules/9pnet.ko",
        "lib/modules/9pnet_virtio.ko",
        "lib/modules/netfs.ko",
        "lib/modules/overlay.ko",
    ]
    assert members["lib/modules/9p.ko"] == _modinfo("9pnet,netfs")  # decompressed
    order = re.search(r"for m in ([^;]*);", members["init"].decode()).group(1).split()
    assert order.index("9pnet.ko") < order.index("9p.ko") and order.index("netfs.ko") < order.index("9p.ko")
    assert members["kconfig"] == b"CONFIG_BPF=y\n"
    assert (k.modules_dir / "modules.dep").exists()  # depmod ran on the cached tree
    assert f"ln -s /keep/root{k.modules_dir} /lib/modules/$(uname -r)" in members["init"].decode()
    # cached: same inputs give the same file, untouched
    mtime = cpio.stat().st_mtime_ns
    assert initramfs.build_initramfs(k, cache=tmp_path / "cache", busybox=str(busybox)) == cpio
    assert cpio.stat().st_mtime_ns == mtime
    with pytest.raises(VMTestError, match="busybox-static"):
        initramfs.build_initramfs(k, cache=tmp_path / "cache", busybox=str(tmp_path / "absent"))


# --- qemu -------------------------------------------------------------------


def test_qemu_argv_is_tcg_one_cpu_no_network_readonly_root(tmp_path: Path) -> None:
    cfg = qemu.BootConfig(tmp_path / "vmlinuz", tmp_path / "initrd", tmp_path / "share", tmp_path / "console.log")
    argv = qemu.qemu_argv(cfg)
    flags = {"-nodefaults", "-no-user-config", "-no-reboot"}
    pairs: Dict[str, List[str]] = {}
    it = iter(argv[1:])
    for a in it:
        pairs.setdefault(a, []).append("" if a in flags else next(it))
    assert "accel=tcg" in pairs["-machine"][0] and "kvm" not in " ".join(argv)
    assert pairs["-smp"] == ["1"] and pairs["-m"] == ["512"]
    assert pairs["-nic"] == ["none"] and "-netdev" not in pairs and "-nodefaults" in pairs
    assert pairs["-kernel"] == [str(tmp_path / "vmlinuz")] and pairs["-initrd"] == [str(tmp_path / "initrd")]
    root, share = pairs["-fsdev"]
    assert "path=/," in root and "readonly=on" in root
    assert f"path={tmp_path / 'share'}," in share and "readonly" not in share
    tags = [d.split("mount_tag=")[1] for d in pairs["-device"]]
    assert tags == [initramfs.ROOT_TAG, initramfs.SHARE_TAG]
    assert "console=ttyS0" in pairs["-append"][0].split() and "rdinit=/init" in pairs["-append"][0].split()
    assert pairs["-serial"] == [f"file:{tmp_path / 'console.log'}"]


def test_job_script_runs_the_command_in_place_with_its_env(tmp_path: Path) -> None:
    odd = tmp_path / "dir with 'quotes' and $dollar"
    odd.mkdir()
    command = [
        sys.executable,
        "-c",
        "import os,sys; print(os.getcwd()); print(os.environ['V']); print(sys.argv[1:])",
        "a b",
        "$HOME",
        "it's",
    ]
    script = qemu.job_script(command, str(odd), {"V": "x y $z `w`", "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [str(odd), "x y $z `w`", "['a b', '$HOME', \"it's\"]"]
    bad = qemu.job_script(["true"], str(tmp_path / "missing"), {})
    assert subprocess.run(["sh", "-c", bad], capture_output=True).returncode == 125


def test_guest_env_passes_only_chosen_variables() -> None:
    env = qemu.guest_env({"PATH": "/x", "PYBPFLOAD_REQUIRE_KERNEL": "1", "SECRET_TOKEN": "s", "PYTHONPATH": "/t"}, {"EXTRA": "1"})
    assert env["PATH"] == "/x" and env["PYBPFLOAD_REQUIRE_KERNEL"] == "1" and env["EXTRA"] == "1"
    assert "SECRET_TOKEN" not in env and "PYTHONPATH" not in env
    assert env["HOME"] == "/root" and env["VMTEST_GUEST"] == "1"


@pytest.mark.parametrize("text,status", [("0\n", 0), ("1", 1), ("137\n", 137), ("", None), ("x", None), (None, None)])
def test_parse_status(text: Optional[str], status: Optional[int]) -> None:
    assert qemu.parse_status(text) == status


# --- results ----------------------------------------------------------------

SAMPLE_TESTS = """
import pytest

def test_ok():
    pass

def test_bad():
    assert 1 == 2, "one is not two"

@pytest.mark.skip(reason="not on this kernel")
def test_skipped():
    pass

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    assert n

class TestGroup:
    def test_inner(self):
        raise RuntimeError("boom")
"""


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Tuple[str, str]:
    """Real pytest output and JUnit XML of a small suite (pytest is the oracle for the parsers)."""
    d = tmp_path_factory.mktemp("sample")
    (d / "tests").mkdir()
    (d / "tests" / "test_sample.py").write_text(SAMPLE_TESTS)
    junit = d / "junit.xml"
    cmd = matrix.pytest_command(sys.executable, str(junit))
    i = cmd.index("kernel")
    del cmd[i - 1 : i + 1]  # the sample has no kernel marker
    proc = subprocess.run(
        cmd + ["tests"],
        cwd=d,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
    )
    assert proc.returncode == 1, proc.stdout
    return proc.stdout, junit.read_text()


def test_summary_line_matches_pytest(sample_run: Tuple[str, str]) -> None:
    output, _ = sample_run
    line = results.summary_line(output)
    assert line == output.strip().splitlines()[-1].strip("= ")
    assert results.summary_counts(line) == {"failed": 2, "passed": 3, "skipped": 1}
    assert results.summary_line("tests/x.py ....\nsomething else\n") == ""


def test_junit_outcomes_match_pytest(sample_run: Tuple[str, str]) -> None:
    output, xml = sample_run
    got = {t.nodeid: t for t in results.parse_junit(xml)}
    assert set(got) == {
        "tests/test_sample.py::test_ok",
        "tests/test_sample.py::test_bad",
        "tests/test_sample.py::test_skipped",
        "tests/test_sample.py::test_param[1]",
        "tests/test_sample.py::test_param[2]",
        "tests/test_sample.py::TestGroup::test_inner",
    }
    # the same outcomes pytest's own -rfEs summary reports
    for line in output.splitlines():
        m = re.match(r"(FAILED|ERROR) (\S+)", line)
        if m:
            assert got[m.group(2)].outcome == {"FAILED": "failed", "ERROR": "error"}[m.group(1)]
    assert "one is not two" in got["tests/test_sample.py::test_bad"].message
    assert got["tests/test_sample.py::test_skipped"].outcome == "skipped"
    assert got["tests/test_sample.py::test_skipped"].message == "not on this kernel"
    counts: Dict[str, int] = {}
    for t in got.values():
        counts[t.outcome] = counts.get(t.outcome, 0) + 1
    assert counts == results.summary_counts(results.summary_line(output))


def test_junit_collection_error_names_the_module() -> None:
    xml = (
        '<testsuites><testsuite name="pytest" errors="1"><testcase classname="" name="tests.test_syscall_types">'
        '<error message="collection failure">SyntaxError: bad</error></testcase></testsuite></testsuites>'
    )
    (t,) = results.parse_junit(xml)
    assert (t.nodeid, t.outcome, t.message) == ("tests/test_syscall_types.py", "error", "collection failure")


def _kr(name: str, outcomes: Dict[str, str], status: Optional[int] = None) -> results.KernelResult:
    tests = [results.TestOutcome(n, o, "why" if o != "passed" else "") for n, o in outcomes.items()]
    st = status if status is not None else (1 if any(o in ("failed", "error") for o in outcomes.values()) else 0)
    return results.KernelResult(name, name + ".0-test", st, 1.0, "summary", tests)


def test_results_round_trip_and_table() -> None:
    runs = [
        _kr(
            "5.10",
            {
                "tests/test_maps.py::test_a": "failed",
                "tests/test_maps.py::test_b": "passed",
                "tests/test_program.py::test_c": "skipped",
            },
        ),
        _kr(
            "6.12",
            {
                "tests/test_maps.py::test_a": "passed",
                "tests/test_maps.py::test_b": "passed",
                "tests/test_program.py::test_c": "passed",
            },
        ),
        results.KernelResult("7.x", "?", None, 3.0, "set-up failed: no archive"),
    ]
    meta = {"date": "2026-01-01 00:00 UTC"}
    text = results.dump(runs, meta)
    assert results.load(text) == runs and results.load_meta(text) == meta
    table = results.render_table(runs, meta).splitlines()
    header = next(line for line in table if line.startswith("| feature"))
    assert header == "| feature | 5.10 (5.10.0-test) | 6.12 (6.12.0-test) | 7.x (?) |"
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table if line.startswith("| ")}
    assert rows["maps"] == ["✗ 1/2", "✓ 2/2", "–"]
    assert rows["program"] == ["○ 0/1 (1 skipped)", "✓ 1/1", "–"]
    assert rows["**all kernel tests**"][0] == "✗ 1/3 (1 skipped)"
    assert "- 5.10: `tests/test_maps.py::test_a` failed: why" in table
    assert "- 7.x: no results (set-up failed: no archive)" in table
    line = cli.closing_line(runs)
    assert line == "vmtest: 4 passed, 2 failed, 1 skipped"
    assert re.fullmatch(r"(\w+: )?\d+ passed, \d+ failed(, \d+ skipped)?", line)


def test_feature_of() -> None:
    assert results.feature_of("tests/test_maps.py::test_x[1]") == "maps"
    assert results.feature_of("tests/test_syscall_types.py") == "syscall_types"


def test_cli_parses_matrix_and_run_arguments() -> None:
    ns = cli.parse_args(["matrix", "--offline", "--kernels", "5.10,7.x", "--jobs", "1", "--", "-k", "maps"])
    assert ns.jobs == 1 and ns.offline and ns.pytest_args == ["-k", "maps"]
    ns = cli.parse_args(["run", "6.12", "--timeout", "60", "--", "uname", "-r", "--timeout"])
    assert (ns.kernel, ns.timeout, ns.command) == ("6.12", 60.0, ["uname", "-r", "--timeout"])
    cmd = matrix.pytest_command("/py", "/run/vmtest/junit.xml", ["-x"])
    assert cmd[:3] == ["/py", "-m", "pytest"] and cmd[cmd.index("-m", 2) + 1] == "kernel"
    assert "--junitxml=/run/vmtest/junit.xml" in cmd and cmd[-1] == "-x"


def test_run_matrix_script_is_executable() -> None:
    script = TOOLS / "vmtest" / "run-matrix.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    subprocess.run(["bash", "-n", str(script)], check=True)
