"""The upstream reference binaries the interop, e2e and differential tests rely on are there and run."""

from __future__ import annotations

import subprocess

import pytest
from support.binaries import CONTAINERD_2, CTR_ENC, GO_DECODER_1, GO_DECODER_2, require_binary


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        (CONTAINERD_2, ["--version"], "v2.3.4"),
        (CTR_ENC, ["--version"], "ctr"),
        (GO_DECODER_1, ["--help"], "ctd-decoder"),
        (GO_DECODER_2, ["--help"], "ctd-decoder"),
    ],
)
def test_reference_binary_runs(name: str, args: list[str], expected: str) -> None:
    result = subprocess.run([require_binary(name), *args], capture_output=True, text=True, timeout=30, check=False)
    assert expected in result.stdout + result.stderr
