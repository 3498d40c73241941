"""``ocicrypt node`` as a command on temporary k3s and containerd host roots: what it writes, which
units it restarts and when, byte-for-byte uninstall, and one-line errors. The host-exec prefix here is
a recorder (a unit test of the installer; tests/e2e/test_node_*.py restart a real containerd)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctd_decoder.tools.node import paths

K3S = paths.FLAVOURS[paths.Flavour.K3S]
OCICRYPT = str(Path(sys.executable).with_name("ocicrypt"))


def snapshot(root: Path) -> dict[str, bytes]:
    found = {}
    for path in sorted(root.rglob("*")):
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes() if path.is_file() else b"dir"
        found[str(path.relative_to(root))] = content + str(path.lstat().st_mode).encode()
    return found


def identities(root: Path) -> dict[str, tuple[int, int]]:
    """Inode and mtime of every file: a rewrite with the same bytes changes them."""
    return {str(p.relative_to(root)): (p.lstat().st_ino, p.lstat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def setup(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    root, bundle, log = tmp_path / "host", tmp_path / "bundle", tmp_path / "host-exec.log"
    (root / "usr/local").mkdir(parents=True)
    bundle.mkdir()
    (bundle / "ctd-decoder").write_text("#!/bin/sh\nexit 0\n")
    (bundle / "ctd-decoder").chmod(0o755)
    (bundle / "_internal").mkdir()
    (bundle / "_internal/lib.so").write_bytes(b"\x7fELF")
    recorder = tmp_path / "record"
    recorder.write_text(f"#!/bin/sh\necho \"$*\" >> '{log}'\n")
    recorder.chmod(0o755)
    return root, bundle, recorder, log


def node(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OCICRYPT, "node", *args, "--host-root", str(root)], capture_output=True, text=True, timeout=60
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 1, done
    assert done.stdout == "", done.stdout
    assert done.stderr.count("\n") == 1 and text in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("version", [2, 3])
def test_k3s_template_install_is_idempotent_and_uninstall_restores(tmp_path: Path, version: int) -> None:
    root, bundle, recorder, log = setup(tmp_path)
    rendered = root / K3S.config.lstrip("/")
    rendered.parent.mkdir(parents=True)
    rendered.write_text(f"version = {version}\n")
    before = snapshot(root)
    args = ["--bundle", str(bundle), "--host-exec", str(recorder)]
    done = node(root, "install", *args)
    assert done.returncode == 0, done.stderr
    assert f"k3s: config version {version}, strategy template" in done.stdout
    template = root / K3S.template(version).lstrip("/")
    assert template.read_text().startswith('{{ template "base" . }}\n')
    assert f'path = "{paths.DECODER}"' in template.read_text()
    assert (root / "usr/local/bin/ocicrypt").resolve() == root / "usr/local/lib/ctd-decoder/ctd-decoder"
    calls = log.read_text().splitlines()
    assert calls == [
        "systemctl try-restart k3s.service k3s-agent.service",
        f"{paths.OCICRYPT_TOOL} doctor --containerd-config {K3S.config}",
    ]
    middle, touched = snapshot(root), identities(root)
    again = node(root, "install", *args)
    assert again.returncode == 0 and "no restart" in again.stdout, again.stdout
    assert snapshot(root) == middle and identities(root) == touched
    assert len(log.read_text().splitlines()) == 3  # only doctor ran again
    removed = node(root, "uninstall", "--host-exec", str(recorder))
    assert removed.returncode == 0, removed.stderr
    assert snapshot(root) == before
    assert log.read_text().splitlines()[-1] == "systemctl try-restart k3s.service k3s-agent.service"


def test_containerd_without_config_gets_one_of_its_own_and_loses_it(tmp_path: Path) -> None:
    root, bundle, recorder, _ = setup(tmp_path)
    before = snapshot(root)
    done = node(root, "install", "--bundle", str(bundle), "--host-exec", str(recorder), "--no-doctor")
    assert done.returncode == 0 and "strategy create" in done.stdout, done.stdout
    config = (root / "etc/containerd/config.toml").read_text()
    assert 'imports = ["/etc/containerd/conf.d/90-ctd-decoder.toml"]' in config
    status = node(root, "status")
    assert status.returncode == 0 and "strategy create" in status.stdout
    (root / "etc/containerd/conf.d/90-ctd-decoder.toml").write_text("# edited\n")
    drift = node(root, "status")
    assert drift.returncode == 1 and "changed or missing since the install" in drift.stdout
    removed = node(root, "uninstall", "--host-exec", str(recorder))
    assert removed.returncode == 1 and "left in place (changed since the install)" in removed.stdout
    assert not (root / "etc/containerd/config.toml").exists() and not (root / "usr/local/bin").exists()
    shutil.rmtree(root / "etc")  # the edited drop-in and the directories that hold it
    assert snapshot(root) == before


def test_errors_are_one_line(tmp_path: Path) -> None:
    root, bundle, recorder, _ = setup(tmp_path)
    assert_one_line_error(node(root, "install", "--host-exec", str(recorder)), "no bundle to install")
    config = root / "etc/containerd/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("version = [\n")
    assert_one_line_error(node(root, "install", "--bundle", str(bundle)), "is not valid TOML")
    config.write_text("version = 2\n")
    (root / "usr/local/bin").mkdir()
    (root / "usr/local/bin/ctd-decoder").write_text("theirs")
    done = node(root, "install", "--bundle", str(bundle), "--no-restart", "--no-doctor")
    assert_one_line_error(done, "/usr/local/bin/ctd-decoder exists and was not installed by ocicrypt node")
    assert (root / "usr/local/bin/ctd-decoder").read_text() == "theirs"
    assert not (root / "usr/local/lib").exists() and not (root / paths.OCICRYPT_DIR.lstrip("/")).exists()
    assert config.read_text() == "version = 2\n"
    k3s = root / K3S.config.lstrip("/")
    k3s.parent.mkdir(parents=True)
    assert_one_line_error(node(root, "install", "--bundle", str(bundle)), "start k3s once")
    k3s.write_text("version = 3\n")
    (root / K3S.template(3).lstrip("/")).write_text('{{ template "base" . }}\n# the operator\'s\n')
    (root / "usr/local/bin/ctd-decoder").unlink()
    done = node(root, "install", "--bundle", str(bundle), "--no-restart", "--no-doctor")
    assert_one_line_error(done, "config-v3.toml.tmpl exists and was not written by ocicrypt node")
    assert_one_line_error(node(root, "sync-keys", "--secret-dir", str(tmp_path / "none")), "not a mounted Secret")
