"""Keys in the payload (the ``ctr-enc ... --key`` path): containerd's Diff service ``Apply`` with the
payload under each ocicrypt processor ID, forwarded byte for byte to our decoder's fd 3. The node's
keys directory is empty, so only the payload can decrypt.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support.oci import diff_ids, make_layout, read_layers, skopeo

from .node import DEFAULT_LAYERS, Node, apply_with_payload, verify_snapshots
from .schemes import SCHEMES


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_diff_apply_decrypts_with_keys_in_payload(
    scheme: str, decoder: str, nodes: Callable[..., Node], tmp_path: Path
) -> None:
    recipient = SCHEMES[scheme](tmp_path / "recipient")
    make_layout(tmp_path / "plain", DEFAULT_LAYERS)
    args = ["copy", "-q"]
    for key in recipient.encryption_keys:
        args += ["--encryption-key", key]
    skopeo(
        *args, f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1", env={**os.environ, **recipient.skopeo_env}
    )
    node = nodes(decoder, None, {}, recipient.decoder_env)
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    client = node.client(namespace)
    applied = apply_with_payload(client, read_layers(tmp_path / "enc"), decrypt_config=recipient.decrypt_config())
    assert applied == diff_ids(tmp_path / "plain")
    verify_snapshots(client, applied, DEFAULT_LAYERS, "overlayfs")
