"""Figures the README states, checked against the constants they describe (measured in
tests/ocicrypt/test_stream.py and tests/decoder/)."""

from __future__ import annotations

from pathlib import Path

from ctd_decoder.decoder.payload import MAX_PAYLOAD_SIZE
from ctd_decoder.ocicrypt.keywrap.provider.wrapper import DEFAULT_TIMEOUT
from ctd_decoder.ocicrypt.stream import _PIPELINE_DEPTH, CHUNK_SIZE, PIPE_SIZE

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
MIB = 1 << 20


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_readme_stream_figures_match_the_code() -> None:
    text = _flat(README)
    chunk = CHUNK_SIZE // MIB
    assert f"the last full {chunk} MiB chunk and of the short one after it ({chunk} to {2 * chunk} MiB" in text
    assert f"{chunk} MiB chunks in five buffers allocated once (three for ciphertext, two for plaintext;" in text
    assert _PIPELINE_DEPTH == 3
    assert f"{PIPE_SIZE // MIB} MiB pipes" in text
    assert "1 MiB chunk" not in text and "1 MiB hold-back" not in text


def test_readme_limits_match_the_code() -> None:
    text = _flat(README)
    assert f"the payload exceeds {MAX_PAYLOAD_SIZE // MIB} MiB" in text
    assert f"(default {DEFAULT_TIMEOUT:g})" in text
