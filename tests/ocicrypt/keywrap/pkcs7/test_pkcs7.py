"""PKCS#7 unwrap and wrap: Go's encodings, independent producers, and attacks on the DER."""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7 as crypto_pkcs7
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fixtures import fixtures_dir
from support.keygen import new_key, private_pem
from support.pki import certificate, certificate_der, certificate_pem

from ctd_decoder.decoder.payload import parse_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.errors import UnwrapError, WrapError
from ctd_decoder.ocicrypt.keywrap.pkcs7 import der
from ctd_decoder.ocicrypt.keywrap.pkcs7.wrapper import WRAPPER, parse_certificate, parse_envelope

SECRET = b'{"symkey":"c2VjcmV0","digest":"sha256:00","cipheroptions":{}}'
ANNOTATION = "org.opencontainers.image.enc.keys.pkcs7"


def _dc(keys: list[bytes], certs: list[bytes]) -> DecryptConfig:
    return DecryptConfig(
        {params.PRIVKEYS: list(keys), params.PRIVKEYS_PASSWORDS: [None] * len(keys), params.X509S: list(certs)}
    )


def _go_case(name: str = "pkcs7-rsa") -> tuple[bytes, DecryptConfig]:
    payload = parse_payload((fixtures_dir() / name / "payload.bin").read_bytes())
    return base64.b64decode(payload.descriptor.annotations[ANNOTATION]), payload.decrypt_config


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[bytes, bytes]:
    key = new_key("rsa2048")
    return private_pem(key), certificate_pem(certificate(key, "recipient"))


def _primitive_content(blob: bytes) -> bytes:
    """Re-encode a Go (mozilla) blob with ``[0]`` primitive encryptedContent, as smallstep writes it."""
    content_info = der.parse_one(blob).children()
    enveloped = content_info[1].children()[0].children()
    eci = enveloped[2].children()
    raw = b"".join(piece.content for piece in eci[2].children())
    new_eci = der.encode(0x30, eci[0].encoded + eci[1].encoded + der.encode(0x80, raw))
    new_env = der.encode(0x30, enveloped[0].encoded + enveloped[1].encoded + new_eci)
    return der.encode(0x30, content_info[0].encoded + der.encode(0xA0, new_env))


def _skeleton(blob: bytes) -> list[tuple[int, int]]:
    """The (depth, tag) outline of a blob, descending into every constructed element."""
    outline: list[tuple[int, int]] = []
    stack = [(0, der.parse_one(blob))]
    while stack:
        depth, element = stack.pop(0)
        outline.append((depth, element.tag))
        if element.constructed:
            stack[0:0] = [(depth + 1, child) for child in element.children()]
    return outline


# --- Go's encodings ---------------------------------------------------------------------------


def test_go_blob_with_constructed_encrypted_content_unwraps() -> None:
    blob, dc = _go_case()
    assert der.parse_one(blob).children()[1].children()[0].children()[2].children()[2].tag == 0xA0
    assert b'"symkey"' in WRAPPER.unwrap_key(dc, blob)


def test_primitive_encrypted_content_as_smallstep_writes_unwraps() -> None:
    blob, dc = _go_case()
    assert WRAPPER.unwrap_key(dc, _primitive_content(blob)) == WRAPPER.unwrap_key(dc, blob)


def test_go_gcm_parameters_are_the_odd_primitive_0x10_with_implicit_nonce() -> None:
    envelope = parse_envelope(_go_case()[0])
    assert envelope.content.algorithm == "2.16.840.1.101.3.4.1.6" and len(envelope.content.iv) == 12


def test_our_wrapping_has_exactly_gos_encoding(rsa_pair: tuple[bytes, bytes]) -> None:
    go_blob, dc = _go_case()
    ours = WRAPPER.wrap_keys(EncryptConfig({params.X509S: dc.get(params.X509S)}), SECRET)
    assert ours is not None
    assert _skeleton(ours) == _skeleton(go_blob)
    content = der.parse_one(ours).children()[1].children()[0].children()[2].children()
    assert content[1].children()[1].encoded[:6] == bytes.fromhex("1013 3011 840c")
    assert content[1].children()[1].encoded[-3:] == bytes.fromhex("020110")
    assert content[2].tag == 0xA0, "encryptedContent [0] constructed, which ocicrypt <= 1.2.0 requires"
    assert [piece.tag for piece in content[2].children()] == [der.OCTET_STRING]
    recipient = der.parse_one(ours).children()[1].children()[0].children()[1].children()[0].children()
    assert recipient[2].encoded == der.sequence(der.oid("1.2.840.113549.1.1.1")), "rsaEncryption without NULL"
    assert WRAPPER.unwrap_key(dc, ours) == SECRET


def test_our_wrapping_to_several_certificates_opens_with_each_key() -> None:
    keys = [new_key("rsa2048") for _ in range(3)]
    certs = [certificate_pem(certificate(key, f"r{i}")) for i, key in enumerate(keys)]
    blob = WRAPPER.wrap_keys(EncryptConfig({params.X509S: certs}), SECRET)
    assert blob is not None
    assert len(parse_envelope(blob).recipients) == 3
    for key, cert in zip(keys, certs, strict=True):
        assert WRAPPER.unwrap_key(_dc([private_pem(key)], [cert]), blob) == SECRET


def test_wrap_with_no_certificates_wraps_nothing() -> None:
    assert WRAPPER.wrap_keys(EncryptConfig({}), SECRET) is None


def test_wrap_refuses_a_non_rsa_certificate() -> None:
    cert = certificate_pem(certificate(new_key("p256"), "ec"))
    with pytest.raises(WrapError, match="RSA"):
        WRAPPER.wrap_keys(EncryptConfig({params.X509S: [cert]}), SECRET)


# --- independent producer: cryptography's standard AES-CBC EnvelopedData ------------------------


@pytest.mark.parametrize("algorithm", ["AES128", "AES256"])
@pytest.mark.parametrize("cert_encoding", ["pem", "der"])
def test_standard_aes_cbc_envelope_from_cryptography_unwraps(algorithm: str, cert_encoding: str) -> None:
    key = new_key("rsa2048")
    cert = certificate(key, "cbc")
    blob = (
        crypto_pkcs7.PKCS7EnvelopeBuilder()
        .set_data(SECRET)
        .add_recipient(cert)
        .set_content_encryption_algorithm(getattr(algorithms, algorithm))
        .encrypt(serialization.Encoding.DER, [crypto_pkcs7.PKCS7Options.Binary])
    )
    cert_bytes = certificate_pem(cert) if cert_encoding == "pem" else certificate_der(cert)
    assert WRAPPER.unwrap_key(_dc([private_pem(key, "der")], [cert_bytes]), blob) == SECRET


# --- attacks and mistakes ---------------------------------------------------------------------


def test_certificate_of_another_key_is_refused(rsa_pair: tuple[bytes, bytes]) -> None:
    _key_pem, cert_pem = rsa_pair
    blob = WRAPPER.wrap_keys(EncryptConfig({params.X509S: [cert_pem]}), SECRET)
    assert blob is not None
    other = new_key("rsa2048")
    other_cert = certificate_pem(certificate(other, "other"))
    with pytest.raises(UnwrapError) as refused:
        WRAPPER.unwrap_key(_dc([private_pem(other)], [other_cert]), blob)
    assert "name no recipient" in str(refused.value)
    # The recipient's certificate with a key that is not the recipient's: no decryption, and it says why.
    with pytest.raises(UnwrapError) as mismatched:
        WRAPPER.unwrap_key(_dc([private_pem(other)], [cert_pem]), blob)
    assert "does not belong to the certificate" in str(mismatched.value)


def test_same_issuer_and_serial_with_a_different_key_is_refused() -> None:
    ca = new_key("rsa2048")
    victim, attacker = new_key("rsa2048"), new_key("rsa2048")
    victim_cert = certificate(victim, "v", serial=7, issuer_key=ca, issuer_name="ca")
    forged = certificate(attacker, "v", serial=7, issuer_key=attacker, issuer_name="ca")
    blob = WRAPPER.wrap_keys(EncryptConfig({params.X509S: [certificate_pem(victim_cert)]}), SECRET)
    assert blob is not None
    with pytest.raises(UnwrapError, match="No suitable private key"):
        WRAPPER.unwrap_key(_dc([private_pem(attacker)], [certificate_pem(forged)]), blob)


def test_ec_key_is_reported_not_crashed(rsa_pair: tuple[bytes, bytes]) -> None:
    blob = WRAPPER.wrap_keys(EncryptConfig({params.X509S: [rsa_pair[1]]}), SECRET)
    assert blob is not None
    with pytest.raises(UnwrapError, match="not an RSA key"):
        WRAPPER.unwrap_key(_dc([private_pem(new_key("p256"))], [rsa_pair[1]]), blob)


def test_unparsable_key_does_not_stop_later_keys(rsa_pair: tuple[bytes, bytes]) -> None:
    key_pem, cert_pem = rsa_pair
    blob = WRAPPER.wrap_keys(EncryptConfig({params.X509S: [cert_pem]}), SECRET)
    assert blob is not None
    assert WRAPPER.unwrap_key(_dc([b"not a key", key_pem], [cert_pem]), blob) == SECRET


def test_unparsable_certificate_does_not_stop_later_certificates(rsa_pair: tuple[bytes, bytes]) -> None:
    key_pem, cert_pem = rsa_pair
    blob = WRAPPER.wrap_keys(EncryptConfig({params.X509S: [cert_pem]}), SECRET)
    assert blob is not None
    broken = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert WRAPPER.unwrap_key(_dc([key_pem], [broken, cert_pem]), blob) == SECRET


def test_every_failed_pair_is_listed_by_fingerprint_without_key_material(rsa_pair: tuple[bytes, bytes]) -> None:
    _key_pem, cert_pem = rsa_pair
    blob = WRAPPER.wrap_keys(EncryptConfig({params.X509S: [cert_pem]}), SECRET)
    assert blob is not None
    wrong = [private_pem(new_key("rsa2048")) for _ in range(2)]
    with pytest.raises(UnwrapError) as refused:
        WRAPPER.unwrap_key(_dc([b"junk", *wrong], [cert_pem]), blob)
    text = str(refused.value)
    assert text.startswith("PKCS7: No suitable private key found for decryption")
    assert "private key #1" in text and text.count("RSA-2048 key SHA256:") == 2
    assert "with certificate SHA256:" in text
    for pem in [*wrong, cert_pem]:
        body = b"".join(pem.splitlines()[1:-1]).decode()
        assert body[:32] not in text and body[-40:-8] not in text


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({params.PRIVKEYS: [], params.X509S: [b"x"]}, "no private keys found for PKCS7 decryption"),
        ({params.PRIVKEYS: [b"k"], params.PRIVKEYS_PASSWORDS: []}, "password array length"),
        ({params.PRIVKEYS: [b"k"], params.PRIVKEYS_PASSWORDS: [None]}, "no x509 certificates found"),
    ],
)
def test_go_requirements_and_messages(parameters: dict[str, list[bytes | None]], message: str) -> None:
    with pytest.raises(UnwrapError, match=message):
        WRAPPER.unwrap_key(DecryptConfig(parameters), _go_case()[0])


def test_tampered_encrypted_content_is_refused() -> None:
    blob, dc = _go_case()
    tampered = bytearray(blob)
    tampered[-5] ^= 0x01
    with pytest.raises(UnwrapError, match="could not be decrypted \\(wrong key or corrupted data\\)"):
        WRAPPER.unwrap_key(dc, bytes(tampered))


def test_truncated_der_is_refused_at_every_length() -> None:
    blob, dc = _go_case()
    for length in range(len(blob)):
        with pytest.raises(UnwrapError, match="could not parse PKCS7 packet"):
            WRAPPER.unwrap_key(dc, blob[:length])


def test_trailing_data_after_the_der_is_refused() -> None:
    blob, dc = _go_case()
    with pytest.raises(UnwrapError, match="trailing data"):
        WRAPPER.unwrap_key(dc, blob + b"\x00")


def test_indefinite_length_and_huge_lengths_are_refused() -> None:
    blob, dc = _go_case()
    for bad in (b"\x30\x80" + blob[4:] + b"\x00\x00", b"\x30\x89" + b"\xff" * 9, b"\x30\x84\xff\xff\xff\xff"):
        with pytest.raises(UnwrapError, match="could not parse PKCS7 packet"):
            WRAPPER.unwrap_key(dc, bad)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048))
def test_garbled_der_random_bytes_raise_only_unwrap_error(data: bytes) -> None:
    _, dc = _go_case()
    with pytest.raises(UnwrapError):
        WRAPPER.unwrap_key(dc, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)), min_size=1, max_size=4
    ),
    cut=st.integers(min_value=0, max_value=700),
)
def test_garbled_der_mutations_of_a_go_blob_raise_only_unwrap_error(flips: list[tuple[int, int]], cut: int) -> None:
    blob, dc = _go_case()
    mutated = bytearray(blob[: max(cut, 1)])
    for position, mask in flips:
        mutated[position % len(mutated)] ^= mask
    try:
        result = WRAPPER.unwrap_key(dc, bytes(mutated))
    except UnwrapError:
        return
    # Flips that cancel out, or that only touch bytes nobody reads: then only the genuine secret may come out.
    assert result == WRAPPER.unwrap_key(dc, blob)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=512))
def test_der_reader_and_certificate_parser_raise_only_der_error(data: bytes) -> None:
    for parse in (der.parse_one, der.parse_all, parse_certificate, parse_envelope):
        with contextlib.suppress(der.DerError):
            parse(data)


def test_go_fixture_keys_dir_certificate_parses_like_cryptography() -> None:
    from cryptography import x509

    pem = (fixtures_dir() / "node-pkcs7" / "keys" / "p7.crt.pem").read_bytes()
    ours = parse_certificate(pem)
    theirs = x509.load_pem_x509_certificate(pem)
    assert ours.serial == theirs.serial_number
    assert ours.issuer == theirs.issuer.public_bytes()


def test_der_writer_round_trips_integers_and_oids() -> None:
    for value in (0, 1, 127, 128, 255, 256, -1, -128, -129, 2**159 + 12345):
        assert der.decode_integer(der.parse_one(der.integer(value)), "n") == value
    for dotted in ("1.2.840.113549.1.7.3", "2.16.840.1.101.3.4.1.6", "2.999.3", "0.9.2342"):
        assert der.decode_oid(der.parse_one(der.oid(dotted)), "oid") == dotted


def test_fixture_directory_is_present() -> None:
    assert Path(fixtures_dir() / "pkcs7-rsa" / "payload.bin").is_file()
