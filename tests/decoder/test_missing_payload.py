"""No payload on fd 3: the diagnostic names the cause that fits how the decoder was started."""

from __future__ import annotations

import os
import pty
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.decoder import run_decoder
from support.layers import GZIP_ENCRYPTED, EncryptedLayer, jwe_layer
from support.references import fastest_go_reference

from ctd_decoder.decoder.cold import USAGE
from ctd_decoder.decoder.payload import MEDIA_TYPE_ENV, MISSING_PAYLOAD

ZSTD_ENCRYPTED = "application/vnd.oci.image.layer.v1.tar+zstd+encrypted"


@pytest.fixture(scope="module")
def layer() -> EncryptedLayer:
    return jwe_layer(b"layer" * 100)


def test_plain_ctr_pull_names_ctr_enc_and_the_cri(layer: EncryptedLayer) -> None:
    result = run_decoder(layer.blob, None, env={MEDIA_TYPE_ENV: GZIP_ENCRYPTED})
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.startswith(f"{MISSING_PAYLOAD} (")
    assert "`ctr images pull` or `ctr images import`" in result.stderr
    assert "ctr-enc images pull --key" in result.stderr and "through the CRI" in result.stderr
    assert 'key_model is not "node"' in result.stderr and "use_local_image_pull = true" in result.stderr
    assert "zstd" not in result.stderr, "a gzip layer has nothing to do with the zstd processor ID"
    assert result.stderr.count("\n") == 1


def test_zstd_layer_without_payload_names_the_processor_id(layer: EncryptedLayer) -> None:
    result = run_decoder(layer.blob, None, env={MEDIA_TYPE_ENV: ZSTD_ENCRYPTED})
    assert (result.returncode, result.stdout) == (1, b"")
    first_cause = result.stderr.split(";")[0]
    assert result.stderr.startswith(
        f"{MISSING_PAYLOAD} (containerd started ctd-decoder for a layer of type {ZSTD_ENCRYPTED}"
    )
    assert "must use the ID io.containerd.ocicrypt.decoder.v1.tar " in first_cause
    assert "not ...decoder.v1.tar.zstd" in first_cause


def test_not_started_by_containerd_says_so(layer: EncryptedLayer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MEDIA_TYPE_ENV, raising=False)
    result = run_decoder(layer.blob, None)
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.startswith(f"{MISSING_PAYLOAD} ({MEDIA_TYPE_ENV} is not set, so containerd did not start")


@pytest.fixture
def terminal() -> Iterator[Path]:
    controller, terminal_end = pty.openpty()
    try:
        yield Path(os.ttyname(terminal_end))
    finally:
        os.close(terminal_end)
        os.close(controller)


def test_run_by_hand_on_a_terminal_shows_the_usage(terminal: Path) -> None:
    result = run_decoder(terminal, None)
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.startswith(f"{MISSING_PAYLOAD}\nctd-decoder is meant to be run by containerd")
    assert result.stderr.endswith(USAGE)
    go = run_decoder(terminal, None, command=[str(fastest_go_reference().path)])
    assert (go.returncode, go.stderr) == (1, f"{MISSING_PAYLOAD}\n"), "the Go prefix is kept"
