"""The certificates of a ``grpc-tls`` key provider, read as ocicrypt 1.3 reads them (Go's crypto/tls).

- ``root-ca-file``: the PEM certificates in it are the only roots; a file without one is refused
  (``no root CA certs parsed from file``), as Go refuses it, rather than left to fail the handshake.
- no ``root-ca-file``: the system's roots, found as Go finds them on Linux (``x509.SystemCertPool``):
  the first readable file of ``$SSL_CERT_FILE`` or else the distributions' bundle files, plus every file
  of the ``$SSL_CERT_DIR`` directories (colon-separated) or else ``/etc/ssl/certs`` and
  ``/etc/pki/tls/certs``. grpcio's own bundled roots, which it would use otherwise, are never used.
- ``cert-file`` and ``key-file``: the client's certificate, used only when both are set (as Go does);
  a key that does not belong to the certificate is refused before connecting.
"""

from __future__ import annotations

import os
import re

from ...boundedfile import read_bounded
from ...errors import FileTooLargeError
from .config import GrpcTls
from .errors import ProviderCallError

# Go 1.19+ crypto/x509 root_linux.go: the first of these files that can be read is used.
SYSTEM_CERT_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
)
# ... and every file of each of these directories.
SYSTEM_CERT_DIRS = ("/etc/ssl/certs", "/etc/pki/tls/certs", "/system/etc/security/cacerts")
CERT_FILE_ENV = "SSL_CERT_FILE"
CERT_DIR_ENV = "SSL_CERT_DIR"
MAX_CERT_FILE_SIZE = 4 * 1024 * 1024  # far above any CA bundle
MAX_CERT_DIR_FILES = 4096

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL)


def _read(path: str, what: str) -> bytes:
    try:
        return read_bounded(path, MAX_CERT_FILE_SIZE)
    except OSError as err:
        reason = err.strerror
    except FileTooLargeError:
        reason = f"larger than {MAX_CERT_FILE_SIZE} bytes"
    raise ProviderCallError(f"failed to load {what} {path}: {reason}")


def pem_certificates(data: bytes) -> list[bytes]:
    """The PEM certificate blocks of ``data`` that parse as X.509 (others are skipped, as Go skips them)."""
    return _parsable(_blocks(data))


def _parsable(blocks: list[bytes]) -> list[bytes]:
    import warnings

    from cryptography import x509

    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a CA's non-positive serial number: a warning, not our output
        for block in blocks:
            try:
                x509.load_pem_x509_certificate(block)
            except ValueError:
                continue
            found.append(block)
    return found


def _blocks(data: bytes) -> list[bytes]:
    return [match.group(0) for match in _PEM_CERTIFICATE.finditer(data)]


def root_certificates(tls: GrpcTls) -> bytes:
    """The PEM roots a connection to this provider trusts."""
    if tls.root_ca_file:
        found = pem_certificates(_read(tls.root_ca_file, "root CA certificates"))
        if not found:
            raise ProviderCallError(f"no root CA certs parsed from file {tls.root_ca_file}")
        return b"\n".join(found) + b"\n"
    return system_roots()


def _same_directory_link(directory: str, name: str) -> bool:
    """A symbolic link to a file in the same directory (the hash links c_rehash makes): Go skips them."""
    path = os.path.join(directory, name)
    return os.path.islink(path) and "/" not in os.readlink(path)


def system_roots(environ: dict[str, str] | None = None) -> bytes:
    """The system's root certificates as PEM, found as Go's ``x509.SystemCertPool`` finds them on Linux."""
    env = os.environ if environ is None else environ
    files = [env[CERT_FILE_ENV]] if env.get(CERT_FILE_ENV) else list(SYSTEM_CERT_FILES)
    directories = env[CERT_DIR_ENV].split(":") if env.get(CERT_DIR_ENV) else list(SYSTEM_CERT_DIRS)
    blocks: dict[bytes, None] = {}  # ordered, each certificate once (the bundle file repeats the directory)
    for path in files:
        try:
            data = _read(path, "system root certificates")
        except ProviderCallError:
            continue
        blocks.update(dict.fromkeys(_blocks(data)))
        break
    for directory in directories:
        try:
            names = sorted(os.listdir(directory))[:MAX_CERT_DIR_FILES]
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if _same_directory_link(directory, name) or not os.path.isfile(path):
                continue
            try:
                blocks.update(dict.fromkeys(_blocks(_read(path, "system root certificates"))))
            except ProviderCallError:
                continue
    found = _parsable(list(blocks))
    if not found:
        where = f"${CERT_FILE_ENV}, ${CERT_DIR_ENV}, {SYSTEM_CERT_FILES[0]}, {SYSTEM_CERT_DIRS[0]}"
        raise ProviderCallError(f"no system root CA certificates found ({where}); set grpc-tls root-ca-file")
    return b"\n".join(found) + b"\n"


def client_certificate(tls: GrpcTls) -> tuple[bytes, bytes] | None:
    """The client's (PEM key, PEM certificate chain) when both files are named; None otherwise."""
    if not (tls.cert_file and tls.key_file):
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    failed = "failed to load client certificate and key"
    chain = _read(tls.cert_file, "client certificate")
    key = _read(tls.key_file, "client key")
    certificates = pem_certificates(chain)
    if not certificates:
        raise ProviderCallError(f"{failed}: no certificate in {tls.cert_file}")
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise ProviderCallError(f"{failed}: no unencrypted PEM private key in {tls.key_file}") from None

    public = x509.load_pem_x509_certificate(certificates[0]).public_key()
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private_key.public_key().public_bytes(*raw) != public.public_bytes(*raw):
        raise ProviderCallError(
            f"{failed}: the private key in {tls.key_file} does not match the public key of {tls.cert_file}"
        )
    return key, chain
