"""Private-key parsing: every format Go accepts, plus SEC1 EC PEM and encrypted PKCS#8."""

from __future__ import annotations

import json

import pytest
from jwcrypto import jwk
from support.keygen import new_key, private_pem, public_pem

from ctd_decoder.ocicrypt import keys
from ctd_decoder.ocicrypt.errors import PrivateKeyError


@pytest.mark.parametrize("kind", ["rsa2048", "p256", "p384"])
@pytest.mark.parametrize("fmt", ["pkcs8", "traditional", "der"])
def test_plain_key_formats_parse(kind: str, fmt: str) -> None:
    key = new_key(kind)
    parsed = keys.parse_private_key(private_pem(key, fmt), None)
    assert keys.describe_private_key(parsed) == keys.describe_private_key(key)


@pytest.mark.parametrize("kind", ["rsa2048", "p256"])
def test_jwk_private_key_parses(kind: str) -> None:
    key = new_key(kind)
    exported = jwk.JWK.from_pem(private_pem(key)).export_private().encode()
    assert keys.describe_private_key(keys.parse_private_key(exported, None)) == keys.describe_private_key(key)


def test_jwk_public_key_is_refused_as_private() -> None:
    exported = jwk.JWK.from_pem(public_pem(new_key("p256"))).export_public().encode()
    with pytest.raises(PrivateKeyError, match="JWK is not a private key"):
        keys.parse_private_key(exported, None)


@pytest.mark.parametrize("fmt", ["traditional", "pkcs8"])
def test_encrypted_keys_need_the_right_password(fmt: str) -> None:
    key = new_key("rsa2048")
    locked = private_pem(key, fmt, password=b"pw")
    assert keys.is_encrypted_private_key(locked)
    with pytest.raises(PrivateKeyError, match="Missing password"):
        keys.parse_private_key(locked, None)
    with pytest.raises(PrivateKeyError, match="Wrong password"):
        keys.parse_private_key(locked, b"")
    assert keys.describe_private_key(keys.parse_private_key(locked, b"pw")) == keys.describe_private_key(key)


def test_public_key_pem_is_not_a_private_key() -> None:
    with pytest.raises(PrivateKeyError, match="not a private key"):
        keys.parse_private_key(public_pem(new_key("p256")), None)


def test_errors_never_contain_key_material() -> None:
    key_pem = private_pem(new_key("rsa2048"))
    damaged = key_pem.replace(b"MII", b"XXX", 1)
    with pytest.raises(PrivateKeyError) as caught:
        keys.parse_private_key(damaged, None)
    assert "PRIVATE" not in str(caught.value).replace("private key", "")
    body = b"".join(key_pem.splitlines()[1:-1]).decode()
    assert body[10:40] not in str(caught.value)


def test_fingerprint_is_stable_and_short() -> None:
    key = new_key("p256")
    description = keys.describe_private_key(key)
    assert description.startswith("EC secp256r1 key SHA256:") and len(description.split(":")[-1]) == 16
    assert json.dumps(description)
