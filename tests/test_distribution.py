"""The installed distribution's metadata: the project's licence as an SPDX expression, with its text."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_installed_distribution_declares_an_spdx_licence_and_ships_its_text() -> None:
    dist = metadata.distribution("ctd-decoder")
    assert dist.metadata["License-Expression"] == "Apache-2.0"
    assert "License" not in dist.metadata, "the legacy free-text License field is gone with PEP 639"
    license_files = [f for f in dist.files or [] if f.name == "LICENSE"]
    assert license_files, "LICENSE is not in the installed dist-info"
    installed = Path(str(license_files[0].locate())).read_text()
    assert installed == (REPO / "LICENSE").read_text()
    assert "Apache License" in installed and "Version 2.0, January 2004" in installed
