"""The benchmarks in bench/ are not run by CI (they take minutes and need a quiet machine), but they
must keep starting: a helper that moves in tests/support must not leave one broken."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
MODULES = sorted(BENCH.glob("*.py"))
SCRIPTS = [path.name for path in MODULES if 'if __name__ == "__main__":' in path.read_text()]


def test_every_bench_module_is_a_script_or_imported_by_one() -> None:
    """A helper module (no __main__) is started by the --help of the script that imports it."""
    texts = "".join((BENCH / script).read_text() for script in SCRIPTS)
    helpers = [path.stem for path in MODULES if path.name not in SCRIPTS]
    assert SCRIPTS
    assert [name for name in helpers if f"from {name} import" not in texts and f"import {name}" not in texts] == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_starts_and_explains_its_options(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: "), result.stdout
