"""containerd 2.x's default CRI pull path (the transfer service, ``use_local_image_pull = false``): it
starts the stream processor without a payload on fd 3. The decoder decrypts there through descriptor
recovery (tests/e2e/test_recovery_pull.py); with recovery turned off, what matters is that the operator
reads our diagnostic, naming the fix, in the CRI error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.e2e.client import rpc_error
from support.e2e.daemons import CONTAINERD_2_LINE, Registry
from support.e2e.node import DEFAULT_LAYERS, Node, push_encrypted
from support.e2e.schemes import Recipient

from ctd_decoder.decoder.recovery.switch import RECOVERY_ENV


@pytest.mark.parametrize("containerd_version", [CONTAINERD_2_LINE], ids=lambda v: f"containerd-{v}")
def test_transfer_service_pull_reports_the_missing_payload_and_its_fix(
    decoder: str, registry: Registry, nodes: Callable[..., Node], recipients: Callable[[str], Recipient], tmp_path: Path
) -> None:
    recipient = recipients("jwe-rsa2048")
    image = push_encrypted(registry, tmp_path, [recipient], DEFAULT_LAYERS[:1])
    node = nodes(decoder, registry, recipient.key_files, {RECOVERY_ENV: "off"}, local_pull=False)
    text = rpc_error(lambda: node.client("k8s.io").pull_image(image.ref))
    assert "read payload: read configFd: bad file descriptor" in text, text
    assert "use_local_image_pull" in text and "descriptor recovery is turned off" in text, text
    calls = node.decoder_calls()
    assert calls and not any(call.payload for call in calls), calls
