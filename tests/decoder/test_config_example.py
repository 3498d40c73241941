"""config.toml.example is valid containerd configuration, in both the v2 form and the commented v3 form."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "config.toml.example"
IDS = ("io.containerd.ocicrypt.decoder.v1.tar.gzip", "io.containerd.ocicrypt.decoder.v1.tar")


def _check_processors(config: dict[str, Any]) -> None:
    processors = config["stream_processors"]
    assert set(processors) == set(IDS), "only these two IDs receive a payload"
    for processor_id, entry in processors.items():
        suffix = "+gzip" if processor_id.endswith("gzip") else ""
        assert entry["accepts"] == [f"application/vnd.oci.image.layer.v1.tar{suffix}+encrypted"]
        assert entry["returns"] == f"application/vnd.oci.image.layer.v1.tar{suffix}"
        assert entry["path"].endswith("ctd-decoder")
        assert entry["args"] == ["--decryption-keys-path", "/etc/containerd/ocicrypt/keys"]


def test_containerd_1x_form_parses() -> None:
    config = tomllib.loads(EXAMPLE.read_text())
    assert config["version"] == 2
    _check_processors(config)
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["image_decryption"]["key_model"] == "node"


def test_containerd_2x_form_parses_when_uncommented() -> None:
    text = EXAMPLE.read_text()
    block = text[text.index("# version = 3") :]
    uncommented = "\n".join(
        line[2:] for line in block.splitlines() if line.startswith("# ") and not line.startswith("#   #")
    )
    config = tomllib.loads(uncommented)
    assert config["version"] == 3
    _check_processors(config)
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["use_local_image_pull"] is True
    assert images["image_decryption"]["key_model"] == "node"
