"""``ocicrypt doctor --image``: skopeo- (and, where skopeo cannot, library-) encrypted images, checked
against a node's keys directory and processor environment: the right key, a wrong key, keys for only
some layers, a manifest on stdin, an oci-archive, and a media type no processor decrypts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support.doctor import DEBIAN_CONTAINERD, Doctor, run_doctor, write_node_config
from support.e2e.node import encrypt_image
from support.e2e.schemes import SCHEMES, Recipient
from support.oci import skopeo

from ctd_decoder.ocicrypt.keywrap import ANNOTATION_PREFIX

TWO_LAYERS: list[dict[str, bytes]] = [{"etc/one": b"first layer\n"}, {"etc/two": b"second layer\n" * 100}]


def node(tmp_path: Path, key_files: dict[str, bytes], env: dict[str, str] | None = None) -> Path:
    """A keys dir holding ``key_files`` and a containerd config pointing the decoder at it."""
    keys = tmp_path / f"keys-{len(list(tmp_path.glob('keys-*')))}"
    keys.mkdir(mode=0o700)
    for name, data in key_files.items():
        (keys / name).write_bytes(data)
        (keys / name).chmod(0o600)
    return write_node_config(tmp_path / f"{keys.name}.toml", keys, env)


def doctor_image(config: Path, image: str, stdin: bytes | None = None) -> Doctor:
    return run_doctor("--containerd-config", config, "--containerd", DEBIAN_CONTAINERD, "--image", image, stdin=stdin)


def layer_findings(result: Doctor) -> list[dict[str, str]]:
    return result.of("image.layer")


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_right_key_unwraps_every_layer(scheme: str, tmp_path: Path, recipients: Callable[[str], Recipient]) -> None:
    recipient = recipients(scheme)
    _, encrypted = encrypt_image(tmp_path, [recipient], TWO_LAYERS)
    result = doctor_image(node(tmp_path, recipient.key_files, recipient.decoder_env), f"oci:{encrypted}:v1")
    layers = layer_findings(result)
    assert [f["status"] for f in layers] == ["ok", "ok"], result.findings
    assert all(f"unwrapped with {recipient.scheme}" in f["message"] for f in layers)
    assert "2 of 2 encrypted layers unwrap" in result.one("image.summary", "ok")["message"]
    assert result.returncode == 0, result.errors()


@pytest.mark.parametrize("scheme", ["jwe-rsa2048", "jwe-p256", "pkcs7-rsa", "pgp-rsa", "pkcs11-softhsm"])
def test_wrong_key_is_an_error_per_layer(scheme: str, tmp_path: Path, recipients: Callable[[str], Recipient]) -> None:
    right, wrong = recipients(scheme), recipients(scheme)
    _, encrypted = encrypt_image(tmp_path, [right], TWO_LAYERS)
    result = doctor_image(node(tmp_path, wrong.key_files, wrong.decoder_env), f"oci:{encrypted}:v1")
    layers = layer_findings(result)
    assert [f["status"] for f in layers] == ["error", "error"], result.findings
    for finding in layers:
        assert "none of the private keys could be used" in finding["message"] or "No suitable" in finding["message"]
        assert "private key of one of the image's recipients" in finding["fix"]
    assert "0 of 2" in result.one("image.summary", "error")["message"]
    assert result.returncode == 1


def _mixed_layout(target: Path, first: Path, second: Path) -> None:
    """An image whose first layer comes from layout ``first`` and the others from ``second``."""
    shutil.copytree(second, target)
    for blob in (first / "blobs" / "sha256").iterdir():
        shutil.copy(blob, target / "blobs" / "sha256" / blob.name)
    index = json.loads((target / "index.json").read_text())
    entry = index["manifests"][0]

    def manifest_of(layout: Path) -> dict[str, object]:
        digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"].split(":")[1]
        document: dict[str, object] = json.loads((layout / "blobs" / "sha256" / digest).read_bytes())
        return document

    mixed = manifest_of(second)
    layers = list(mixed["layers"])  # type: ignore[call-overload]
    layers[0] = manifest_of(first)["layers"][0]  # type: ignore[index]
    mixed["layers"] = layers
    data = json.dumps(mixed).encode()
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    (target / "blobs" / "sha256" / digest).write_bytes(data)
    entry.update({"digest": f"sha256:{digest}", "size": len(data)})
    (target / "index.json").write_text(json.dumps(index))


def test_keys_for_only_some_layers(tmp_path: Path, recipients: Callable[[str], Recipient]) -> None:
    alice, bob = recipients("jwe-rsa2048"), recipients("jwe-p256")
    _, for_alice = encrypt_image(tmp_path, [alice], TWO_LAYERS)
    _, for_bob = encrypt_image(tmp_path, [bob], TWO_LAYERS)
    mixed = tmp_path / "mixed"
    _mixed_layout(mixed, for_alice, for_bob)
    skopeo("inspect", "--raw", f"oci:{mixed}:v1")  # skopeo reads the assembled layout
    result = doctor_image(node(tmp_path, alice.key_files), f"oci:{mixed}:v1")
    assert [f["status"] for f in layer_findings(result)] == ["ok", "error"], result.findings
    assert "1 of 2 encrypted layers unwrap" in result.one("image.summary", "error")["message"]
    assert result.returncode == 1


def test_manifest_on_stdin_from_skopeo_inspect_raw(tmp_path: Path, recipients: Callable[[str], Recipient]) -> None:
    recipient = recipients("jwe-p384")
    _, encrypted = encrypt_image(tmp_path, [recipient], TWO_LAYERS)
    raw = skopeo("inspect", "--raw", f"oci:{encrypted}:v1").stdout.encode()
    result = doctor_image(node(tmp_path, recipient.key_files), "-", stdin=raw)
    assert [f["status"] for f in layer_findings(result)] == ["ok", "ok"], result.findings
    assert "the manifest on stdin" in result.one("image.summary", "ok")["message"]
    index = (encrypted / "index.json").read_bytes()
    refused = doctor_image(node(tmp_path, recipient.key_files), "-", stdin=index)
    assert "image index" in refused.one("image", "error")["message"]


def test_oci_archive(tmp_path: Path, recipients: Callable[[str], Recipient]) -> None:
    recipient = recipients("pkcs7-rsa")
    _, encrypted = encrypt_image(tmp_path, [recipient], TWO_LAYERS)
    archive = tmp_path / "image.tar"
    skopeo("copy", "-q", f"oci:{encrypted}:v1", f"oci-archive:{archive}:v1")
    result = doctor_image(node(tmp_path, recipient.key_files), f"oci-archive:{archive}:v1")
    assert [f["status"] for f in layer_findings(result)] == ["ok", "ok"], result.findings


def test_layer_media_type_no_processor_decrypts(tmp_path: Path, recipients: Callable[[str], Recipient]) -> None:
    """zstd layers (skopeo --dest-compress-format zstd) against containerd's built-in entries."""
    recipient = recipients("jwe-rsa2048")
    _, encrypted = encrypt_image(tmp_path, [recipient], TWO_LAYERS, ("--dest-compress-format", "zstd"))
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    for name, data in recipient.key_files.items():
        (keys / name).write_bytes(data)
        (keys / name).chmod(0o600)
    config = tmp_path / "builtin.toml"
    config.write_text("version = 2\n")
    result = run_doctor(
        "--containerd-config",
        config,
        "--containerd",
        DEBIAN_CONTAINERD,
        "--keys-dir",
        keys,
        "--image",
        f"oci:{encrypted}:v1",
    )
    layers = layer_findings(result)
    assert layers and all(f["status"] == "error" for f in layers), result.findings
    assert (
        "tar+zstd+encrypted" in layers[0]["message"] and "containerd.processor.tar+zstd+encrypted" in layers[0]["fix"]
    )


def test_image_without_encrypted_layers_and_unreadable_image(tmp_path: Path) -> None:
    from support.oci import make_layout

    make_layout(tmp_path / "plain", TWO_LAYERS)
    config = write_node_config(tmp_path / "c.toml", tmp_path / "keys")
    result = doctor_image(config, f"oci:{tmp_path / 'plain'}:v1")
    assert "no encrypted layers" in result.one("image.summary", "ok")["message"]
    missing = doctor_image(config, f"oci:{tmp_path / 'nowhere'}:v1")
    assert missing.one("image.read", "error") and missing.returncode == 1


def test_annotations_name_the_schemes(tmp_path: Path, recipients: Callable[[str], Recipient]) -> None:
    """A layer wrapped for two schemes is reported with both, and unwraps with the one the node has."""
    jwe, pkcs7 = recipients("jwe-p256"), recipients("pkcs7-rsa")
    _, encrypted = encrypt_image(tmp_path, [jwe, pkcs7], TWO_LAYERS)
    manifest = json.loads(skopeo("inspect", "--raw", f"oci:{encrypted}:v1").stdout)
    assert {ANNOTATION_PREFIX + "jwe", ANNOTATION_PREFIX + "pkcs7"} <= set(manifest["layers"][0]["annotations"])
    result = doctor_image(node(tmp_path, pkcs7.key_files), f"oci:{encrypted}:v1")
    for finding in layer_findings(result):
        assert "wrapped for jwe, pkcs7" in finding["message"] and "unwrapped with pkcs7" in finding["message"]
