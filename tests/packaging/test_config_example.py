"""config.toml.example is valid containerd configuration, in both the v2 form and the commented v3 form."""

from __future__ import annotations

import tomllib

from support.snippets import REPO, check_processors

EXAMPLE = REPO / "config.toml.example"


def test_containerd_1x_form_parses() -> None:
    config = tomllib.loads(EXAMPLE.read_text())
    assert config["version"] == 2
    check_processors(config)
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["image_decryption"]["key_model"] == "node"


def test_containerd_2x_form_parses_when_uncommented() -> None:
    text = EXAMPLE.read_text()
    block = text[text.index("# version = 3") :]
    uncommented = "\n".join(
        line[2:] for line in block.splitlines() if line.startswith("# ") and not line.startswith("#   #")
    )
    config = tomllib.loads(uncommented)
    assert config["version"] == 3
    check_processors(config)
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["use_local_image_pull"] is True
    assert images["image_decryption"]["key_model"] == "node"
