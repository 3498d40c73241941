"""CTD_DECODER_VERIFY_DIGEST=1: the decrypted blob must match the digest recorded at encryption."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os

from support.decoder import run_decoder
from support.keygen import new_key, private_pem, public_pem
from support.layers import GZIP_ENCRYPTED, jwe_layer

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.blockcipher import get_cipher
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.keywrap import ANNOTATION_PREFIX, PUBOPTS_ANNOTATION
from ctd_decoder.ocicrypt.keywrap.jwe import WRAPPER
from ctd_decoder.ocicrypt.stream import MIN_HOLD_BACK

VERIFY = {"CTD_DECODER_VERIFY_DIGEST": "1"}


def _layer_with_recorded_digest(plaintext: bytes, recorded: str) -> tuple[bytes, bytes]:
    key = new_key("rsa2048")
    cipher = get_cipher("AES_256_CTR_HMAC_SHA256")
    private = cipher.new_private_options(recorded)
    encryptor = cipher.encryptor(private)
    blob = encryptor.update(plaintext)
    public = encryptor.finalize()
    wrapped = WRAPPER.wrap_keys(EncryptConfig({params.PUBKEYS: [public_pem(key)]}), private.to_json())
    assert wrapped is not None
    annotations = {
        ANNOTATION_PREFIX + "jwe": base64.b64encode(wrapped).decode(),
        PUBOPTS_ANNOTATION: base64.b64encode(public.to_json()).decode(),
    }
    dc = DecryptConfig({params.PRIVKEYS: [private_pem(key)], params.PRIVKEYS_PASSWORDS: [None]})
    descriptor = Descriptor(GZIP_ENCRYPTED, "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob), annotations)
    return blob, encode_payload(Payload(dc, descriptor))


def test_genuine_layer_passes_digest_verification() -> None:
    layer = jwe_layer(os.urandom(2 * (1 << 20) + 5))
    result = run_decoder(layer.blob, layer.payload(), env=VERIFY)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


def test_substituted_plaintext_with_valid_hmac_is_caught_by_the_digest() -> None:
    plaintext = os.urandom(2 * (1 << 20) + 5)
    blob, payload = _layer_with_recorded_digest(plaintext, "sha256:" + hashlib.sha256(b"other").hexdigest())
    assert run_decoder(blob, payload).returncode == 0, "without the switch the digest is not checked, as in Go"
    result = run_decoder(blob, payload, env=VERIFY)
    assert result.returncode == 1
    assert result.stderr.startswith("could not copy data: the decrypted layer's digest sha256:")
    assert len(result.stdout) <= len(plaintext) - MIN_HOLD_BACK


def test_missing_recorded_digest_is_refused_when_verifying() -> None:
    blob, payload = _layer_with_recorded_digest(b"abc", "")
    result = run_decoder(blob, payload, env=VERIFY)
    assert result.returncode == 1
    assert result.stderr.startswith("call to DecryptLayer failed: cannot verify the plaintext digest")


def test_gzip_layer_whose_recorded_digest_is_of_its_uncompressed_content_passes() -> None:
    tar = os.urandom(3 * (1 << 20))
    plaintext = gzip.compress(tar[: 1 << 20], mtime=0) + gzip.compress(tar[1 << 20 :], mtime=0)  # two members
    blob, payload = _layer_with_recorded_digest(plaintext, "sha256:" + hashlib.sha256(tar).hexdigest())
    result = run_decoder(blob, payload, env=VERIFY)
    assert result.returncode == 0, result.stderr
    assert result.stdout == plaintext


def test_substituted_gzip_plaintext_is_caught_by_the_digest_of_either_form() -> None:
    plaintext = gzip.compress(os.urandom(2 * (1 << 20)), mtime=0)
    blob, payload = _layer_with_recorded_digest(plaintext, "sha256:" + hashlib.sha256(b"other").hexdigest())
    result = run_decoder(blob, payload, env=VERIFY)
    assert result.returncode == 1
    assert result.stderr.startswith("could not copy data: the decrypted layer's digest sha256:")
    assert "and so does the digest of its uncompressed content (sha256:" in result.stderr
    assert len(result.stdout) <= len(plaintext) - MIN_HOLD_BACK


def test_truncated_gzip_plaintext_is_not_taken_for_its_uncompressed_content() -> None:
    tar = os.urandom(1 << 20)
    plaintext = gzip.compress(tar, mtime=0)[:-8]  # no gzip trailer: the content cannot be vouched for
    blob, payload = _layer_with_recorded_digest(plaintext, "sha256:" + hashlib.sha256(tar).hexdigest())
    result = run_decoder(blob, payload, env=VERIFY)
    assert result.returncode == 1
    assert "uncompressed content (unavailable: not a complete gzip stream)" in result.stderr
