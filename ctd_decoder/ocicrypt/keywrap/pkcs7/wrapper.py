"""PKCS#7 key wrapping (``org.opencontainers.image.enc.keys.pkcs7``).

The wrapped key is a DER ``ContentInfo`` holding an ``EnvelopedData``: RSA PKCS#1 v1.5 key transport
to recipients named by certificate issuer and serial number, and the private options encrypted
with AES. The Go toolchain writes AES-128-GCM with non-standard parameters (a primitive tag 0x10
holding ``SEQUENCE { [4] IMPLICIT nonce, icvLen }``) and the 16-byte tag appended to the
ciphertext; its ``encryptedContent`` is ``[0]`` constructed around OCTET STRINGs (ocicrypt up to
1.2.0) or ``[0]`` primitive (1.2.1 on). Both are read, as are standard GCM parameters and AES-CBC
content. Writing produces what ocicrypt up to 1.2.0 (and skopeo 1.9) writes, ``[0]`` constructed around
one OCTET STRING: the pkcs7 library of ocicrypt 1.0.3 to 1.2.0 declares the field ``explicit``, so it
reads a primitive ``[0]`` as absent (empty ciphertext, failed GCM open, "PKCS7: No suitable private key
found"), while 1.2.1 on reads either form.

``cryptography``'s PKCS#7 functions reject these blobs, and asn1crypto 1.5's ``cms`` module refuses the
constructed ``encryptedContent`` that skopeo 1.9 writes ("method should have been primitive"), so a
small, bounded DER reader (``der.py``, fuzzed in the tests) does the parsing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ... import config as params
from ... import scope
from ...config import DecryptConfig, EncryptConfig
from ...errors import UnwrapError, WrapError
from ..base import KeyWrapperBase, explain_attempts, private_keys
from . import der

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

ENVELOPED_DATA = "1.2.840.113549.1.7.3"
DATA = "1.2.840.113549.1.7.1"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
AES_GCM_KEY_SIZES = {"2.16.840.1.101.3.4.1.6": 16, "2.16.840.1.101.3.4.1.26": 24, "2.16.840.1.101.3.4.1.46": 32}
AES_CBC_KEY_SIZES = {"2.16.840.1.101.3.4.1.2": 16, "2.16.840.1.101.3.4.1.22": 24, "2.16.840.1.101.3.4.1.42": 32}
AES_128_GCM = "2.16.840.1.101.3.4.1.6"
GCM_NONCE_SIZE = 12
GCM_TAG_SIZE = 16
_PEM_BODY = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----(.*?)-----END", re.S)


@dataclass
class _Recipient:
    issuer: bytes
    serial: int
    algorithm: str
    encrypted_key: bytes


@dataclass
class _Content:
    algorithm: str
    key_size: int
    iv: bytes
    ciphertext: bytes


@dataclass
class _Envelope:
    recipients: list[_Recipient]
    content: _Content


@dataclass
class _Certificate:
    issuer: bytes
    serial: int
    public_key_info: bytes
    label: str


class _NoFit(Exception):
    """This key and certificate cannot open the envelope; the text says why."""


def _children(element: der.Element, tag: int, what: str, minimum: int) -> list[der.Element]:
    children = der.expect(element, tag, what).children()
    if len(children) < minimum:
        raise der.DerError(f"{what}: expected at least {minimum} elements, found {len(children)}")
    return children


def _parse_recipient(element: der.Element) -> _Recipient | None:
    """Parse a KeyTransRecipientInfo identified by issuer and serial; None for other kinds."""
    if element.tag != der.SEQUENCE:
        return None  # KeyAgree/KEK/password recipients are tagged [1]..[4]
    fields = _children(element, der.SEQUENCE, "RecipientInfo", 4)
    if fields[1].tag != der.SEQUENCE:
        return None  # identified by subjectKeyIdentifier
    issuer_and_serial = _children(fields[1], der.SEQUENCE, "IssuerAndSerialNumber", 2)
    issuer = der.expect(issuer_and_serial[0], der.SEQUENCE, "issuer").encoded
    serial = der.decode_integer(issuer_and_serial[1], "serialNumber")
    algorithm = der.decode_oid(_children(fields[2], der.SEQUENCE, "keyEncryptionAlgorithm", 1)[0], "algorithm")
    encrypted_key = der.expect(fields[3], der.OCTET_STRING, "encryptedKey").content
    return _Recipient(issuer, serial, algorithm, encrypted_key)


def _gcm_nonce(parameters: der.Element | None) -> bytes:
    """Return the nonce from Go's odd GCM parameters or from standard ``GCMParameters``."""
    if parameters is None:
        raise der.DerError("AES-GCM parameters are missing")
    if parameters.tag == der.SEQUENCE:
        fields = parameters.children()
    else:
        # Go wraps the marshalled SEQUENCE in a primitive element of universal tag 16.
        fields = _children(der.parse_one(parameters.content), der.SEQUENCE, "GCM parameters", 1)
    if not fields or fields[0].tag not in (0x84, der.OCTET_STRING):
        raise der.DerError("GCM parameters hold no nonce")
    nonce = fields[0].content
    if len(nonce) != GCM_NONCE_SIZE:
        raise der.DerError(f"GCM nonce of {len(nonce)} bytes, expected {GCM_NONCE_SIZE}")
    icv_size = der.decode_integer(fields[1], "GCM ICV length") if len(fields) > 1 else 12
    if icv_size != GCM_TAG_SIZE:
        raise der.DerError(f"GCM tag of {icv_size} bytes is not supported, expected {GCM_TAG_SIZE}")
    return nonce


def _cbc_iv(parameters: der.Element | None) -> bytes:
    if parameters is None:
        raise der.DerError("AES-CBC parameters are missing")
    iv = der.expect(parameters, der.OCTET_STRING, "AES-CBC IV").content
    if len(iv) != 16:
        raise der.DerError(f"AES-CBC IV of {len(iv)} bytes, expected 16")
    return iv


def _encrypted_content(fields: list[der.Element]) -> bytes:
    """Return the ciphertext from ``[0]`` primitive, or ``[0]`` constructed around OCTET STRINGs."""
    if len(fields) < 3:
        raise der.DerError("EncryptedContentInfo has no encryptedContent")
    element = fields[2]
    if element.tag == 0x80:
        return element.content
    if element.tag != 0xA0:
        raise der.DerError(f"encryptedContent: unexpected tag 0x{element.tag:02x}")
    pieces = [der.expect(piece, der.OCTET_STRING, "encryptedContent piece").content for piece in element.children()]
    return b"".join(pieces)


def _parse_content(element: der.Element) -> _Content:
    fields = _children(element, der.SEQUENCE, "EncryptedContentInfo", 2)
    content_type = der.decode_oid(fields[0], "contentType")
    if content_type != DATA:
        raise der.DerError(f"encrypted content type {content_type} is not data")
    algorithm_fields = _children(fields[1], der.SEQUENCE, "contentEncryptionAlgorithm", 1)
    algorithm = der.decode_oid(algorithm_fields[0], "contentEncryptionAlgorithm")
    parameters = algorithm_fields[1] if len(algorithm_fields) > 1 else None
    if algorithm in AES_GCM_KEY_SIZES:
        iv, key_size = _gcm_nonce(parameters), AES_GCM_KEY_SIZES[algorithm]
    elif algorithm in AES_CBC_KEY_SIZES:
        iv, key_size = _cbc_iv(parameters), AES_CBC_KEY_SIZES[algorithm]
    else:
        raise der.DerError(f"content encryption algorithm {algorithm} is not supported (AES-GCM and AES-CBC are)")
    return _Content(algorithm, key_size, iv, _encrypted_content(fields))


def parse_envelope(blob: bytes) -> _Envelope:
    """Parse a ContentInfo holding an EnvelopedData; raise :class:`der.DerError` if it is not one."""
    content_info = _children(der.parse_one(blob), der.SEQUENCE, "ContentInfo", 2)
    content_type = der.decode_oid(content_info[0], "contentType")
    if content_type != ENVELOPED_DATA:
        raise der.DerError(f"content type {content_type} is not envelopedData")
    explicit = _children(content_info[1], 0xA0, "content", 1)
    fields = _children(explicit[0], der.SEQUENCE, "EnvelopedData", 3)
    der.decode_integer(fields[0], "version")
    if fields[1].tag == 0xA0:  # CMS originatorInfo
        fields = [fields[0], *fields[2:]]
    if len(fields) < 3:
        raise der.DerError("EnvelopedData has no encryptedContentInfo")
    recipient_infos = der.expect(fields[1], der.SET, "recipientInfos").children(limit=scope.MAX_RECIPIENTS)
    recipients = [recipient for item in recipient_infos if (recipient := _parse_recipient(item)) is not None]
    if not recipients:
        raise der.DerError("no recipient is identified by issuer and serial number")
    return _Envelope(recipients, _parse_content(fields[2]))


def _der_of(data: bytes) -> bytes:
    """Return the DER inside the first PEM block of ``data``, or ``data`` itself."""
    match = _PEM_BODY.search(data)
    if match is None:
        return data
    try:
        return base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise der.DerError("PEM body is not base64") from None


def parse_certificate(data: bytes) -> _Certificate:
    """Read issuer, serial number and public key of an X.509 certificate (PEM or DER)."""
    encoded = _der_of(data)
    certificate = _children(der.parse_one(encoded), der.SEQUENCE, "Certificate", 3)
    tbs = _children(certificate[0], der.SEQUENCE, "TBSCertificate", 6)
    if tbs[0].tag == 0xA0:  # explicit version
        tbs = tbs[1:]
    if len(tbs) < 6:
        raise der.DerError("TBSCertificate is too short")
    serial = der.decode_integer(tbs[0], "serialNumber")
    issuer = der.expect(tbs[2], der.SEQUENCE, "issuer").encoded
    public_key_info = der.expect(tbs[5], der.SEQUENCE, "subjectPublicKeyInfo").encoded
    label = "certificate SHA256:" + hashlib.sha256(encoded).hexdigest()[:16]
    return _Certificate(issuer, serial, public_key_info, label)


def _load_public_key(certificate: _Certificate) -> PublicKeyTypes:
    from ...keyload import load_der_public_key

    try:
        return load_der_public_key(certificate.public_key_info)
    except (ValueError, TypeError) as err:
        raise der.DerError(f"unusable public key ({type(err).__name__})") from None


def _same_public_key(private_key: PrivateKeyTypes, certificate: _Certificate) -> bool:
    from ...keyload import Encoding, PublicFormat

    try:
        theirs = _load_public_key(certificate)
    except der.DerError:
        return False
    spki = PublicFormat.SubjectPublicKeyInfo
    mine = private_key.public_key().public_bytes(Encoding.DER, spki)
    return mine == theirs.public_bytes(Encoding.DER, spki)


def _decrypt_content(content: _Content, cek: bytes) -> bytes | None:
    """Return the plaintext, or None if ``cek`` does not decrypt ``content``."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(cek) != content.key_size:
        return None
    if content.algorithm in AES_GCM_KEY_SIZES:
        try:
            return AESGCM(cek).decrypt(content.iv, content.ciphertext, None)
        except InvalidTag:
            return None
    if not content.ciphertext or len(content.ciphertext) % 16:
        return None
    decryptor = Cipher(algorithms.AES(cek), modes.CBC(content.iv)).decryptor()
    padded = decryptor.update(content.ciphertext) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= 16 or padded[-pad:] != bytes([pad]) * pad:
        return None
    return padded[:-pad]


def _open(envelope: _Envelope, key: PrivateKeyTypes, certificate: _Certificate) -> bytes:
    """Decrypt ``envelope`` as the recipient ``certificate`` names, with ``key``; raise _NoFit if not."""
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    recipient = next(
        (r for r in envelope.recipients if r.issuer == certificate.issuer and r.serial == certificate.serial), None
    )
    if recipient is None:
        raise _NoFit("the certificate's issuer and serial number name no recipient")
    if recipient.algorithm != RSA_ENCRYPTION:
        raise _NoFit(f"key transport {recipient.algorithm} is not supported (rsaEncryption is)")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _NoFit("not an RSA key")
    mismatch = "" if _same_public_key(key, certificate) else "; the private key does not belong to the certificate"
    scope.spend(scope.PRIVATE_KEY_OPERATION, "an RSA PKCS#1 v1.5 decryption")
    # Implicit rejection, whatever the OpenSSL build does: bad padding continues with a random key,
    # so that it fails exactly as a wrong key does, with the same text (no padding oracle).
    try:
        cek = key.decrypt(recipient.encrypted_key, padding.PKCS1v15())
    except ValueError:
        cek = os.urandom(envelope.content.key_size)
    plaintext = _decrypt_content(envelope.content, cek)
    if plaintext is None:
        raise _NoFit(f"the content key or the content could not be decrypted (wrong key or corrupted data){mismatch}")
    return plaintext


def _certificates(values: list[bytes | None], attempts: list[str]) -> list[_Certificate]:
    """Parse the ``x509s`` entries; unreadable ones are noted in ``attempts`` and skipped."""
    certificates = []
    for number, data in enumerate(values, start=1):
        if not data:
            continue
        try:
            certificates.append(parse_certificate(data))
        except der.DerError as err:
            attempts.append(f"x509 certificate #{number} could not be parsed: {err}")
    return certificates


def _describe_recipients(envelope: _Envelope) -> str:
    serials = ", ".join(f"serial 0x{r.serial:x}"[:48] for r in envelope.recipients[:8])
    if len(envelope.recipients) > 8:
        serials += f" and {len(envelope.recipients) - 8} more"
    return f"{len(envelope.recipients)} recipient(s): {serials}"


NO_CERTIFICATE = (
    "no x509 certificates found needed for PKCS7 decryption: PKCS#7 picks its recipient by the certificate, so "
    "put the recipient's X.509 certificate (PEM or DER) into the keys directory beside its private key, "
    "or pass it with ctr-enc's --dec-recipient"
)


class Pkcs7KeyWrapper(KeyWrapperBase):
    """The ``pkcs7`` scheme; its keys live in ``privkeys`` (with certificates in ``x509s``)."""

    scheme = "pkcs7"
    key_parameter = params.PRIVKEYS

    def unwrap_key(self, dc: DecryptConfig, wrapped: bytes) -> bytes:
        """Try every private key with every certificate; the certificate picks the recipient."""
        attempts: list[str] = []
        candidates = private_keys(dc, "PKCS7", attempts)
        certificates = _certificates(dc.get(params.X509S), attempts)
        if not certificates:
            raise UnwrapError(explain_attempts(NO_CERTIFICATE, attempts))
        try:
            envelope = parse_envelope(wrapped)
        except der.DerError as err:
            raise UnwrapError(f"could not parse PKCS7 packet: {err}") from None
        for key, description in candidates:
            for certificate in certificates:
                try:
                    return _open(envelope, key, certificate)
                except _NoFit as err:
                    attempts.append(f"{description()} with {certificate.label}: {err}")
        summary = f"PKCS7: No suitable private key found for decryption; {_describe_recipients(envelope)}"
        raise UnwrapError(explain_attempts(summary, attempts))

    def wrap_keys(self, ec_config: EncryptConfig, opts: bytes) -> bytes | None:
        """Encrypt ``opts`` to every certificate in ``x509s`` in the form every ocicrypt since 1.0.3 reads."""
        values = ec_config.get(params.X509S)
        if not values:
            return None
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        certificates = []
        for number, data in enumerate(values, start=1):
            try:
                certificates.append(parse_certificate(data))
            except der.DerError as err:
                raise WrapError(f"PKCS7: could not parse x509 certificate #{number}: {err}") from None
        cek, nonce = os.urandom(16), os.urandom(GCM_NONCE_SIZE)
        sealed = AESGCM(cek).encrypt(nonce, opts, None)
        recipients = [_recipient_info(certificate, cek) for certificate in certificates]
        return _envelope(recipients, nonce, sealed)


def _recipient_info(certificate: _Certificate, cek: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        public_key = _load_public_key(certificate)
    except der.DerError as err:
        raise WrapError(f"PKCS7: {certificate.label}: {err}") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise WrapError(f"PKCS7: {certificate.label} does not hold an RSA key; only RSA recipients are supported")
    return der.sequence(
        der.integer(0),
        der.sequence(certificate.issuer, der.integer(certificate.serial)),
        der.sequence(der.oid(RSA_ENCRYPTION)),  # parameters absent, as Go writes them
        der.encode(der.OCTET_STRING, public_key.encrypt(cek, padding.PKCS1v15())),
    )


def _envelope(recipients: list[bytes], nonce: bytes, sealed: bytes) -> bytes:
    # Go's odd parameters: SEQUENCE { [4] IMPLICIT nonce, icvLen } inside a primitive tag 0x10.
    gcm_parameters = der.encode(0x10, der.sequence(der.encode(0x84, nonce), der.integer(GCM_TAG_SIZE)))
    content_info = der.sequence(
        der.oid(DATA),
        der.sequence(der.oid(AES_128_GCM), gcm_parameters),
        # [0] constructed around one OCTET STRING: ocicrypt <= 1.2.0 reads this field as EXPLICIT [0], so a
        # primitive [0] (what 1.2.1 writes) is an absent field to it; 1.2.1+ reads both.
        der.encode(0xA0, der.encode(der.OCTET_STRING, sealed)),
    )
    enveloped = der.sequence(der.integer(0), der.set_of(*recipients), content_info)
    return der.sequence(der.oid(ENVELOPED_DATA), der.encode(0xA0, enveloped))


WRAPPER = Pkcs7KeyWrapper()


_NAME_ATTRIBUTES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.5": "serialNumber",
}


def _name_text(issuer: bytes) -> str:
    """Render a DER Name as ``CN=...,O=...`` (other attributes by OID)."""
    parts = []
    for rdn in der.parse_one(issuer).children():
        for attribute in rdn.children():
            oid_element, value = attribute.children()[:2]
            oid = der.decode_oid(oid_element, "attribute type")
            parts.append(f"{_NAME_ATTRIBUTES.get(oid, oid)}={value.content.decode('utf-8', 'replace')}")
    return ",".join(parts)


def describe_recipients(wrapped: bytes) -> list[str]:
    """Name each recipient of a wrapped key by the issuer and serial number of its certificate."""
    try:
        envelope = parse_envelope(wrapped)
        return [f"issuer {_name_text(r.issuer)}, serial 0x{r.serial:x}" for r in envelope.recipients]
    except (der.DerError, ValueError) as err:
        return [f"unreadable PKCS#7 envelope: {err}"]
