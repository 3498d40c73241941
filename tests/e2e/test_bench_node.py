"""The node ``bench/pull.py`` times pulls on: containerd runs the decoder itself, without the logging wrapper
the other end-to-end tests put in front of it (a shell started per layer, about a millisecond each)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.e2e.daemons import Registry
from support.e2e.node import Node, push_encrypted, verify_pulled
from support.e2e.schemes import Recipient


def test_a_node_without_the_call_logger_registers_the_decoder_itself_and_decrypts(
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    recipient = recipients("jwe-rsa2048")
    image = push_encrypted(registry, tmp_path, [recipient])
    node = nodes(pip_decoder, registry, recipient.key_files, log_calls=False)
    config = node.containerd.config_toml()
    assert f'path = "{pip_decoder}"' in config and "ctd-decoder-logged" not in config, config
    client = node.client("k8s.io")
    client.pull_image(image.ref)
    verify_pulled(client, image)
    with pytest.raises(RuntimeError, match="does not log its runs"):  # not an empty list: nothing was logged
        node.decoder_calls()
