"""Fresh key pairs for tests, written as the files operators would use."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def new_key(kind: str) -> PrivateKeyTypes:
    """Make a key: ``rsa2048``, ``rsa3072``, ``p256``, ``p384`` or ``p521``."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(65537, int(kind[3:]))
    curve = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}[kind]
    return ec.generate_private_key(curve)


def private_pem(key: PrivateKeyTypes, fmt: str = "pkcs8", password: bytes | None = None) -> bytes:
    """Serialize a private key: ``pkcs8``, ``traditional`` (PKCS#1 / SEC1) or ``der``."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    if fmt == "der":
        return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, encryption)
    private_format = (
        serialization.PrivateFormat.PKCS8 if fmt == "pkcs8" else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(serialization.Encoding.PEM, private_format, encryption)


def public_pem(key: PrivateKeyTypes) -> bytes:
    """Serialize the public half as SubjectPublicKeyInfo PEM."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_key_pair(directory: Path, name: str, kind: str) -> tuple[Path, Path, PrivateKeyTypes]:
    """Write ``<name>.pem`` (PKCS#8) and ``<name>.pub.pem`` into ``directory``; return both paths and the key."""
    key = new_key(kind)
    private_path, public_path = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    private_path.write_bytes(private_pem(key))
    public_path.write_bytes(public_pem(key))
    return private_path, public_path, key
