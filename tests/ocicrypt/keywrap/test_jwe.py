"""JWE unwrap on cryptography primitives, checked against jwcrypto as an independent oracle."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from jwcrypto import jwe as jose_jwe
from jwcrypto import jwk
from support.keygen import new_key, private_pem, public_pem

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt import scope
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.errors import UnwrapError
from ctd_decoder.ocicrypt.keywrap.jwe import WRAPPER, describe_recipients

SECRET = b'{"symkey":"c2VjcmV0","digest":"sha256:00","cipheroptions":{}}'


def _dc(*pems: bytes) -> DecryptConfig:
    return DecryptConfig({params.PRIVKEYS: list(pems), params.PRIVKEYS_PASSWORDS: [None] * len(pems)})


def _jwcrypto_encrypt(pairs: list[tuple[bytes, str]], enc: str) -> bytes:
    token = jose_jwe.JWE(SECRET, protected=json.dumps({"enc": enc}))
    for public, alg in pairs:
        token.add_recipient(jwk.JWK.from_pem(public), header=json.dumps({"alg": alg}))
    return token.serialize(compact=False).encode()


@pytest.mark.parametrize(
    ("kind", "alg"),
    [
        ("rsa2048", "RSA-OAEP"),
        ("rsa2048", "RSA-OAEP-256"),
        ("p256", "ECDH-ES+A128KW"),
        ("p384", "ECDH-ES+A192KW"),
        ("p521", "ECDH-ES+A256KW"),
    ],
)
@pytest.mark.parametrize("enc", ["A128GCM", "A192GCM", "A256GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512"])
def test_every_allowed_algorithm_from_jwcrypto_unwraps(kind: str, alg: str, enc: str) -> None:
    key = new_key(kind)
    wrapped = _jwcrypto_encrypt([(public_pem(key), alg)], enc)
    assert WRAPPER.unwrap_key(_dc(private_pem(key)), wrapped) == SECRET


def test_compact_serialization_unwraps() -> None:
    key = new_key("rsa2048")
    token = jose_jwe.JWE(SECRET, protected=json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM"}))
    token.add_recipient(jwk.JWK.from_pem(public_pem(key)))
    wrapped = token.serialize(compact=True).encode()
    assert WRAPPER.unwrap_key(_dc(private_pem(key)), wrapped) == SECRET


def test_general_serialization_finds_the_matching_recipient() -> None:
    first, second = new_key("rsa2048"), new_key("p256")
    wrapped = _jwcrypto_encrypt([(public_pem(first), "RSA-OAEP"), (public_pem(second), "ECDH-ES+A256KW")], "A256GCM")
    assert WRAPPER.unwrap_key(_dc(private_pem(second)), wrapped) == SECRET


@pytest.mark.parametrize("kinds", [["rsa2048"], ["p256"], ["p384"], ["p521"], ["rsa2048", "p256", "p384"]])
def test_our_wrapping_decrypts_with_jwcrypto(kinds: list[str]) -> None:
    keys = [new_key(kind) for kind in kinds]
    wrapped = WRAPPER.wrap_keys(EncryptConfig({params.PUBKEYS: [public_pem(k) for k in keys]}), SECRET)
    assert wrapped is not None
    document = json.loads(wrapped)
    assert ("recipients" in document) == (len(keys) > 1), "flattened for one recipient, general for several"
    for key in keys:
        token = jose_jwe.JWE()
        token.deserialize(wrapped.decode(), key=jwk.JWK.from_pem(private_pem(key)))
        assert token.payload == SECRET


def test_single_recipient_puts_alg_in_the_protected_header_like_go_jose() -> None:
    key = new_key("p256")
    wrapped = WRAPPER.wrap_keys(EncryptConfig({params.PUBKEYS: [public_pem(key)]}), SECRET)
    assert wrapped is not None
    token = jose_jwe.JWE()
    token.deserialize(wrapped.decode())
    protected = json.loads(token.objects["protected"])
    assert protected["alg"] == "ECDH-ES+A256KW" and protected["enc"] == "A256GCM" and "epk" in protected


@pytest.mark.parametrize("alg", ["RSA1_5", "dir", "A128KW", "ECDH-ES"])
def test_disallowed_key_algorithm_is_refused(alg: str) -> None:
    key = new_key("rsa2048")
    header = {"alg": alg, "enc": "A256GCM"}
    forged = {"protected": "", "header": header, "encrypted_key": "AAAA", "iv": "AAAA", "ciphertext": "", "tag": "AAAA"}
    with pytest.raises(UnwrapError, match=r"jose\.ParseEncrypted failed"):
        WRAPPER.unwrap_key(_dc(private_pem(key)), json.dumps(forged).encode())


def test_tampered_jwe_ciphertext_is_not_accepted() -> None:
    key = new_key("rsa2048")
    wrapped = WRAPPER.wrap_keys(EncryptConfig({params.PUBKEYS: [public_pem(key)]}), SECRET)
    assert wrapped is not None
    document = json.loads(wrapped)
    document["ciphertext"] = (
        "A" + document["ciphertext"][1:] if document["ciphertext"][0] != "A" else "B" + document["ciphertext"][1:]
    )
    with pytest.raises(UnwrapError, match="No suitable private key"):
        WRAPPER.unwrap_key(_dc(private_pem(key)), json.dumps(document).encode())


def test_wrong_curve_key_is_reported_not_crashed() -> None:
    recipient, other = new_key("p384"), new_key("p256")
    wrapped = WRAPPER.wrap_keys(EncryptConfig({params.PUBKEYS: [public_pem(recipient)]}), SECRET)
    assert wrapped is not None
    with pytest.raises(UnwrapError, match=r"EC secp256r1 key SHA256:[0-9a-f]{16} is not a recipient"):
        WRAPPER.unwrap_key(_dc(private_pem(other)), wrapped)


def test_unparsable_key_does_not_stop_later_keys() -> None:
    key = new_key("rsa2048")
    wrapped = WRAPPER.wrap_keys(EncryptConfig({params.PUBKEYS: [public_pem(key)]}), SECRET)
    assert wrapped is not None
    assert WRAPPER.unwrap_key(_dc(b"not a key", private_pem(key)), wrapped) == SECRET


def test_password_list_of_other_length_is_refused() -> None:
    key = new_key("rsa2048")
    wrapped = WRAPPER.wrap_keys(EncryptConfig({params.PUBKEYS: [public_pem(key)]}), SECRET)
    assert wrapped is not None
    dc = DecryptConfig({params.PRIVKEYS: [private_pem(key)], params.PRIVKEYS_PASSWORDS: []})
    with pytest.raises(UnwrapError, match="password array length"):
        WRAPPER.unwrap_key(dc, wrapped)


@pytest.mark.parametrize("kind", ["p256", "rsa2048"])
def test_recipient_without_an_encrypted_key_is_skipped_without_a_key_operation(kind: str) -> None:
    """go-jose CVE-2026-34986 (a panic on an empty ECDH-ES+A*KW key): nothing to unwrap, no ECDH or RSA run."""
    key = new_key(kind)
    wrapped = WRAPPER.wrap_keys(EncryptConfig({params.PUBKEYS: [public_pem(key)]}), SECRET)
    assert wrapped is not None
    document = json.loads(wrapped)
    document["encrypted_key"] = ""
    with scope.layer_scope() as layer, pytest.raises(UnwrapError, match="without an encrypted key") as refused:
        WRAPPER.unwrap_key(_dc(private_pem(key)), json.dumps(document).encode())
    assert layer.spent == 0
    assert str(refused.value).startswith("JWE: No suitable private key found for decryption; recipients: ")
    assert describe_recipients(json.dumps(document).encode())[0].endswith("without an encrypted key")


def test_compact_input_of_millions_of_dots_is_refused_without_splitting_it() -> None:
    """go-jose CVE-2025-27144: splitting megabytes of dots made millions of strings (here 10x the input)."""
    dots = b"." * 10_000_000
    tracemalloc.start()
    try:
        with pytest.raises(UnwrapError, match="compact JWE format must have five parts"):
            WRAPPER.unwrap_key(_dc(private_pem(new_key("p256"))), dots)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(dots), f"{peak} bytes for a {len(dots)}-byte input"


@pytest.mark.parametrize("pieces", [4, 6])
def test_compact_input_needs_exactly_five_parts(pieces: int) -> None:
    with pytest.raises(UnwrapError, match="compact JWE format must have five parts"):
        WRAPPER.unwrap_key(_dc(private_pem(new_key("p256"))), ".".join(["AAAA"] * pieces).encode())
