"""The distribution: the project's licence as an SPDX expression with its text, and a wheel that
``python -m build`` makes from the sources and that installs and decodes in a fresh venv."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

from support.decoder import run_decoder
from support.layers import jwe_layer

import ctd_decoder

REPO = Path(__file__).resolve().parents[2]


def test_installed_distribution_declares_an_spdx_licence_and_ships_its_text() -> None:
    dist = metadata.distribution("ctd-decoder")
    assert dist.metadata["License-Expression"] == "Apache-2.0"
    assert "License" not in dist.metadata, "the legacy free-text License field is gone with PEP 639"
    license_files = [f for f in dist.files or [] if f.name == "LICENSE"]
    assert license_files, "LICENSE is not in the installed dist-info"
    installed = Path(str(license_files[0].locate())).read_text()
    assert installed == (REPO / "LICENSE").read_text()
    assert "Apache License" in installed and "Version 2.0, January 2004" in installed


def test_wheel_from_python_build_installs_in_a_fresh_venv_and_decodes(tmp_path: Path) -> None:
    """The name is on no index, so a wheel is how a Python node gets it (costs ~1 min: isolated build
    environment, a venv, the runtime dependencies from the package index: 1 to 3 min on 2 busy cores)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copyfile(REPO / name, source / name)
    shutil.copytree(REPO / "ctd_decoder", source / "ctd_decoder", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # not the checkout: its build/ directory (pip's, the bundle cache) shadows the build package
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "SetuptoolsDeprecationWarning" not in built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("ctd_decoder-*.whl")
    assert wheel.name == f"ctd_decoder-{ctd_decoder.__version__}-py3-none-any.whl"

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    installed = subprocess.run(
        [str(env_dir / "bin/python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    exe = str(env_dir / "bin/ctd-decoder")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"ctd-decoder version {ctd_decoder.__version__}", version

    layer = jwe_layer(b"a layer decoded by the wheel's ctd-decoder\n" * 100)
    result = run_decoder(layer.blob, layer.payload(), command=[exe])
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext
