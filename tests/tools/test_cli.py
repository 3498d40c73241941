"""The installed ``ocicrypt`` operator command: version, help and usage errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import ctd_decoder

OCICRYPT = shutil.which("ocicrypt", path=os.path.dirname(sys.executable))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    assert OCICRYPT, "ocicrypt is not installed next to the test interpreter"
    return subprocess.run([OCICRYPT, *args], capture_output=True, text=True, timeout=60, check=False)


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ocicrypt version {ctd_decoder.__version__}\n"


def test_help_exits_zero_and_names_the_program() -> None:
    result = _run("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: ocicrypt")


def test_no_subcommand_is_a_usage_error() -> None:
    result = _run()
    assert result.returncode == 2
    assert "usage: ocicrypt" in result.stderr


def test_unknown_subcommand_is_a_usage_error_without_traceback() -> None:
    result = _run("no-such-command")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr
