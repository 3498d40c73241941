"""keyload's loaders are cryptography's public ones, reached without importing its serialization package."""

from __future__ import annotations

import subprocess
import sys

from cryptography.hazmat.primitives import serialization

from ctd_decoder.ocicrypt import keyload


def test_loaders_are_the_public_serialization_functions() -> None:
    # If a cryptography release wraps these again, the shortcut would skip what the wrapper does.
    assert keyload.load_pem_private_key is serialization.load_pem_private_key
    assert keyload.load_der_private_key is serialization.load_der_private_key
    assert keyload.load_pem_public_key is serialization.load_pem_public_key
    assert keyload.load_der_public_key is serialization.load_der_public_key
    assert keyload.Encoding is serialization.Encoding
    assert keyload.PublicFormat is serialization.PublicFormat


def test_importing_keyload_leaves_the_serialization_package_and_its_ssh_imports_out() -> None:
    code = "import sys, ctd_decoder.ocicrypt.keyload\nprint(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    assert "ctd_decoder.ocicrypt.keyload" in loaded
    assert not loaded & {"cryptography.hazmat.primitives.serialization", "dataclasses", "inspect"}, sorted(loaded)
