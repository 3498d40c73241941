"""What an operator meets on a node before or beside the decoder, as the troubleshooting table says:
containerd's own text when its built-in entries find no ``ctd-decoder``, and a node that already holds
an image's plaintext layers "pulling" the encrypted image without any key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.e2e.client import ContainerdClient, rpc_error
from support.e2e.daemons import Containerd, Registry, remove_tree
from support.e2e.node import DEFAULT_LAYERS, Image, Node, encrypt_image, push_layout, verify_snapshots
from support.e2e.schemes import Recipient
from support.tempdirs import short_tempdir

Make = Callable[[str], Recipient]
NO_DECODER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def test_builtin_entries_without_the_decoder_on_path_fail_with_containerds_text(
    registry: Registry, recipients: Make, tmp_path: Path
) -> None:
    """No ``[stream_processors]`` table: containerd 1.6.20's built-in entries run ``ctd-decoder`` from PATH."""
    if any((Path(d) / "ctd-decoder").exists() for d in NO_DECODER_PATH.split(":")):
        pytest.fail(f"a ctd-decoder is installed in {NO_DECODER_PATH}; this test needs a node without one")
    recipient = recipients("jwe-p256")
    _, encrypted = encrypt_image(tmp_path, [recipient], DEFAULT_LAYERS[:1])
    ref = push_layout(registry, encrypted)
    base = short_tempdir("ctd-path-")
    containerd = Containerd(base / "cd", [], [registry.host], env={"PATH": NO_DECODER_PATH})
    try:
        containerd.start()
        with ContainerdClient(containerd.socket, "k8s.io") as client:
            text = rpc_error(lambda: client.pull_image(ref))
    finally:
        containerd.stop()
        remove_tree(base)
    assert "failed to get stream processor for application/vnd.oci.image.layer.v1.tar+gzip+encrypted" in text
    assert "ctd-decoder resolves to executable in current directory (./ctd-decoder)" in text, text


def test_node_holding_the_plaintext_layers_pulls_an_encrypted_image_without_a_key(
    pip_decoder: str, registry: Registry, nodes: Callable[..., Node], recipients: Make, tmp_path: Path
) -> None:
    """containerd skips a layer whose snapshot (chain ID) it already has: it neither fetches nor decrypts it."""
    recipient = recipients("jwe-rsa2048")
    plain, encrypted = encrypt_image(tmp_path, [recipient])
    image = Image(push_layout(registry, encrypted), plain, DEFAULT_LAYERS)
    node = nodes(pip_decoder, registry, {})  # an empty keys directory: no key for this image
    client = node.client("k8s.io")
    assert "call to DecryptLayer failed" in rpc_error(lambda: client.pull_image(image.ref))

    client.pull_image(push_layout(registry, plain))
    calls_before = len(node.decoder_calls())
    client.pull_image(image.ref)
    assert len(node.decoder_calls()) == calls_before, "no decoder may run for layers the node already holds"
    manifest = client.read_json(str(client.image_target(image.ref)["digest"]))
    assert client.read_json(manifest["config"]["digest"])["rootfs"]["diff_ids"] == image.diff_ids
    verify_snapshots(client, image.diff_ids, image.layers_files, "overlayfs")
    for layer in manifest["layers"]:
        assert layer["mediaType"].endswith("+encrypted")
