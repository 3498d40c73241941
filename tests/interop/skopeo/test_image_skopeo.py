"""``ocicrypt encrypt|decrypt`` against skopeo (Go ocicrypt), both ways, for jwe, pkcs7 and pgp."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.gpgkeys import GpgHome
from support.keygen import new_key, private_pem, write_key_pair
from support.oci import image_layers, layer_digests, make_index_layout, make_layout, ocicrypt, skopeo
from support.pki import certificate, certificate_pem, write_pkcs7_pair

LAYERS = [{"etc/hello.txt": b"hello from layer one\n"}, {"bin/tool": bytes(range(256)) * 3000}]
GPG_USER = "tools@example.com"


@pytest.fixture(scope="module")
def gpg_home() -> Iterator[GpgHome]:
    home = GpgHome()
    try:
        home.generate("Tools Test", GPG_USER)
        yield home
    finally:
        home.close()


def _scheme(scheme: str, tmp_path: Path, gpg_home: GpgHome) -> tuple[str, list[str], dict[str, str]]:
    """Return (recipient, decryption key arguments, environment) for one scheme."""
    env = dict(os.environ)
    if scheme == "jwe":
        private, public, _ = write_key_pair(tmp_path, "jwe", "rsa2048")
        return f"jwe:{public}", [str(private)], env
    if scheme == "pkcs7":
        key, cert = write_pkcs7_pair(tmp_path, "p7")
        return f"pkcs7:{cert}", [str(key), str(cert)], env
    ring = tmp_path / "secret.gpg"
    ring.write_bytes(gpg_home.export_secret(GPG_USER))
    env["GNUPGHOME"] = str(gpg_home.path)
    return f"pgp:{GPG_USER}", [str(ring)], env


@pytest.mark.parametrize("scheme", ["jwe", "pkcs7", "pgp"])
def test_our_encrypted_image_decrypts_with_skopeo(scheme: str, tmp_path: Path, gpg_home: GpgHome) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    recipient, keys, env = _scheme(scheme, tmp_path, gpg_home)
    ocicrypt("encrypt", "--recipient", recipient, f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1", env=env)
    layers = image_layers(tmp_path / "enc")["-"]
    assert [layer["mediaType"] for layer in layers] == ["application/vnd.oci.image.layer.v1.tar+gzip+encrypted"] * 2
    assert all(f"org.opencontainers.image.enc.keys.{scheme}" in layer["annotations"] for layer in layers)
    decryption = [arg for key in keys for arg in ("--decryption-key", key)]
    skopeo("copy", "-q", *decryption, f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'dec'}:v1", env=env)
    assert layer_digests(tmp_path / "dec") == layer_digests(tmp_path / "plain")


@pytest.mark.parametrize("scheme", ["jwe", "pkcs7", "pgp"])
def test_skopeo_encrypted_image_decrypts_with_ours_as_skopeo_would(
    scheme: str, tmp_path: Path, gpg_home: GpgHome
) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    recipient, keys, env = _scheme(scheme, tmp_path, gpg_home)
    skopeo(
        "copy",
        "-q",
        "--encryption-key",
        recipient,
        f"oci:{tmp_path / 'plain'}:v1",
        f"oci:{tmp_path / 'enc'}:v1",
        env=env,
    )
    key_args = [arg for key in keys for arg in ("--key", key)]
    ocicrypt("decrypt", *key_args, f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'ours'}:v1")
    decryption = [arg for key in keys for arg in ("--decryption-key", key)]
    skopeo("copy", "-q", *decryption, f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'theirs'}:v1", env=env)
    assert layer_digests(tmp_path / "ours") == layer_digests(tmp_path / "plain")
    # Same manifest bytes, hence the same digests in index.json, as skopeo writes.
    assert (tmp_path / "ours" / "index.json").read_bytes() == (tmp_path / "theirs" / "index.json").read_bytes()


def test_skopeo_multi_recipient_index_decrypts_per_platform_with_either_key(tmp_path: Path, gpg_home: GpgHome) -> None:
    make_index_layout(tmp_path / "plain", ["linux/amd64", "linux/arm64"])
    (rsa, rsa_pub, _), (ec, ec_pub, _) = (
        write_key_pair(tmp_path, "rsa", "rsa2048"),
        write_key_pair(tmp_path, "ec", "p256"),
    )
    skopeo(
        "copy", "-q", "--all",
        "--encryption-key", f"jwe:{rsa_pub}", "--encryption-key", f"jwe:{ec_pub}",
        f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1",
    )  # fmt: skip
    plain = image_layers(tmp_path / "plain")
    for number, key in enumerate((rsa, ec)):
        target = tmp_path / f"dec{number}"
        ocicrypt("decrypt", "--key", str(key), f"oci:{tmp_path / 'enc'}:v1", f"oci:{target}:v1")
        assert {p: [layer["digest"] for layer in layers] for p, layers in image_layers(target).items()} == {
            p: [layer["digest"] for layer in layers] for p, layers in plain.items()
        }


def test_platform_and_layer_selection_as_ctr_enc(tmp_path: Path) -> None:
    make_index_layout(tmp_path / "plain", ["linux/amd64", "linux/arm64"])
    _, public, _ = write_key_pair(tmp_path, "k", "p256")
    ocicrypt(
        "encrypt", "--recipient", f"jwe:{public}", "--platform", "linux/arm64", "--layer", "-1",
        f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1",
    )  # fmt: skip
    layers = image_layers(tmp_path / "enc")
    assert layers["linux/amd64"] == image_layers(tmp_path / "plain")["linux/amd64"]
    assert layers["linux/arm64"][0]["mediaType"].endswith("+encrypted")
    index = json.loads((tmp_path / "enc" / "index.json").read_text())
    assert index["manifests"][0]["mediaType"] == "application/vnd.oci.image.index.v1+json"


def test_oci_archive_round_trip_through_skopeo(tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    private, public, _ = write_key_pair(tmp_path, "k", "rsa2048")
    skopeo("copy", "-q", f"oci:{tmp_path / 'plain'}:v1", f"oci-archive:{tmp_path / 'plain.tar'}:v1")
    ocicrypt(
        "encrypt",
        "--recipient",
        f"jwe:{public}",
        f"oci-archive:{tmp_path / 'plain.tar'}",
        f"oci-archive:{tmp_path / 'enc.tar'}:v1",
    )
    skopeo(
        "copy",
        "-q",
        "--decryption-key",
        str(private),
        f"oci-archive:{tmp_path / 'enc.tar'}:v1",
        f"oci:{tmp_path / 'dec'}:v1",
    )
    assert layer_digests(tmp_path / "dec") == layer_digests(tmp_path / "plain")


def _encryption_subkey_id(home: GpgHome, who: str) -> str:
    for line in home.run("--with-colons", "--list-keys", who).decode().splitlines():
        if line.startswith("sub:"):
            return line.split(":")[4].lower()
    raise AssertionError(f"no subkey for {who}")


def test_inspect_names_the_recipients_of_a_skopeo_image_and_what_this_node_can_unwrap(
    tmp_path: Path, gpg_home: GpgHome
) -> None:
    make_index_layout(tmp_path / "plain", ["linux/amd64", "linux/arm64"])
    _, rsa_pub, _ = write_key_pair(tmp_path, "rsa", "rsa2048")
    _, ec_pub, _ = write_key_pair(tmp_path, "ec", "p256")
    key = new_key("rsa2048")
    cert = tmp_path / "p7.crt"
    cert.write_bytes(certificate_pem(certificate(key, "node-pool-7", serial=0x1234ABCD)))
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "p7.key").write_bytes(private_pem(key))
    (keys_dir / "p7.crt").write_bytes(cert.read_bytes())
    skopeo(
        "copy", "-q", "--all",
        "--encryption-key", f"jwe:{rsa_pub}", "--encryption-key", f"jwe:{ec_pub}",
        "--encryption-key", f"pkcs7:{cert}", "--encryption-key", f"pgp:{GPG_USER}",
        f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1",
        env={**os.environ, "GNUPGHOME": str(gpg_home.path)},
    )  # fmt: skip
    report = json.loads(ocicrypt("inspect", "--json", f"oci:{tmp_path / 'enc'}:v1").stdout)
    assert [p["platform"] for p in report["platforms"]] == ["linux/amd64", "linux/arm64"]
    layer = report["platforms"][1]["layers"][0]
    assert layer["encrypted"] and layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"
    assert sorted(layer["schemes"]["jwe"]) == ["ECDH-ES+A256KW(P-256)", "RSA-OAEP"]
    assert layer["schemes"]["pkcs7"] == ["issuer CN=node-pool-7, serial 0x1234abcd"]
    assert layer["schemes"]["pgp"] == [f"key ID 0x{_encryption_subkey_id(gpg_home, GPG_USER).lstrip('0')}"]
    assert "unwrap" not in layer
    with_keys = json.loads(
        ocicrypt("inspect", "--json", "--keys-dir", str(keys_dir), f"oci:{tmp_path / 'enc'}:v1").stdout
    )
    assert with_keys["platforms"][0]["layers"][0]["unwrap"] == {"possible": True, "scheme": "pkcs7"}
    text = ocicrypt("inspect", "--keys-dir", str(tmp_path / "plain"), f"oci:{tmp_path / 'enc'}:v1").stdout
    assert "linux/arm64  manifest sha256:" in text
    assert "this node cannot unwrap it: missing private key needed for decryption" in text


def test_decrypt_with_the_nodes_keys_dir_opens_a_skopeo_pkcs7_image(tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    _, cert = write_pkcs7_pair(keys_dir, "node")
    (keys_dir / "README").write_text("not a key: the node keeps notes here\n")
    skopeo(
        "copy", "-q", "--encryption-key", f"pkcs7:{cert}", f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1"
    )
    ocicrypt("decrypt", "--keys-dir", str(keys_dir), f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'dec'}:v1")
    assert layer_digests(tmp_path / "dec") == layer_digests(tmp_path / "plain")
