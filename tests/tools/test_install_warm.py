"""``install.sh --warm`` into a staging tree: the server link and the systemd units, nothing enabled."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_install_warm_stages_the_units_and_the_server_link(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    executable = bundle / "ctd-decoder"  # stands in for the PyInstaller bundle: install.sh only runs --help
    executable.write_text("#!/bin/sh\necho ctd-decoder usage\n")
    executable.chmod(0o755)
    client = bundle / "ctd-decoder-client"  # as build.sh compiles it; it runs ctd-decoder when no server answers
    client.write_text('#!/bin/sh\nexec "$(dirname "$(readlink -f "$0")")/ctd-decoder" "$@"\n')
    client.chmod(0o755)
    root = tmp_path / "root"
    result = subprocess.run(
        ["bash", str(REPO / "packaging" / "install.sh"), "--from", str(bundle), "--destdir", str(root), "--warm"],
        capture_output=True,
        text=True,
        check=False,
    )
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
