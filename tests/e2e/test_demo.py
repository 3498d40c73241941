"""The README's main-job demo runs end to end, with only the runtime packages (no pytest) importable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.decoder import decoder_command

TESTS_DIR = Path(__file__).resolve().parents[1]

# The demo venv has no pytest: make importing it fail here too, so the demo's modules must not need it.
_RUN_WITHOUT_PYTEST = """
import runpy, sys
sys.modules["pytest"] = None
runpy.run_module("support.e2e.demo", run_name="__main__", alter_sys=True)
"""


def test_demo_pulls_and_verifies_an_encrypted_image() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT_PYTEST, "--decoder", decoder_command()[0]],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS_DIR)},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo OK: 2 encrypted layers pulled and verified" in result.stdout
    assert result.stdout.count("  OK") == 2
