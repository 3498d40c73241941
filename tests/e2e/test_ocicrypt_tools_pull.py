"""Images made by ``ocicrypt encrypt`` and ``ocicrypt recipients add``, pulled through containerd's CRI with
our decoder and with the Go decoder (ctd-decoder-imgcrypt-1.1.7), node keys in ``--decryption-keys-path``.
About 10 s per pull (one private containerd 1.6.20 each).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.binaries import GO_DECODER_1, require_binary
from support.keygen import write_key_pair
from support.oci import make_layout, ocicrypt

from .daemons import Registry
from .node import Image, Node, push_layout

LAYERS = [{"etc/made-by": b"ocicrypt encrypt\n"}, {"usr/lib/blob": bytes(range(256)) * 400}]


@pytest.fixture(params=["ours", "go"])
def any_decoder(request: pytest.FixtureRequest) -> str:
    if request.param == "go":
        return str(require_binary(GO_DECODER_1))
    path: str = request.getfixturevalue("pip_decoder")
    return path


def test_cri_pull_of_an_image_with_an_added_recipient_using_only_the_new_key(
    any_decoder: str, registry: Registry, nodes: Callable[..., Node], tmp_path: Path
) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    old, old_pub, _ = write_key_pair(tmp_path, "old", "rsa2048")
    new, new_pub, _ = write_key_pair(tmp_path, "new", "p256")
    ocicrypt("encrypt", "--recipient", f"jwe:{old_pub}", f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1")
    ocicrypt(
        "recipients", "add", "--key", str(old), "--recipient", f"jwe:{new_pub}",
        f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'more'}:v1",
    )  # fmt: skip
    ref = push_layout(registry, tmp_path / "more")
    node = nodes(any_decoder, registry, {"node.pem": new.read_bytes()})
    reports = node.pull_and_verify(Image(ref, tmp_path / "plain", LAYERS))
    assert {r.media_type for r in reports} == {"application/vnd.oci.image.layer.v1.tar+gzip+encrypted"}
