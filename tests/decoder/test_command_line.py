"""The installed ``ctd-decoder`` command line, as an operator types it."""

from __future__ import annotations

import pytest
from support.decoder import run_decoder

import ctd_decoder


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version_prints_like_the_go_decoder(flag: str) -> None:
    result = run_decoder(b"", None, [flag])
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"ctd-decoder version {ctd_decoder.__version__}\n"
    assert result.stderr == ""


def test_help_lists_the_version_flag() -> None:
    result = run_decoder(b"", None, ["--help"])
    assert result.returncode == 0
    assert b"--decryption-keys-path" in result.stdout
    assert b"--version, -v" in result.stdout
