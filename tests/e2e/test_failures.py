"""Failures surface through containerd with our diagnostics: the decoder's stderr becomes the gRPC error."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import any_pb2
from support.e2e.client import rpc_error
from support.e2e.daemons import PROCESSOR_TAR, PROCESSOR_TAR_GZIP, PROCESSOR_TAR_ZSTD, Registry
from support.e2e.node import DEFAULT_LAYERS, Node, apply_with_payload, encrypt_image, push_encrypted
from support.e2e.schemes import SCHEMES, Recipient
from support.oci import Layer, read_layers, sha256_digest, skopeo

from ctd_decoder.decoder.payload import PAYLOAD_TYPE_URL
from ctd_decoder.decoder.recovery.switch import RECOVERY_ENV
from ctd_decoder.ocicrypt.config import DecryptConfig

Make = Callable[[str], Recipient]


def test_cri_pull_with_wrong_key_reports_why(
    decoder: str, registry: Registry, nodes: Callable[..., Node], recipients: Make, tmp_path: Path
) -> None:
    recipient, wrong = recipients("jwe-rsa2048"), recipients("jwe-p256")
    image = push_encrypted(registry, tmp_path, [recipient], DEFAULT_LAYERS[:1])
    node = nodes(decoder, registry, wrong.key_files)
    text = rpc_error(lambda: node.client("k8s.io").pull_image(image.ref))
    assert "call to DecryptLayer failed" in text, text
    assert "key schemes in annotations: jwe" in text, text
    assert "EC secp256r1 key SHA256:" in text, text
    assert "is not a recipient" in text, text
    assert "Traceback" not in text, text
    assert [call.payload for call in node.decoder_calls()] == [True]


def test_cri_pull_tar_zstd_processor_without_payload(
    decoder: str, registry: Registry, nodes: Callable[..., Node], recipients: Make, tmp_path: Path
) -> None:
    """imgcrypt's README registers a ``...v1.tar.zstd`` processor, but containerd only sends payloads to the
    ``.tar`` and ``.tar.gzip`` IDs: with descriptor recovery off, the decoder must say so instead of Go's bare
    EBADF text (with it on, the layer decrypts: tests/e2e/test_recovery_pull.py)."""
    recipient = recipients("jwe-p256")
    zstd = ("--dest-compress", "--dest-compress-format", "zstd")
    image = push_encrypted(registry, tmp_path, [recipient], DEFAULT_LAYERS[:1], zstd)
    node = nodes(
        decoder,
        registry,
        recipient.key_files,
        {RECOVERY_ENV: "off"},
        processor_ids=(PROCESSOR_TAR_GZIP, PROCESSOR_TAR, PROCESSOR_TAR_ZSTD),
    )
    text = rpc_error(lambda: node.client("k8s.io").pull_image(image.ref))
    assert "read payload: read configFd: bad file descriptor" in text, text
    assert "decoder.v1.tar.zstd" in text, text


def test_plain_ctr_import_names_ctr_enc_and_the_cri(
    pip_decoder: str, nodes: Callable[..., Node], recipients: Make, tmp_path: Path
) -> None:
    """Plain ``ctr images import`` unpacks an encrypted image without a payload; with descriptor recovery
    off, the decoder names that cause and its fixes instead of causes that do not apply."""
    recipient = recipients("jwe-p256")
    _, encrypted = encrypt_image(tmp_path, [recipient], DEFAULT_LAYERS[:1])
    archive = tmp_path / "enc.tar"
    skopeo("copy", "-q", f"oci:{encrypted}:v1", f"oci-archive:{archive}:example.test/enc:v1")
    node = nodes(pip_decoder, None, recipient.key_files, {RECOVERY_ENV: "off"})
    with pytest.raises(RuntimeError) as failure:
        node.containerd.ctr(f"e2e-{uuid.uuid4().hex[:8]}", "images", "import", str(archive))
    text = str(failure.value)
    print(text)
    assert (
        "read payload: read configFd: bad file descriptor (containerd started ctd-decoder for a layer of type " in text
    )
    assert "a plain `ctr images pull` or `ctr images import`" in text and "ctr-enc images import --key" in text
    assert "tar.zstd" not in text, "a gzip layer has nothing to do with the zstd processor ID"
    assert [call.payload for call in node.decoder_calls()] == [False]


def _encrypt(tmp_path: Path, files: list[dict[str, bytes]]) -> tuple[Recipient, list[Layer]]:
    recipient = SCHEMES["jwe-rsa2048"](tmp_path / "recipient")
    _, encrypted = encrypt_image(tmp_path, [recipient], files)
    return recipient, read_layers(encrypted)


def _apply(node: Node, layers: list[Layer], **kwargs: object) -> str:
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    client = node.client(namespace)
    return rpc_error(lambda: apply_with_payload(client, layers, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("type_url", "value", "expected"),
    [
        (PAYLOAD_TYPE_URL, b"{not json", "could not UnmarshalAny() the decrypt data"),
        ("example.com/Other", b"{}", "could not UnmarshalAny() the decrypt data: type with url example.com/Other"),
    ],
    ids=["bad-json", "other-type-url"],
)
def test_diff_apply_malformed_payload(
    type_url: str, value: bytes, expected: str, decoder: str, nodes: Callable[..., Node], tmp_path: Path
) -> None:
    """containerd itself parses the payload as an ``Any``, so the malformed part is inside it."""
    _, layers = _encrypt(tmp_path, DEFAULT_LAYERS[:1])
    node = nodes(decoder, None, {})
    payload = any_pb2.Any(type_url=type_url, value=value).SerializeToString()
    text = _apply(node, layers, payload_for={layers[0].descriptor["digest"]: payload})
    assert expected in text, text


def test_diff_apply_payload_without_keys(decoder: str, nodes: Callable[..., Node], tmp_path: Path) -> None:
    """A payload with ``Parameters: null`` (what the CRI sends) and an empty keys directory."""
    _, layers = _encrypt(tmp_path, DEFAULT_LAYERS[:1])
    node = nodes(decoder, None, {})
    text = _apply(node, layers, decrypt_config=DecryptConfig())
    assert "call to DecryptLayer failed" in text, text
    assert "jwe" in text, text


def test_diff_apply_tampered_layer_is_refused(decoder: str, nodes: Callable[..., Node], tmp_path: Path) -> None:
    """One flipped ciphertext bit: the HMAC check fails and containerd reports our error."""
    recipient, layers = _encrypt(tmp_path, [{"big.bin": hashlib.sha256(b"seed").digest() * 20_000}])
    blob = bytearray(layers[0].blob)
    blob[len(blob) // 2] ^= 0x01
    descriptor = {**layers[0].descriptor, "digest": sha256_digest(bytes(blob))}
    node = nodes(decoder, None, {})
    text = _apply(node, [Layer(descriptor, bytes(blob))], decrypt_config=recipient.decrypt_config())
    assert "could not copy data" in text, text
