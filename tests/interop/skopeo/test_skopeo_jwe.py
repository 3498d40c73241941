"""JWE interop with a real Go encryptor/decryptor: skopeo (ocicrypt) at test time."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support.decoder import run_decoder
from support.keygen import write_key_pair
from support.oci import encrypt_layout, layer_digests, make_layout, read_layers, skopeo

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig

LAYERS = [{"etc/hello.txt": b"hello from layer one\n"}, {"bin/tool": bytes(range(256)) * 300}]


@pytest.mark.parametrize("kind", ["rsa2048", "p256", "p384"])
def test_skopeo_encrypted_image_decrypts_with_our_decoder(kind: str, tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    private, public, _ = write_key_pair(tmp_path, "key", kind)
    skopeo(
        "copy", "-q", "--encryption-key", f"jwe:{public}", f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1"
    )
    originals = read_layers(tmp_path / "plain")
    encrypted = read_layers(tmp_path / "enc")
    assert len(encrypted) == len(originals)
    dc = DecryptConfig({params.PRIVKEYS: [private.read_bytes()], params.PRIVKEYS_PASSWORDS: [None]})
    for original, layer in zip(originals, encrypted, strict=True):
        assert layer.descriptor["mediaType"].endswith("+encrypted")
        payload = encode_payload(Payload(dc, layer.ocicrypt_descriptor()))
        result = run_decoder(layer.blob, payload)
        assert result.returncode == 0, result.stderr
        assert "sha256:" + hashlib.sha256(result.stdout).hexdigest() == original.descriptor["digest"]


def test_skopeo_multi_recipient_image_decrypts_with_either_key(tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS[:1])
    rsa_private, rsa_public, _ = write_key_pair(tmp_path, "rsa", "rsa2048")
    ec_private, ec_public, _ = write_key_pair(tmp_path, "ec", "p256")
    skopeo(
        "copy",
        "-q",
        "--encryption-key",
        f"jwe:{rsa_public}",
        "--encryption-key",
        f"jwe:{ec_public}",
        f"oci:{tmp_path / 'plain'}:v1",
        f"oci:{tmp_path / 'enc'}:v1",
    )
    original, layer = read_layers(tmp_path / "plain")[0], read_layers(tmp_path / "enc")[0]
    for private in (rsa_private, ec_private):
        dc = DecryptConfig({params.PRIVKEYS: [private.read_bytes()], params.PRIVKEYS_PASSWORDS: [None]})
        result = run_decoder(layer.blob, encode_payload(Payload(dc, layer.ocicrypt_descriptor())))
        assert result.returncode == 0, result.stderr
        assert "sha256:" + hashlib.sha256(result.stdout).hexdigest() == original.descriptor["digest"]


@pytest.mark.parametrize("kinds", [["rsa2048"], ["p256"], ["p384"], ["rsa2048", "p256"]])
def test_our_jwe_encryption_decrypts_with_skopeo(kinds: list[str], tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    pairs = [write_key_pair(tmp_path, f"key{i}", kind) for i, kind in enumerate(kinds)]
    ec = EncryptConfig({params.PUBKEYS: [public.read_bytes() for _, public, _ in pairs]})
    encrypt_layout(tmp_path / "plain", tmp_path / "enc", ec)
    for private, _, _ in pairs:
        target = tmp_path / f"dec-{private.stem}"
        skopeo("copy", "-q", "--decryption-key", str(private), f"oci:{tmp_path / 'enc'}:v1", f"oci:{target}:v1")
        assert layer_digests(target) == layer_digests(tmp_path / "plain")
