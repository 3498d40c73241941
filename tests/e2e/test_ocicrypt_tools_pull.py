"""Images made by ``ocicrypt encrypt`` and ``ocicrypt recipients add``, pulled through containerd's CRI with
our decoder and with the project's Go reference decoder (Debian's ocicrypt 1.0.3), node keys in
``--decryption-keys-path``. ocicrypt 1.0.3 knows no PKCS#11 and no key providers: for those schemes the
test asserts the reference's refusal instead.

The JWE case runs on both containerd lines; the other schemes on 1.6.20 only (what a scheme changes is
the decoder's work, not containerd's, and test_cri_pull.py runs every scheme on both lines). A pull
with its private containerd costs 2-3 s.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from support.e2e.client import go_decoder_refused, rpc_error
from support.e2e.daemons import Registry
from support.e2e.fixtures import ON_CONTAINERD_1
from support.e2e.node import Image, Node, push_layout
from support.e2e.schemes import Recipient, recipient_values
from support.keygen import write_key_pair
from support.oci import make_layout, ocicrypt
from support.references import fastest_go_reference

LAYERS = [{"etc/made-by": b"ocicrypt encrypt\n"}, {"usr/lib/blob": bytes(range(256)) * 400}]


@pytest.fixture(params=["ours", "go"])
def any_decoder(request: pytest.FixtureRequest) -> str:
    if request.param == "go":
        return str(fastest_go_reference().path)
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


# skopeo 1.9.3 writes only jwe, pkcs7 and pgp; these images come from our tools alone.
TOOL_SCHEMES = ["pkcs7-rsa", "pgp-rsa", "pkcs11-softhsm", "provider-cmd"]
# What the Go reference (ocicrypt 1.0.3: no PKCS#11, no key providers) answers for the schemes it cannot unwrap:
# it does not know a PKCS#11 YAML key file in the keys directory, and finds no key for a provider's annotation.
GO_REFERENCE_REFUSES = {
    "pkcs11-softhsm": "unable to get decryption keys in provided key path: Unknown decryption key type",
    "provider-cmd": "call to DecryptLayer failed: missing private key needed for decryption",
}


def _recipient_args(recipient: Recipient, directory: Path) -> list[str]:
    return [arg for value in recipient_values(recipient, directory) for arg in ("--recipient", value)]


@ON_CONTAINERD_1
@pytest.mark.parametrize("scheme", TOOL_SCHEMES)
def test_cri_pull_of_an_image_encrypted_by_ocicrypt_encrypt(
    scheme: str,
    any_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    recipient = recipients(scheme)
    make_layout(tmp_path / "plain", LAYERS)
    ocicrypt(
        "encrypt", *_recipient_args(recipient, tmp_path / "keys"),
        f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1", env={**os.environ, **recipient.encrypt_env},
    )  # fmt: skip
    ref = push_layout(registry, tmp_path / "enc")
    node = nodes(any_decoder, registry, recipient.key_files, recipient.decoder_env)
    if scheme in GO_REFERENCE_REFUSES and any_decoder == str(fastest_go_reference().path):
        refused = rpc_error(lambda: node.client().pull_image(ref))
        assert go_decoder_refused(refused, GO_REFERENCE_REFUSES[scheme]), refused
        return
    node.pull_and_verify(Image(ref, tmp_path / "plain", LAYERS))


@ON_CONTAINERD_1
@pytest.mark.parametrize("scheme", TOOL_SCHEMES)
def test_cri_pull_after_recipients_add_with_only_the_added_recipients_key(
    scheme: str,
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    """JWE-encrypted by ``ocicrypt encrypt``, the scheme added by ``ocicrypt recipients add``; the node
    holds only the added recipient's key (the Go decoder's side of that is the test above)."""
    recipient = recipients(scheme)
    make_layout(tmp_path / "plain", LAYERS)
    old, old_pub, _ = write_key_pair(tmp_path, "old", "rsa2048")
    ocicrypt("encrypt", "--recipient", f"jwe:{old_pub}", f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1")
    ocicrypt(
        "recipients", "add", "--key", str(old), *_recipient_args(recipient, tmp_path / "keys"),
        f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'more'}:v1", env={**os.environ, **recipient.encrypt_env},
    )  # fmt: skip
    ref = push_layout(registry, tmp_path / "more")
    node = nodes(pip_decoder, registry, recipient.key_files, recipient.decoder_env)
    node.pull_and_verify(Image(ref, tmp_path / "plain", LAYERS))
