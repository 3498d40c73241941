"""``install.sh --warm`` into a staging tree: the server link and the systemd units, nothing enabled."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.install_routes import fake_bundle
from support.repo import REPO


def install_warm(bundle: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "packaging/install.sh"), "--from", str(bundle), "--destdir", str(root), "--warm", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_install_warm_stages_the_units_and_the_server_link(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = install_warm(fake_bundle(tmp_path), root)
    assert result.returncode == 0, result.stderr
    assert (root / "usr/local/bin/ctd-decoder-warm").readlink() == Path("../lib/ctd-decoder/ctd-decoder")
    assert (root / "usr/local/bin/ctd-decoder").readlink() == Path("../lib/ctd-decoder/ctd-decoder-client")
    service = (root / "etc/systemd/system/ctd-decoder-warm.service").read_text()
    assert "ExecStart=/usr/local/bin/ctd-decoder-warm\n" in service
    assert "Restart=on-failure" in service
    socket_unit = (root / "etc/systemd/system/ctd-decoder-warm.socket").read_text()
    assert "ListenStream=/run/ctd-decoder/warm.sock" in socket_unit
    assert "SocketMode=0600" in socket_unit and "DirectoryMode=0700" in socket_unit
    assert "staged" in result.stdout


def test_install_warm_unit_dir_puts_the_units_where_a_package_ships_them(tmp_path: Path) -> None:
    root, bundle = tmp_path / "root", fake_bundle(tmp_path)
    result = install_warm(bundle, root, "--prefix", "/usr", "--unit-dir", "/lib/systemd/system")
    assert result.returncode == 0, result.stderr
    assert "ExecStart=/usr/bin/ctd-decoder-warm\n" in (root / "lib/systemd/system/ctd-decoder-warm.service").read_text()
    assert (root / "lib/systemd/system/ctd-decoder-warm.socket").is_file()
    assert not (root / "etc/systemd").exists()
    relative = install_warm(bundle, tmp_path / "other", "--unit-dir", "lib/systemd/system")
    assert relative.returncode == 1 and "--unit-dir must be absolute" in relative.stderr
