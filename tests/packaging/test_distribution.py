"""The distribution: the project's licence as an SPDX expression with its text, and a wheel that
``python -m build`` makes from the sources and that installs and decodes in a fresh venv."""

from __future__ import annotations

import subprocess
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

from support.decoder import run_decoder
from support.layers import jwe_layer
from support.repo import REPO
from support.wheel import build_wheel, install_in_fresh_venv, is_small_client

import ctd_decoder


def test_installed_distribution_declares_an_spdx_licence_and_ships_its_text() -> None:
    dist = metadata.distribution("ctd-decoder")
    assert dist.metadata["License-Expression"] == "Apache-2.0"
    assert "License" not in dist.metadata, "the legacy free-text License field is gone with PEP 639"
    license_files = [f for f in dist.files or [] if f.name == "LICENSE"]
    assert license_files, "LICENSE is not in the installed dist-info"
    installed = Path(str(license_files[0].locate())).read_text()
    assert installed == (REPO / "LICENSE").read_text()
    assert "Apache License" in installed and "Version 2.0, January 2004" in installed


def test_wheel_from_python_build_carries_the_small_client_installs_in_a_fresh_venv_and_decodes(
    tmp_path: Path,
) -> None:
    """The name is on no index, so a wheel is how a Python node gets it (costs 1 to 3 min on 2 busy cores:
    isolated build environments, a venv, the runtime dependencies from the package index)."""
    wheel, output = build_wheel(tmp_path)
    assert "SetuptoolsDeprecationWarning" not in output
    platform_tag = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert wheel.name == f"ctd_decoder-{ctd_decoder.__version__}-py3-none-{platform_tag}.whl"
    with zipfile.ZipFile(wheel) as archive:
        client = f"ctd_decoder-{ctd_decoder.__version__}.data/data/bin/ctd-decoder"
        assert archive.getinfo(client).external_attr >> 16 & 0o111, "the client is not executable in the wheel"
    binaries = install_in_fresh_venv(wheel, tmp_path / "venv")
    assert is_small_client(binaries / "ctd-decoder")
    assert not is_small_client(binaries / "ctd-decoder-python")
    _check_decodes(binaries / "ctd-decoder")
    # Without a server it execs the Python entry point: the same pid, so containerd sees one process.
    (tmp_path / "run").mkdir(mode=0o700)
    no_server = {"CTD_DECODER_WARM_SOCKET": str(tmp_path / "run" / "none.sock")}
    version = subprocess.run([binaries / "ctd-decoder", "--version"], capture_output=True, text=True, env=no_server)
    assert version.stdout.strip() == f"ctd-decoder version {ctd_decoder.__version__}", version


def test_pure_python_wheel_is_the_fallback_and_decodes(tmp_path: Path) -> None:
    wheel, _ = build_wheel(tmp_path, pure=True)
    assert wheel.name == f"ctd_decoder-{ctd_decoder.__version__}-py3-none-any.whl"
    binaries = install_in_fresh_venv(wheel, tmp_path / "venv")
    assert not is_small_client(binaries / "ctd-decoder")
    assert not (binaries / "ctd-decoder-python").exists()
    _check_decodes(binaries / "ctd-decoder")


def _check_decodes(exe: Path) -> None:
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"ctd-decoder version {ctd_decoder.__version__}", version
    layer = jwe_layer(b"a layer decoded by the wheel's ctd-decoder\n" * 100)
    result = run_decoder(layer.blob, layer.payload(), command=[str(exe)])
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext
