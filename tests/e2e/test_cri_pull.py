"""Node key model (the k3s / Kubernetes path): skopeo encrypts, the registry serves, containerd's CRI
``PullImage`` runs our decoder with the keys from ``--decryption-keys-path``, and the unpacked
layers must match the image config's diff IDs. On containerd 2.x the node uses the local pull path
(``use_local_image_pull = true``), the only one that passes a payload; see test_default_pull_path.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from support.e2e.daemons import Registry
from support.e2e.node import Image, Node, push_encrypted, push_layout
from support.e2e.schemes import SCHEMES, Recipient
from support.keygen import new_key, private_pem, public_pem
from support.oci import encrypt_layout, make_layout
from support.secrets import kubernetes_secret_volume

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import EncryptConfig

Make = Callable[[str], Recipient]


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_cri_pull_decrypts_with_node_keys(
    scheme: str, decoder: str, registry: Registry, nodes: Callable[..., Node], recipients: Make, tmp_path: Path
) -> None:
    recipient = recipients(scheme)
    image = push_encrypted(registry, tmp_path, [recipient])
    node = nodes(decoder, registry, recipient.key_files, recipient.decoder_env)
    node.pull_and_verify(image)


def test_cri_pull_multi_recipient_with_one_key_among_others(
    decoder: str, registry: Registry, nodes: Callable[..., Node], recipients: Make, tmp_path: Path
) -> None:
    """An image for an RSA and an EC recipient; the node holds the EC key and an unrelated RSA key."""
    rsa, ec, other = (recipients(s) for s in ("jwe-rsa2048", "jwe-p256", "jwe-rsa2048"))
    image = push_encrypted(registry, tmp_path, [rsa, ec])
    keys = {"0-unrelated.pem": other.key_files["jwe-rsa2048.pem"], **ec.key_files}
    node = nodes(decoder, registry, keys)
    node.pull_and_verify(image)


def test_cri_pull_with_kubernetes_secret_volume_keys_dir(
    decoder: str, registry: Registry, nodes: Callable[..., Node], recipients: Make, tmp_path: Path
) -> None:
    """The keys directory is a Kubernetes Secret volume (``..data`` symlink farm) with a public key and a
    README next to the private key; the Go decoder refuses all of it, ours uses the private key."""
    recipient = recipients("jwe-p384")
    image = push_encrypted(registry, tmp_path, [recipient])
    node = nodes(decoder, registry, {})
    files = {
        "node.pem": recipient.key_files["jwe-p384.pem"],
        "node.pub.pem": public_pem(new_key("p256")),
        "README": b"keys for encrypted images\n",
    }
    kubernetes_secret_volume(node.keys_dir, files)
    node.pull_and_verify(image)


def test_cri_pull_uncompressed_encrypted_layers(
    decoder: str, registry: Registry, nodes: Callable[..., Node], tmp_path: Path
) -> None:
    """``tar+encrypted`` layers (skopeo always gzips, so our library encrypts) go through the ``.tar`` ID."""
    key = new_key("rsa2048")
    layers = [{"etc/plain-tar": b"an uncompressed layer\n"}, {"usr/share/doc/x": os.urandom(50_000)}]
    make_layout(tmp_path / "plain", layers, compress=False)
    encrypt_layout(tmp_path / "plain", tmp_path / "enc", EncryptConfig({params.PUBKEYS: [public_pem(key)]}))
    ref = push_layout(registry, tmp_path / "enc")
    node = nodes(decoder, registry, {"key.pem": private_pem(key)})
    reports = node.pull_and_verify(Image(ref, tmp_path / "plain", layers))
    assert {r.media_type for r in reports} == {"application/vnd.oci.image.layer.v1.tar+encrypted"}
