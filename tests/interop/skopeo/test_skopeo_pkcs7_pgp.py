"""PKCS#7 and OpenPGP interop with a real Go encryptor/decryptor: skopeo (ocicrypt) at test time."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.decoder import run_decoder
from support.gpgkeys import GpgHome
from support.oci import Layer, encrypt_layout, layer_digests, make_layout, read_layers, skopeo
from support.pki import write_pkcs7_pair

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig

LAYERS = [{"etc/hello.txt": b"hello from layer one\n"}, {"bin/tool": bytes(range(256)) * 300}]
PKCS7_ANNOTATION = "org.opencontainers.image.enc.keys.pkcs7"
PGP_ANNOTATION = "org.opencontainers.image.enc.keys.pgp"


@pytest.fixture(scope="module")
def gpg_home() -> Iterator[GpgHome]:
    home = GpgHome()
    try:
        home.generate("Skopeo Test", "skopeo@example.com")
        yield home
    finally:
        home.close()


def _assert_decrypts(originals: list[Layer], encrypted: list[Layer], dc: DecryptConfig, args: list[str]) -> None:
    assert len(encrypted) == len(originals)
    for original, layer in zip(originals, encrypted, strict=True):
        result = run_decoder(layer.blob, encode_payload(Payload(dc, layer.ocicrypt_descriptor())), args)
        assert result.returncode == 0, result.stderr
        assert "sha256:" + hashlib.sha256(result.stdout).hexdigest() == original.descriptor["digest"]


def test_skopeo_pkcs7_image_decrypts_with_our_decoder_from_the_payload(tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    key, cert = write_pkcs7_pair(tmp_path, "p7")
    skopeo(
        "copy", "-q", "--encryption-key", f"pkcs7:{cert}", f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1"
    )
    encrypted = read_layers(tmp_path / "enc")
    assert all(set(layer.descriptor["annotations"]) >= {PKCS7_ANNOTATION} for layer in encrypted)
    dc = DecryptConfig(
        {params.PRIVKEYS: [key.read_bytes()], params.PRIVKEYS_PASSWORDS: [None], params.X509S: [cert.read_bytes()]}
    )
    _assert_decrypts(read_layers(tmp_path / "plain"), encrypted, dc, [])


def test_skopeo_pkcs7_image_decrypts_with_our_decoder_from_the_keys_dir(tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS[:1])
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    _, cert = write_pkcs7_pair(keys_dir, "node")
    skopeo(
        "copy", "-q", "--encryption-key", f"pkcs7:{cert}", f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1"
    )
    args = ["--decryption-keys-path", str(keys_dir)]
    _assert_decrypts(read_layers(tmp_path / "plain"), read_layers(tmp_path / "enc"), DecryptConfig(), args)


def test_skopeo_pgp_image_decrypts_with_our_decoder(gpg_home: GpgHome, tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    env = {**os.environ, "GNUPGHOME": str(gpg_home.path)}
    skopeo(
        "copy",
        "-q",
        "--encryption-key",
        "pgp:skopeo@example.com",
        f"oci:{tmp_path / 'plain'}:v1",
        f"oci:{tmp_path / 'enc'}:v1",
        env=env,
    )
    encrypted = read_layers(tmp_path / "enc")
    assert all(PGP_ANNOTATION in layer.descriptor["annotations"] for layer in encrypted)
    ring = gpg_home.export_secret("skopeo@example.com")
    dc = DecryptConfig({params.GPG_PRIVATEKEYS: [ring], params.GPG_PRIVATEKEYS_PASSWORDS: [None]})
    _assert_decrypts(read_layers(tmp_path / "plain"), encrypted, dc, [])


def test_skopeo_pgp_and_pkcs7_image_decrypts_with_either_scheme(gpg_home: GpgHome, tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS[:1])
    key, cert = write_pkcs7_pair(tmp_path, "both")
    skopeo(
        "copy",
        "-q",
        "--encryption-key",
        "pgp:skopeo@example.com",
        "--encryption-key",
        f"pkcs7:{cert}",
        f"oci:{tmp_path / 'plain'}:v1",
        f"oci:{tmp_path / 'enc'}:v1",
        env={**os.environ, "GNUPGHOME": str(gpg_home.path)},
    )
    originals, encrypted = read_layers(tmp_path / "plain"), read_layers(tmp_path / "enc")
    pkcs7_dc = DecryptConfig(
        {params.PRIVKEYS: [key.read_bytes()], params.PRIVKEYS_PASSWORDS: [None], params.X509S: [cert.read_bytes()]}
    )
    pgp_dc = DecryptConfig({params.GPG_PRIVATEKEYS: [gpg_home.export_secret("skopeo@example.com")]})
    for dc in (pkcs7_dc, pgp_dc):
        _assert_decrypts(originals, encrypted, dc, [])


def test_our_pkcs7_encryption_decrypts_with_skopeo(tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    pairs = [write_pkcs7_pair(tmp_path, f"r{i}") for i in range(2)]
    ec = EncryptConfig({params.X509S: [cert.read_bytes() for _, cert in pairs]})
    encrypt_layout(tmp_path / "plain", tmp_path / "enc", ec)
    expected = layer_digests(tmp_path / "plain")
    for key, cert in pairs:
        target = tmp_path / f"dec-{key.stem}"
        skopeo(
            "copy",
            "-q",
            "--decryption-key",
            str(key),
            "--decryption-key",
            str(cert),
            f"oci:{tmp_path / 'enc'}:v1",
            f"oci:{target}:v1",
        )
        assert layer_digests(target) == expected


def test_our_pgp_encryption_decrypts_with_skopeo(gpg_home: GpgHome, tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    ec = EncryptConfig(
        {params.GPG_RECIPIENTS: [b"skopeo@example.com"], params.GPG_PUBKEYRINGFILE: [gpg_home.export_public()]}
    )
    encrypt_layout(tmp_path / "plain", tmp_path / "enc", ec)
    ring = tmp_path / "secret.gpg"
    ring.write_bytes(gpg_home.export_secret("skopeo@example.com"))
    target = tmp_path / "dec"
    skopeo("copy", "-q", "--decryption-key", str(ring), f"oci:{tmp_path / 'enc'}:v1", f"oci:{target}:v1")
    assert layer_digests(target) == layer_digests(tmp_path / "plain")
