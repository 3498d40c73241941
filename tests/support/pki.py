"""X.509 certificates for PKCS#7 tests, made with ``cryptography``."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PrivateKeyTypes
from cryptography.x509.oid import NameOID

from .keygen import new_key, private_pem


def certificate(
    key: PrivateKeyTypes,
    common_name: str = "test",
    serial: int | None = None,
    issuer_key: CertificateIssuerPrivateKeyTypes | None = None,
    issuer_name: str | None = None,
) -> x509.Certificate:
    """Make a certificate for ``key``: self-signed unless an issuer key and name are given."""
    now = datetime.datetime.now(datetime.UTC)
    signer = issuer_key if issuer_key is not None else key
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name or common_name)]))
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(signer, hashes.SHA256())
    )


def certificate_pem(cert: x509.Certificate) -> bytes:
    """Serialize a certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_der(cert: x509.Certificate) -> bytes:
    """Serialize a certificate as DER."""
    return cert.public_bytes(serialization.Encoding.DER)


def write_pkcs7_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``<name>.key.pem`` (a new RSA-2048 key) and ``<name>.crt.pem`` (its self-signed certificate)."""
    key = new_key("rsa2048")
    key_path, cert_path = directory / f"{name}.key.pem", directory / f"{name}.crt.pem"
    key_path.write_bytes(private_pem(key))
    cert_path.write_bytes(certificate_pem(certificate(key, name)))
    return key_path, cert_path
