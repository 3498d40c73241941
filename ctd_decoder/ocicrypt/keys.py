"""Recognising and parsing key material: private keys, certificates, public keys, PKCS#11 key files.

Private keys are accepted in every form the Go toolchain accepts (DER PKCS#8 / PKCS#1 / SEC1, PEM
PKCS#8 / PKCS#1, legacy-encrypted PEM, JWK JSON) plus SEC1 EC PEM and encrypted PKCS#8. Keys are
described to operators only by type and a SHA-256 fingerprint of the public key.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import TYPE_CHECKING, Any

from .errors import PrivateKeyError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

# PEM is scanned with bytes.find, not regular expressions: compiling them costs start-up on every layer.
_BEGIN = b"-----BEGIN "
_DASHES = b"-----"
_PEM_TYPE_CHARACTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ")
_PROC_TYPE = b"Proc-Type:"
_PRIVATE_KEY_PEM_TYPES = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY"}


def first_pem_block(data: bytes) -> tuple[str, bytes] | None:
    """Return the type and the whole text of the first PEM block in ``data``, if any.

    A block is ``-----BEGIN <TYPE>-----`` ... ``-----END <TYPE>-----`` with TYPE made of capitals,
    digits and spaces; a BEGIN line without its END is passed over.
    """
    start = data.find(_BEGIN)
    while start >= 0:
        kind_start = start + len(_BEGIN)
        kind_end = data.find(_DASHES, kind_start)
        kind = data[kind_start:kind_end]
        if kind_end > kind_start and _PEM_TYPE_CHARACTERS.issuperset(kind):
            end_line = b"-----END " + kind + _DASHES
            end = data.find(end_line, kind_end + len(_DASHES))
            if end >= 0:
                return kind.decode("ascii"), data[start : end + len(end_line)]
        start = data.find(_BEGIN, start + 1)
    return None


def _has_legacy_encryption_header(text: bytes) -> bool:
    at = text.find(_PROC_TYPE)
    while at >= 0:
        if text[at + len(_PROC_TYPE) :].lstrip(b" \t\n\r\f\v").startswith(b"4,ENCRYPTED"):
            return True
        at = text.find(_PROC_TYPE, at + 1)
    return False


def is_encrypted_private_key(data: bytes) -> bool:
    """Tell whether ``data`` is a private key that needs a password (legacy PEM or PKCS#8)."""
    block = first_pem_block(data)
    if block is None:
        return False
    kind, text = block
    return kind == "ENCRYPTED PRIVATE KEY" or _has_legacy_encryption_header(text)


@functools.lru_cache(maxsize=64)
def parse_private_key(data: bytes, password: bytes | None) -> PrivateKeyTypes:
    """Parse a private key; ``password`` None means none was given, ``b""`` is an empty password.

    Raises :class:`PrivateKeyError` with a message free of key material. RSA consistency checks
    are skipped: they cost ~30 ms per key (most of a small layer's run time) and guard signing
    against fault attacks, which does not apply to decrypting with an operator's own key.
    """
    from . import keyload

    block = first_pem_block(data)
    if block is None:
        for candidate in dict.fromkeys((data, _first_der_element(data))):
            try:
                return keyload.load_der_private_key(candidate, password=None, unsafe_skip_rsa_key_validation=True)
            except (ValueError, TypeError):
                pass
        return _parse_jwk_private_key(data)
    kind, text = block
    if kind.encode() not in _PRIVATE_KEY_PEM_TYPES:
        raise PrivateKeyError(f"Could not parse private key: a PEM {kind} block is not a private key")
    encrypted = is_encrypted_private_key(data)
    if encrypted and password is None:
        raise PrivateKeyError("Missing password for encrypted private key")
    try:
        return keyload.load_pem_private_key(
            text, password=password if encrypted else None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError) as err:
        if encrypted:
            raise PrivateKeyError("Wrong password: could not decrypt private key") from None
        raise PrivateKeyError(f"Could not parse private key: {_short(err)}") from None
    except Exception as err:  # unsupported algorithms surface as other exception types
        raise PrivateKeyError(f"Could not parse private key: {type(err).__name__}") from None


def _first_der_element(data: bytes) -> bytes:
    """Return the first DER element of ``data`` without what follows it (Go ignores trailing bytes)."""
    if len(data) < 2 or data[0] != 0x30:
        return data
    first = data[1]
    if first < 0x80:
        return data[: 2 + first]
    count = first & 0x7F
    if not 1 <= count <= 4 or len(data) < 2 + count:
        return data
    return data[: 2 + count + int.from_bytes(data[2 : 2 + count], "big")]


def _short(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _b64url_int(value: Any) -> int:
    if not isinstance(value, str):
        raise PrivateKeyError("Could not parse private key: JWK member is not a string")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise PrivateKeyError("Could not parse private key: JWK member is not base64url") from None
    return int.from_bytes(raw, "big")


def _parse_jwk_private_key(data: bytes) -> PrivateKeyTypes:
    try:
        jwk = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PrivateKeyError("Could not parse private key: not DER, PEM or JWK") from None
    if not isinstance(jwk, dict) or "kty" not in jwk:
        raise PrivateKeyError("Could not parse private key: not DER, PEM or JWK")
    if "d" not in jwk:
        raise PrivateKeyError("JWK is not a private key")
    try:
        if jwk["kty"] == "RSA":
            return _rsa_from_jwk(jwk)
        if jwk["kty"] == "EC":
            return _ec_from_jwk(jwk)
    except (KeyError, ValueError, TypeError, ArithmeticError) as err:
        # Invalid numbers (zero modulus, primes that do not fit) and members of the wrong JSON type.
        raise PrivateKeyError(f"Could not parse private key: invalid JWK ({type(err).__name__})") from None
    kty = jwk["kty"] if isinstance(jwk["kty"], str) else type(jwk["kty"]).__name__
    raise PrivateKeyError(f"Could not parse private key: unsupported JWK key type {kty[:20]!r}")


def _rsa_from_jwk(jwk: dict[str, Any]) -> PrivateKeyTypes:
    from cryptography.hazmat.primitives.asymmetric import rsa

    n, e, d = (_b64url_int(jwk[name]) for name in ("n", "e", "d"))
    if "p" in jwk and "q" in jwk:
        p, q = _b64url_int(jwk["p"]), _b64url_int(jwk["q"])
    else:
        p, q = rsa.rsa_recover_prime_factors(n, e, d)
    public = rsa.RSAPublicNumbers(e, n)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), public
    )
    return numbers.private_key()


_JWK_CURVES = {"P-256": "SECP256R1", "P-384": "SECP384R1", "P-521": "SECP521R1"}


def _ec_from_jwk(jwk: dict[str, Any]) -> PrivateKeyTypes:
    from cryptography.hazmat.primitives.asymmetric import ec

    crv = jwk["crv"]
    if not isinstance(crv, str) or crv not in _JWK_CURVES:
        raise ValueError("unsupported curve")
    curve = getattr(ec, _JWK_CURVES[crv])()
    public = ec.EllipticCurvePublicNumbers(_b64url_int(jwk["x"]), _b64url_int(jwk["y"]), curve)
    return ec.EllipticCurvePrivateNumbers(_b64url_int(jwk["d"]), public).private_key()


def public_key_fingerprint(public_key: PublicKeyTypes) -> str:
    """Return ``SHA256:<first 16 hex digits>`` of the public key's SubjectPublicKeyInfo DER."""
    from cryptography.hazmat.primitives import hashes

    from .keyload import Encoding, PublicFormat

    digest = hashes.Hash(hashes.SHA256())
    digest.update(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    return "SHA256:" + digest.finalize().hex()[:16]


def describe_public_key(public_key: PublicKeyTypes) -> str:
    """Describe a public key as e.g. ``RSA-2048 key SHA256:0123456789abcdef``."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(public_key, rsa.RSAPublicKey):
        kind = f"RSA-{public_key.key_size}"
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        kind = f"EC {public_key.curve.name}"
    else:
        kind = type(public_key).__name__.removeprefix("_")
    return f"{kind} key {public_key_fingerprint(public_key)}"


def describe_private_key(private_key: PrivateKeyTypes) -> str:
    """Describe a private key by its public half (type and fingerprint), never its secret."""
    return describe_public_key(private_key.public_key())


def load_certificate(data: bytes) -> x509.Certificate | None:
    """Parse ``data`` as an X.509 certificate (DER, or the first PEM block); None if it is not one."""
    block = first_pem_block(data)
    if (block is None and not data.startswith(b"\x30")) or (block is not None and block[0] != "CERTIFICATE"):
        return None
    import warnings

    from cryptography import x509

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a serial number of 0 (deprecated, still a certificate)
            if block is not None:
                return x509.load_pem_x509_certificate(block[1])
            return x509.load_der_x509_certificate(data)
    except ValueError:
        return None


def looks_like_certificate(data: bytes) -> bool:
    """Tell whether ``data`` parses as an X.509 certificate (DER, or the first PEM block)."""
    return load_certificate(data) is not None


_PUBLIC_KEY_PEM_TYPES = {"PUBLIC KEY", "RSA PUBLIC KEY"}
_OPENSSH_PUBLIC_KEY_TYPES = (b"ssh-rsa", b"ssh-ed25519", b"ssh-dss", b"ecdsa-sha2-nistp")


def public_key_kind(data: bytes) -> str | None:
    """Name the kind of public key ``data`` is (PEM, DER, JWK or OpenSSH), or None if it is none."""
    block = first_pem_block(data)
    if block is not None:
        return f"a PEM {block[0]}" if block[0] in _PUBLIC_KEY_PEM_TYPES else None
    words = data.split(None, 2)
    if len(words) >= 2 and words[0].startswith(_OPENSSH_PUBLIC_KEY_TYPES) and words[1].startswith(b"AAAA"):
        return "an OpenSSH public key"
    if data.startswith(b"{"):
        try:
            jwk = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        return "a JWK public key" if isinstance(jwk, dict) and "kty" in jwk and "d" not in jwk else None
    if not data.startswith(b"\x30"):
        return None
    from cryptography.exceptions import UnsupportedAlgorithm

    from .keyload import load_der_public_key

    try:
        load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return "a DER public key"


_PKCS11_URI = rb"^\s*uri\s*:\s*['\"]?pkcs11:"


def is_pkcs11_keyfile(data: bytes) -> bool:
    """Tell whether ``data`` is an ocicrypt PKCS#11 key file (YAML with ``pkcs11: uri: pkcs11:...``)."""
    import re  # compiled on first use only (key directories), not at every decoder start

    if b"pkcs11" not in data or re.search(_PKCS11_URI, data, re.M) is None:
        return False
    import yaml

    try:
        document = yaml.safe_load(data)
    except (yaml.YAMLError, RecursionError):
        return False
    if not isinstance(document, dict) or not isinstance(document.get("pkcs11"), dict):
        return False
    uri = document["pkcs11"].get("uri")
    return isinstance(uri, str) and uri.startswith("pkcs11:")
