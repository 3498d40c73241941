"""The containerd configuration the project ships (config.toml.example, packaging/containerd/, packaging/k3s/)
and the stream processor entries every one of them must hold.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from support.repo import REPO

PACKAGING = REPO / "packaging"
SNIPPETS = {
    "containerd-v2": PACKAGING / "containerd" / "config-v2.toml",
    "containerd-v3": PACKAGING / "containerd" / "config-v3.toml",
    "k3s-v2": PACKAGING / "k3s" / "config.toml.tmpl",
    "k3s-v3": PACKAGING / "k3s" / "config-v3.toml.tmpl",
}
BASE_TEMPLATE_LINE = '{{ template "base" . }}'
INSTALLED_DECODER = "/usr/local/bin/ctd-decoder"
OCICRYPT_DIR = "/etc/containerd/ocicrypt"

_LAYER = "application/vnd.oci.image.layer.v1.tar"
# Only these two IDs receive a payload. The .tar entry takes zstd layers too: it returns "+zstd" for
# both, and containerd's decompressor passes an uncompressed tar through (measured on 1.6.20).
EXPECTED_PROCESSORS: dict[str, tuple[list[str], str]] = {
    "io.containerd.ocicrypt.decoder.v1.tar.gzip": ([f"{_LAYER}+gzip+encrypted"], f"{_LAYER}+gzip"),
    "io.containerd.ocicrypt.decoder.v1.tar": ([f"{_LAYER}+encrypted", f"{_LAYER}+zstd+encrypted"], f"{_LAYER}+zstd"),
}


def snippet_text(name: str) -> str:
    """Return a shipped snippet as TOML; a k3s template loses its ``{{ template "base" . }}`` line."""
    text = SNIPPETS[name].read_text()
    if name.startswith("k3s"):
        first, _, rest = text.partition("\n")
        assert first == BASE_TEMPLATE_LINE
        assert "{{" not in rest, "Go template syntax in the rest would be executed by k3s (comments too)"
        text = rest
    return text


def load_snippet(name: str) -> dict[str, Any]:
    """Parse a shipped snippet (see :func:`snippet_text`)."""
    return tomllib.loads(snippet_text(name))


def check_processors(config: dict[str, Any]) -> None:
    """Assert that ``config`` registers exactly the expected decoder entries."""
    processors = config["stream_processors"]
    assert set(processors) == set(EXPECTED_PROCESSORS), "only these two IDs receive a payload"
    for processor_id, (accepts, returns) in EXPECTED_PROCESSORS.items():
        entry = processors[processor_id]
        assert entry["accepts"] == accepts, processor_id
        assert entry["returns"] == returns, processor_id
        assert entry["path"].endswith("ctd-decoder")
        assert entry["args"] == ["--decryption-keys-path", f"{OCICRYPT_DIR}/keys"]


def snippet_for_node(name: str, decoder: str, ocicrypt_dir: Path) -> str:
    """A shipped snippet pointed at ``decoder`` and ``ocicrypt_dir`` (keys/ inside it), without its
    ``version`` line, to append to a test containerd's own configuration."""
    text = snippet_text(name).replace(INSTALLED_DECODER, decoder).replace(OCICRYPT_DIR, str(ocicrypt_dir))
    return "\n".join(line for line in text.splitlines() if not line.startswith("version = ")) + "\n"
