"""Keys in the payload (the ``ctr-enc ... --key`` path): containerd's Diff service ``Apply`` with the
payload under each ocicrypt processor ID, forwarded byte for byte to our decoder's fd 3. The node's
keys directory is empty, so only the payload can decrypt.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support.e2e.node import DEFAULT_LAYERS, Node, apply_with_payload, encrypt_image, verify_snapshots
from support.e2e.schemes import SCHEMES, Recipient
from support.oci import diff_ids, read_layers


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_diff_apply_decrypts_with_keys_in_payload(
    scheme: str, decoder: str, nodes: Callable[..., Node], recipients: Callable[[str], Recipient], tmp_path: Path
) -> None:
    recipient = recipients(scheme)
    plain, encrypted = encrypt_image(tmp_path, [recipient])
    node = nodes(decoder, None, {}, recipient.decoder_env)
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    client = node.client(namespace)
    applied = apply_with_payload(client, read_layers(encrypted), decrypt_config=recipient.decrypt_config())
    assert applied == diff_ids(plain)
    verify_snapshots(client, applied, DEFAULT_LAYERS, "overlayfs")
