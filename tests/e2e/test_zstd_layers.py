"""zstd-compressed encrypted layers through containerd's CRI with the shipped configuration snippet.

containerd hands the decryption payload only to the ``...decoder.v1.tar`` and ``...decoder.v1.tar.gzip``
IDs, so the shipped ``.tar`` entry accepts zstd layers as well as uncompressed ones and returns
``tar+zstd``: both kinds of layer must unpack to their diff IDs through that one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.e2e.client import ContainerdClient, rpc_error
from support.e2e.daemons import Containerd, Registry, remove_tree
from support.e2e.node import DEFAULT_LAYERS, ZSTD, Image, push_encrypted, push_layout, verify_pulled
from support.e2e.schemes import Recipient
from support.keygen import new_key, private_pem, public_pem
from support.oci import encrypt_layout, make_layout
from support.snippets import snippet_for_node
from support.tempdirs import short_tempdir

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import EncryptConfig

LAYER = "application/vnd.oci.image.layer.v1.tar"


class ShippedNode:
    """A private containerd configured by nothing but the shipped containerd 1.x snippet."""

    def __init__(self, decoder: str, registry: Registry, snippet: str = "containerd-v2") -> None:
        self.base = short_tempdir("ctd-zstd-")
        self.ocicrypt = self.base / "ocicrypt"
        self.keys = self.ocicrypt / "keys"
        self.keys.mkdir(parents=True, mode=0o700)
        extra = "\n" + snippet_for_node(snippet, decoder, self.ocicrypt) if snippet else ""
        self.containerd = Containerd(self.base / "cd", [], [registry.host], extra_toml=extra, image_decryption=False)

    def add_keys(self, key_files: dict[str, bytes]) -> None:
        for name, content in key_files.items():
            (self.keys / name).write_bytes(content)
            (self.keys / name).chmod(0o600)

    def pull(self, image: Image) -> list[str]:
        """CRI-pull ``image`` and check every layer unpacked to its diff ID; return the layer media types."""
        with ContainerdClient(self.containerd.socket, "k8s.io") as client:
            client.pull_image(image.ref)
            return [report.media_type for report in verify_pulled(client, image)]


@pytest.fixture
def shipped_node(decoder: str, registry: Registry) -> Iterator[Callable[..., ShippedNode]]:
    made: list[ShippedNode] = []

    def make(snippet: str = "containerd-v2") -> ShippedNode:
        node = ShippedNode(decoder, registry, snippet)
        made.append(node)
        try:
            node.containerd.start()
        except RuntimeError as err:
            pytest.fail(str(err))
        return node

    yield make
    for node in made:
        print(node.containerd.log_tail())
        node.containerd.stop()
        remove_tree(node.base)


def test_cri_pull_decrypts_zstd_layers_with_the_shipped_snippet(
    shipped_node: Callable[..., ShippedNode],
    registry: Registry,
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    recipient = recipients("jwe-p256")
    image = push_encrypted(registry, tmp_path, [recipient], DEFAULT_LAYERS, ZSTD)
    node = shipped_node()
    node.add_keys(recipient.key_files)
    assert node.pull(image) == [f"{LAYER}+zstd+encrypted"] * len(DEFAULT_LAYERS)


def test_cri_pull_decrypts_uncompressed_layers_through_the_zstd_capable_entry(
    shipped_node: Callable[..., ShippedNode], registry: Registry, tmp_path: Path
) -> None:
    """The ``.tar`` entry returns ``tar+zstd`` for a plain tar too: containerd must pass it through."""
    key = new_key("rsa2048")
    layers = [{"etc/plain-tar": b"an uncompressed layer\n"}, {"usr/share/doc/x": bytes(range(256)) * 200}]
    make_layout(tmp_path / "plain", layers, compress=False)
    encrypt_layout(tmp_path / "plain", tmp_path / "enc", EncryptConfig({params.PUBKEYS: [public_pem(key)]}))
    image = Image(push_layout(registry, tmp_path / "enc"), tmp_path / "plain", layers)
    node = shipped_node()
    node.add_keys({"key.pem": private_pem(key)})
    assert node.pull(image) == [f"{LAYER}+encrypted"] * len(layers)


def test_cri_pull_decrypts_gzip_layers_with_the_shipped_snippet(
    shipped_node: Callable[..., ShippedNode],
    registry: Registry,
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    recipient = recipients("jwe-rsa2048")
    image = push_encrypted(registry, tmp_path, [recipient])
    node = shipped_node()
    node.add_keys(recipient.key_files)
    assert node.pull(image) == [f"{LAYER}+gzip+encrypted"] * len(DEFAULT_LAYERS)


def test_zstd_layer_without_a_zstd_processor_fails_before_any_decoder_runs(
    shipped_node: Callable[..., ShippedNode],
    registry: Registry,
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    """containerd's built-in entries (no ``[stream_processors]`` table) know no zstd: the still encrypted
    blob goes to the tar reader. The troubleshooting table lists the texts this prints."""
    recipient = recipients("jwe-p256")
    image = push_encrypted(registry, tmp_path, [recipient], DEFAULT_LAYERS[:1], ZSTD)
    node = shipped_node(snippet="")
    node.add_keys(recipient.key_files)
    text = rpc_error(lambda: node.pull(image))
    assert "failed to extract layer" in text, text
    assert "unexpected EOF" in text or "archive/tar: invalid tar header" in text, text
