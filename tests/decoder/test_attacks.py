"""Hostile input through the installed executable: each attack exits 1 with a clear, secret-free message."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from google.protobuf import any_pb2
from support.decoder import Result, run_decoder
from support.keygen import new_key, private_pem
from support.layers import EncryptedLayer, jwe_layer

from ctd_decoder.decoder.payload import MAX_PAYLOAD_SIZE, PAYLOAD_TYPE_URL
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.keywrap import PUBOPTS_ANNOTATION
from ctd_decoder.ocicrypt.stream import MIN_HOLD_BACK

# Every case runs cold and through a running warm server (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("decoder_path")

PLAINTEXT = os.urandom(3 * (1 << 20) + 777)
JWE_ANNOTATION = "org.opencontainers.image.enc.keys.jwe"
JWE_KEY = JWE_ANNOTATION.replace(".", "_")  # as _with_annotations takes it


@pytest.fixture(scope="module")
def layer() -> EncryptedLayer:
    return jwe_layer(PLAINTEXT)


def assert_refused(result: Result, prefix: str, layer: EncryptedLayer | None = None) -> None:
    assert result.returncode == 1
    assert result.stderr.startswith(prefix), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n\n") == 0, "one paragraph"
    if layer is not None:
        secret_b64 = base64.b64encode(layer.private_key_pem).decode()
        assert "PRIVATE KEY" not in result.stderr and secret_b64[:40] not in result.stderr


def _with_annotations(layer: EncryptedLayer, **changes: str | None) -> Descriptor:
    annotations = dict(layer.descriptor.annotations)
    for key, value in changes.items():
        name = key.replace("_", ".")
        if value is None:
            annotations.pop(name, None)
        else:
            annotations[name] = value
    return Descriptor(layer.descriptor.media_type, layer.descriptor.digest, layer.descriptor.size, annotations)


def test_genuine_layer_decrypts(layer: EncryptedLayer) -> None:
    result = run_decoder(layer.blob, layer.payload())
    assert result.returncode == 0, result.stderr
    assert result.stdout == PLAINTEXT


@pytest.mark.parametrize("where", ["first-byte", "middle", "last-16-bytes"])
def test_tampered_ciphertext_fails_and_withholds_the_tail(layer: EncryptedLayer, where: str) -> None:
    blob = bytearray(layer.blob)
    if where == "first-byte":
        blob[0] ^= 0x80
    elif where == "middle":
        blob[len(blob) // 2] ^= 0x01
    else:
        for index in range(len(blob) - 16, len(blob)):
            blob[index] ^= 0xFF
    result = run_decoder(bytes(blob), layer.payload())
    assert_refused(result, "could not copy data: could not properly decrypt byte stream", layer)
    assert len(result.stdout) <= len(PLAINTEXT) - MIN_HOLD_BACK
    assert layer.descriptor.digest in result.stderr


def test_truncated_stream_is_refused(layer: EncryptedLayer) -> None:
    result = run_decoder(layer.blob[:-1000], layer.payload())
    assert_refused(result, "could not copy data:", layer)
    assert len(result.stdout) <= len(PLAINTEXT) - MIN_HOLD_BACK


def test_trailing_garbage_is_refused(layer: EncryptedLayer) -> None:
    result = run_decoder(layer.blob + b"\0" * 100, layer.payload())
    assert_refused(result, "could not copy data:", layer)
    assert len(result.stdout) <= len(PLAINTEXT) - MIN_HOLD_BACK


def test_empty_stdin_is_refused(layer: EncryptedLayer) -> None:
    result = run_decoder(b"", layer.payload())
    assert_refused(result, "could not copy data:", layer)
    assert result.stdout == b""


def _pubopts(layer: EncryptedLayer, **changes: object) -> str:
    pub = json.loads(base64.b64decode(layer.descriptor.annotations[PUBOPTS_ANNOTATION]))
    pub.update(changes)
    return base64.b64encode(json.dumps(pub).encode()).decode()


@pytest.mark.parametrize(
    ("hmac_value", "message"),
    [(None, "HMAC is not provided"), ("", "HMAC is not provided"), ("c2hvcnQ=", "invalid HMAC length")],
)
def test_missing_or_short_hmac_is_refused_before_output(
    layer: EncryptedLayer, hmac_value: str | None, message: str
) -> None:
    descriptor = _with_annotations(layer, org_opencontainers_image_enc_pubopts=_pubopts(layer, hmac=hmac_value))
    result = run_decoder(layer.blob, layer.payload(descriptor=descriptor))
    assert_refused(result, "call to DecryptLayer failed:", layer)
    assert message in result.stderr
    assert result.stdout == b""


def test_wrong_key_names_the_key_by_fingerprint_only(layer: EncryptedLayer) -> None:
    wrong = private_pem(new_key("p256"))
    dc = DecryptConfig({params.PRIVKEYS: [wrong], params.PRIVKEYS_PASSWORDS: [None]})
    result = run_decoder(layer.blob, layer.payload(dc=dc))
    assert_refused(result, "call to DecryptLayer failed: no suitable key unwrapper found", layer)
    assert "EC secp256r1 key SHA256:" in result.stderr
    assert base64.b64encode(wrong).decode()[:40] not in result.stderr
    assert result.stdout == b""


def test_wrong_password_is_not_echoed(layer: EncryptedLayer) -> None:
    key = new_key("rsa2048")
    locked = private_pem(key, "traditional", password=b"right-horse")
    dc = DecryptConfig({params.PRIVKEYS: [locked], params.PRIVKEYS_PASSWORDS: [b"battery-staple-guess"]})
    result = run_decoder(layer.blob, layer.payload(dc=dc))
    assert_refused(result, "call to DecryptLayer failed:", layer)
    assert "Wrong password" in result.stderr
    assert "battery-staple-guess" not in result.stderr and "right-horse" not in result.stderr


@pytest.mark.parametrize(
    "annotation",
    ["!!!not base64!!!", base64.b64encode(b"{not json").decode(), base64.b64encode(b'{"recipients":[]}').decode()],
)
def test_malformed_jwe_annotation_is_refused(layer: EncryptedLayer, annotation: str) -> None:
    descriptor = _with_annotations(layer, org_opencontainers_image_enc_keys_jwe=annotation)
    result = run_decoder(layer.blob, layer.payload(descriptor=descriptor))
    assert_refused(result, "call to DecryptLayer failed:", layer)
    assert result.stdout == b""


def _jwe_document(layer: EncryptedLayer) -> dict[str, object]:
    document: dict[str, object] = json.loads(base64.b64decode(layer.descriptor.annotations[JWE_ANNOTATION]))
    return document


def test_jwe_recipient_without_an_encrypted_key_is_refused_cleanly(layer: EncryptedLayer) -> None:
    """go-jose CVE-2026-34986: a key-wrap recipient with an empty encrypted_key (go-jose panicked)."""
    document = _jwe_document(layer)
    document["encrypted_key"] = ""
    forged = base64.b64encode(json.dumps(document).encode()).decode()
    result = run_decoder(layer.blob, layer.payload(descriptor=_with_annotations(layer, **{JWE_KEY: forged})))
    assert_refused(result, "call to DecryptLayer failed:", layer)
    assert "JWE: No suitable private key found for decryption; recipients: RSA-OAEP without an encrypted key" in (
        result.stderr
    )
    assert result.stdout == b""


def test_jwe_recipient_without_an_encrypted_key_does_not_hide_the_next_one(layer: EncryptedLayer) -> None:
    document = _jwe_document(layer)  # alg stays in the protected header, which covers both recipients
    document["recipients"] = [{"encrypted_key": ""}, {"encrypted_key": document.pop("encrypted_key")}]
    wrapped = base64.b64encode(json.dumps(document).encode()).decode()
    result = run_decoder(layer.blob, layer.payload(descriptor=_with_annotations(layer, **{JWE_KEY: wrapped})))
    assert result.returncode == 0, result.stderr
    assert result.stdout == PLAINTEXT


def test_compact_jwe_of_millions_of_dots_is_refused_at_once(layer: EncryptedLayer) -> None:
    """go-jose CVE-2025-27144: compact input with very many dots blew up in memory when split."""
    dots = base64.b64encode(b"." * 8_000_000).decode()
    result = run_decoder(layer.blob, layer.payload(descriptor=_with_annotations(layer, **{JWE_KEY: dots})))
    assert_refused(result, "call to DecryptLayer failed:", layer)
    assert "jose.ParseEncrypted failed: compact JWE format must have five parts" in result.stderr
    assert result.stdout == b""


def test_malformed_pubopts_is_refused(layer: EncryptedLayer) -> None:
    descriptor = _with_annotations(layer, org_opencontainers_image_enc_pubopts=base64.b64encode(b"{oops").decode())
    result = run_decoder(layer.blob, layer.payload(descriptor=descriptor))
    assert_refused(result, "call to DecryptLayer failed: could not JSON unmarshal pubOptsData", layer)


def test_unknown_cipher_is_refused(layer: EncryptedLayer) -> None:
    descriptor = _with_annotations(layer, org_opencontainers_image_enc_pubopts=_pubopts(layer, cipher="ROT13"))
    result = run_decoder(layer.blob, layer.payload(descriptor=descriptor))
    assert_refused(result, "call to DecryptLayer failed: unsupported cipher type: ROT13", layer)


def test_unsupported_media_type_is_refused(layer: EncryptedLayer) -> None:
    descriptor = Descriptor(
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip+encrypted",
        layer.descriptor.digest,
        layer.descriptor.size,
        layer.descriptor.annotations,
    )
    result = run_decoder(layer.blob, layer.payload(descriptor=descriptor))
    assert_refused(result, "call to DecryptLayer failed: unsupporter layer MediaType", layer)
    assert result.stdout == b""


def _any(value: bytes) -> bytes:
    return any_pb2.Any(type_url=PAYLOAD_TYPE_URL, value=value).SerializeToString()


@pytest.mark.parametrize(
    ("payload", "prefix"),
    [
        (b"\x0a\xff\xff\x01garbage", "could not proto.Unmarshal() decrypt data:"),
        (b"", "could not UnmarshalAny() the decrypt data: type with url : not found"),
        (b"\x0a\x05hello\x12\x02{}", "could not UnmarshalAny() the decrypt data: type with url hello"),
        (b"\x0a\x21io.containerd.ocicrypt.v1.Payload\x12\x05{oops", "could not UnmarshalAny() the decrypt data:"),
        (_any(b'{"DecryptConfig":{"Parameters":{"privkeys":[1]}}}'), "could not UnmarshalAny() the decrypt data:"),
        (_any(b'{"DecryptConfig":{"Parameters":{"privkeys":["%"]}}}'), "could not UnmarshalAny() the decrypt data:"),
        (_any(b'{"Descriptor":{"size":"big"}}'), "could not UnmarshalAny() the decrypt data:"),
        (_any(b"[1, 2]"), "could not UnmarshalAny() the decrypt data:"),
    ],
)
def test_malformed_payload_is_refused(layer: EncryptedLayer, payload: bytes, prefix: str) -> None:
    assert_refused(run_decoder(layer.blob, payload), prefix)


def test_oversized_payload_is_refused(layer: EncryptedLayer) -> None:
    result = run_decoder(layer.blob, b"\x0a" * (MAX_PAYLOAD_SIZE + 1))
    assert_refused(result, "read payload:")
    assert "larger than" in result.stderr


def test_missing_fd3_explains_the_known_causes(layer: EncryptedLayer) -> None:
    result = run_decoder(layer.blob, None, env={"STREAM_PROCESSOR_MEDIATYPE": ""})
    assert_refused(result, "read payload: read configFd: bad file descriptor")
    assert "key_model" in result.stderr and "tar.zstd" in result.stderr and "use_local_image_pull" in result.stderr


def test_unknown_flag_is_a_usage_error(layer: EncryptedLayer) -> None:
    result = run_decoder(layer.blob, layer.payload(), args=["--no-such-flag"])
    assert result.returncode == 1
    assert result.stderr.startswith("flag provided but not defined: -no-such-flag\n")


@pytest.mark.parametrize("style", ["separate", "equals", "single-dash"])
def test_keys_path_flag_spellings_and_positional_arguments(layer: EncryptedLayer, tmp_path, style: str) -> None:
    (tmp_path / "key.pem").write_bytes(layer.private_key_pem)
    args = {
        "separate": ["--decryption-keys-path", str(tmp_path)],
        "equals": [f"--decryption-keys-path={tmp_path}"],
        "single-dash": ["-decryption-keys-path", str(tmp_path)],
    }[style]
    result = run_decoder(layer.blob, layer.payload(dc=DecryptConfig()), args=[*args, "ignored-positional"])
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(PLAINTEXT).digest()
