"""JWE key wrapping (``org.opencontainers.image.enc.keys.jwe``), on ``cryptography`` primitives.

Reads compact, flattened and general JSON serializations with the algorithms ocicrypt allows:
key management ``RSA-OAEP``, ``RSA-OAEP-256``, ``ECDH-ES+A128KW/A192KW/A256KW`` and content
encryption ``A128/192/256GCM`` and ``A128CBC-HS256/A192CBC-HS384/A256CBC-HS512``. Writes what
go-jose writes for ocicrypt: ``A256GCM`` content, the flattened form with ``alg`` (and ``epk``) in
the protected header for one recipient, the general form with per-recipient headers for several.

jwcrypto is not used here: importing it costs more than a whole small layer's decryption.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from .. import config as params
from .. import keyload, keys, scope
from ..config import DecryptConfig, EncryptConfig
from ..errors import UnwrapError, WrapError
from .base import KeyWrapperBase, explain_attempts, private_keys

KEY_ALGORITHMS = ("RSA-OAEP", "RSA-OAEP-256", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW")
CONTENT_ALGORITHMS = ("A128GCM", "A192GCM", "A256GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512")
_CURVES: dict[str, type[ec.EllipticCurve]] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_MAX_INFLATED = 1 << 20


class _Malformed(Exception):
    """The JWE document itself is invalid."""


def _b64url_decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _Malformed(f"{what} is not a string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise _Malformed(f"{what} is not base64url") from None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Recipient:
    __slots__ = ("encrypted_key", "header")

    def __init__(self, header: dict[str, Any], encrypted_key: bytes) -> None:
        self.header = header
        self.encrypted_key = encrypted_key

    @property
    def alg(self) -> str:
        return str(self.header.get("alg", ""))

    def label(self) -> str:
        epk = self.header.get("epk")
        name = self.alg[:24]
        if isinstance(epk, dict) and isinstance(epk.get("crv"), str):
            name += f"({epk['crv'][:12]})"
        return name if self.encrypted_key else f"{name} without an encrypted key"


class _Jwe:
    __slots__ = ("aad", "ciphertext", "enc", "iv", "recipients", "tag", "zip")

    def __init__(
        self,
        recipients: list[_Recipient],
        enc: str,
        zip: str | None,
        aad: bytes,
        iv: bytes,
        ciphertext: bytes,
        tag: bytes,
    ) -> None:
        self.recipients = recipients
        self.enc = enc
        self.zip = zip
        self.aad = aad
        self.iv = iv
        self.ciphertext = ciphertext
        self.tag = tag


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise _Malformed(f"{what} is not JSON") from None
    except RecursionError:
        raise _Malformed(f"{what} is nested too deeply") from None
    if not isinstance(obj, dict):
        raise _Malformed(f"{what} is not a JSON object")
    return obj


def _optional_object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is not a JSON object")
    return value


def _parse(wrapped: bytes) -> _Jwe:
    text = wrapped.strip()
    if text.startswith(b"{"):
        document = _json_object(text, "the JWE")
        protected_b64 = document.get("protected", "")
        shared = dict(_optional_object(document.get("unprotected"), "unprotected header"))
        if "recipients" in document:
            entries = document["recipients"]
            if not isinstance(entries, list) or not entries:
                raise _Malformed("recipients is not a non-empty list")
            scope.check_recipients(len(entries), "the JWE")
        else:
            entries = [{"header": document.get("header"), "encrypted_key": document.get("encrypted_key", "")}]
        aad_b64 = document.get("aad")
        parts = (document.get("iv", ""), document.get("ciphertext", ""), document.get("tag", ""))
    else:
        # Counted before splitting: a split of megabytes of dots is a list of millions of strings
        # (go-jose's CVE-2025-27144 was that blow-up; it now refuses such input the same way).
        if text.count(b".") != 4:
            raise _Malformed("compact JWE format must have five parts")
        pieces = text.decode("ascii", "replace").split(".")
        protected_b64, shared, aad_b64 = pieces[0], {}, None
        entries = [{"header": None, "encrypted_key": pieces[1]}]
        parts = (pieces[2], pieces[3], pieces[4])
    if not isinstance(protected_b64, str):
        raise _Malformed("protected header is not a string")
    protected: dict[str, Any] = {}
    if protected_b64:
        protected = _json_object(_b64url_decode(protected_b64, "protected header"), "protected header")
    recipients = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise _Malformed("a recipient is not a JSON object")
        header = {**shared, **_optional_object(entry.get("header"), "a recipient header"), **protected}
        recipients.append(_Recipient(header, _b64url_decode(entry.get("encrypted_key", ""), "encrypted_key")))
    enc = str(recipients[0].header.get("enc", ""))
    if enc not in CONTENT_ALGORITHMS:
        raise _Malformed(f"content encryption {enc!r} is not allowed")
    for recipient in recipients:
        if recipient.alg not in KEY_ALGORITHMS:
            raise _Malformed(f"key management algorithm {recipient.alg!r} is not allowed")
    aad = protected_b64.encode("ascii")
    if aad_b64:
        if not isinstance(aad_b64, str) or not aad_b64.isascii():
            raise _Malformed("aad is not base64url")
        aad += b"." + aad_b64.encode("ascii")
    iv, ciphertext, tag = (
        _b64url_decode(value, name) for value, name in zip(parts, ("iv", "ciphertext", "tag"), strict=False)
    )
    zip_alg = recipients[0].header.get("zip")
    if zip_alg is not None and zip_alg != "DEF":
        raise _Malformed(f"compression {str(zip_alg)[:20]!r} is not supported")
    return _Jwe(recipients, enc, zip_alg, aad, iv, ciphertext, tag)


def _kw_size(alg: str) -> int:
    return {"ECDH-ES+A128KW": 16, "ECDH-ES+A192KW": 24, "ECDH-ES+A256KW": 32}[alg]


def _concat_kdf(shared_secret: bytes, alg: str, size: int, header: dict[str, Any]) -> bytes:
    def field(value: bytes) -> bytes:
        return len(value).to_bytes(4, "big") + value

    apu = _b64url_decode(header["apu"], "apu") if header.get("apu") else b""
    apv = _b64url_decode(header["apv"], "apv") if header.get("apv") else b""
    other = field(alg.encode()) + field(apu) + field(apv) + (size * 8).to_bytes(4, "big")
    return ConcatKDFHash(hashes.SHA256(), size, other).derive(shared_secret)


def _ec_public_from_jwk(jwk: Any) -> ec.EllipticCurvePublicKey:
    if (
        not isinstance(jwk, dict)
        or jwk.get("kty") != "EC"
        or not isinstance(jwk.get("crv"), str)
        or jwk["crv"] not in _CURVES
    ):
        raise _Malformed("epk is not an EC P-256/P-384/P-521 JWK")
    x = int.from_bytes(_b64url_decode(jwk.get("x"), "epk.x"), "big")
    y = int.from_bytes(_b64url_decode(jwk.get("y"), "epk.y"), "big")
    try:
        return ec.EllipticCurvePublicNumbers(x, y, _CURVES[jwk["crv"]]()).public_key()
    except ValueError:
        raise _Malformed("epk is not a point on its curve") from None


def _oaep(alg: str) -> padding.OAEP:
    # RSA-OAEP is defined with SHA-1 (RFC 7518 4.3); go-jose writes it for every RSA recipient.
    digest: hashes.HashAlgorithm = hashes.SHA256() if alg == "RSA-OAEP-256" else hashes.SHA1()  # noqa: S303
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


def _unwrap_cek(key: Any, recipient: _Recipient) -> bytes | None:
    """Return the content key if ``key`` opens ``recipient``; None if it does not."""
    if not recipient.encrypted_key:
        # Every allowed alg wraps the content key, so there is nothing to open (go-jose's
        # CVE-2026-34986 was a panic on an empty ECDH-ES+A*KW key; it now skips the recipient too).
        return None
    alg = recipient.alg
    if alg.startswith("RSA-OAEP"):
        if not isinstance(key, rsa.RSAPrivateKey):
            return None
        scope.spend(scope.PRIVATE_KEY_OPERATION, "an RSA-OAEP decryption")
        try:
            return key.decrypt(recipient.encrypted_key, _oaep(alg))
        except ValueError:
            return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    epk = _ec_public_from_jwk(recipient.header.get("epk"))
    if epk.curve.name != key.curve.name:
        return None
    scope.spend(scope.PRIVATE_KEY_OPERATION, "an ECDH key agreement")
    shared = key.exchange(ec.ECDH(), epk)
    kek = _concat_kdf(shared, alg, _kw_size(alg), recipient.header)
    # Imported here: before cryptography 50 its keywrap module imports constant_time, hence hashlib.
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

    try:
        return aes_key_unwrap(kek, recipient.encrypted_key)
    except InvalidUnwrap:
        return None


def _decrypt_content(jwe: _Jwe, cek: bytes) -> bytes | None:
    try:
        if jwe.enc.endswith("GCM"):
            if len(cek) * 8 != int(jwe.enc[1:4]):
                return None
            plaintext: bytes | None = AESGCM(cek).decrypt(jwe.iv, jwe.ciphertext + jwe.tag, jwe.aad)
        else:
            plaintext = _cbc_hmac_decrypt(jwe, cek)
        if plaintext is None:
            return None
    except Exception:  # InvalidTag, bad IV length: the key did not fit this content
        return None
    if jwe.zip == "DEF":
        import zlib

        inflater = zlib.decompressobj(-15)
        try:
            plaintext = inflater.decompress(plaintext, _MAX_INFLATED)
        except zlib.error:
            raise _Malformed("compressed content is not valid deflate data") from None
        if inflater.unconsumed_tail:
            raise _Malformed("compressed content is too large")
    return plaintext


def _cbc_hmac_decrypt(jwe: _Jwe, cek: bytes) -> bytes | None:
    # Imported here: constant_time imports the hmac module, hence hashlib and the system OpenSSL.
    from cryptography.hazmat.primitives import constant_time

    size = {"A128CBC-HS256": 16, "A192CBC-HS384": 24, "A256CBC-HS512": 32}[jwe.enc]
    if len(cek) != 2 * size:
        return None
    digest = {16: hashes.SHA256(), 24: hashes.SHA384(), 32: hashes.SHA512()}[size]
    mac = hmac.HMAC(cek[:size], digest)
    mac.update(jwe.aad + jwe.iv + jwe.ciphertext + (len(jwe.aad) * 8).to_bytes(8, "big"))
    if not constant_time.bytes_eq(mac.finalize()[:size], jwe.tag):
        return None
    decryptor = Cipher(algorithms.AES(cek[size:]), modes.CBC(jwe.iv)).decryptor()
    padded = decryptor.update(jwe.ciphertext) + decryptor.finalize()
    pad = padded[-1] if padded else 0
    if not 1 <= pad <= 16 or padded[-pad:] != bytes([pad]) * pad:
        return None
    return padded[:-pad]


class JweKeyWrapper(KeyWrapperBase):
    """The ``jwe`` scheme; its keys live in ``privkeys``."""

    scheme = "jwe"
    key_parameter = params.PRIVKEYS

    def unwrap_key(self, dc: DecryptConfig, wrapped: bytes) -> bytes:
        """Try every private key against every recipient."""
        try:
            jwe = _parse(wrapped)
        except _Malformed as err:
            raise UnwrapError(f"jose.ParseEncrypted failed: {err}") from None
        attempts: list[str] = []
        for key, description in private_keys(dc, "JWE", attempts):
            for recipient in jwe.recipients:
                try:
                    cek = _unwrap_cek(key, recipient)
                    plaintext = _decrypt_content(jwe, cek) if cek is not None else None
                except _Malformed as err:
                    raise UnwrapError(f"jose.ParseEncrypted failed: {err}") from None
                if plaintext is not None:
                    return plaintext
            attempts.append(f"{description()} is not a recipient")
        labels = ", ".join(recipient.label() for recipient in jwe.recipients)
        raise UnwrapError(
            explain_attempts(f"JWE: No suitable private key found for decryption; recipients: {labels}", attempts)
        )

    def wrap_keys(self, ec_config: EncryptConfig, opts: bytes) -> bytes | None:
        """Encrypt ``opts`` to every public key in ``pubkeys`` as go-jose does."""
        public_keys = [_load_public_key(data) for data in ec_config.get(params.PUBKEYS)]
        if not public_keys:
            return None
        cek = os.urandom(32)
        recipients = [_wrap_cek(cek, key, alg) for key, alg in public_keys]
        iv = os.urandom(12)
        protected = {**recipients[0][0], "enc": "A256GCM"} if len(recipients) == 1 else {"enc": "A256GCM"}
        protected_b64 = _b64url(json.dumps(protected, separators=(",", ":")).encode())
        sealed = AESGCM(cek).encrypt(iv, opts, protected_b64.encode("ascii"))
        body = {"iv": _b64url(iv), "ciphertext": _b64url(sealed[:-16]), "tag": _b64url(sealed[-16:])}
        document: dict[str, Any]
        if len(recipients) == 1:
            document = {"protected": protected_b64, "encrypted_key": _b64url(recipients[0][1]), **body}
        else:
            entries = [{"header": header, "encrypted_key": _b64url(key)} for header, key in recipients]
            document = {"protected": protected_b64, "recipients": entries, **body}
        return json.dumps(document, separators=(",", ":")).encode()


def _load_public_key(data: bytes) -> tuple[Any, str | None]:
    """Parse a recipient public key (PEM, DER or JWK) and the ``alg`` a JWK asks for."""
    block = keys.first_pem_block(data)
    try:
        if block is not None:
            return keyload.load_pem_public_key(block[1]), None
        if data.lstrip().startswith(b"{"):
            jwk = json.loads(data)
            alg = jwk.get("alg") if jwk.get("alg") in KEY_ALGORITHMS else None
            return _public_from_jwk(jwk), alg
        return keyload.load_der_public_key(data), None
    except (ValueError, KeyError, TypeError) as err:
        raise WrapError(f"JWE: could not parse public key: {err}") from None


def _public_from_jwk(jwk: dict[str, Any]) -> Any:
    if jwk.get("kty") == "RSA":
        n = int.from_bytes(_b64url_decode(jwk["n"], "n"), "big")
        e = int.from_bytes(_b64url_decode(jwk["e"], "e"), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    return _ec_public_from_jwk(jwk)


def _wrap_cek(cek: bytes, public_key: Any, alg: str | None) -> tuple[dict[str, Any], bytes]:
    if isinstance(public_key, rsa.RSAPublicKey):
        alg = alg if alg in ("RSA-OAEP", "RSA-OAEP-256") else "RSA-OAEP"
        return {"alg": alg}, public_key.encrypt(cek, _oaep(alg))
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name not in _CURVE_NAMES:
        raise WrapError("JWE: only RSA and EC P-256/P-384/P-521 public keys can be recipients")
    alg = alg if alg is not None and alg.startswith("ECDH-ES+") else "ECDH-ES+A256KW"
    ephemeral = ec.generate_private_key(public_key.curve)
    numbers = ephemeral.public_key().public_numbers()
    width = (public_key.curve.key_size + 7) // 8
    epk = {
        "kty": "EC",
        "crv": _CURVE_NAMES[public_key.curve.name],
        "x": _b64url(numbers.x.to_bytes(width, "big")),
        "y": _b64url(numbers.y.to_bytes(width, "big")),
    }
    header = {"alg": alg, "epk": epk}
    kek = _concat_kdf(ephemeral.exchange(ec.ECDH(), public_key), alg, _kw_size(alg), header)
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    return header, aes_key_wrap(kek, cek)


WRAPPER = JweKeyWrapper()


def describe_recipients(wrapped: bytes) -> list[str]:
    """Name each recipient of a wrapped key by its key algorithm (and curve, key ID when present)."""
    try:
        jwe = _parse(wrapped)
    except (_Malformed, ValueError, UnwrapError) as err:  # UnwrapError: more recipients than are tried
        return [f"unreadable JWE: {err}"]
    return [
        r.label() + (f" kid {r.header['kid']}" if isinstance(r.header.get("kid"), str) else "") for r in jwe.recipients
    ]
