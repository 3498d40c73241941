"""``--recipient SCHEME:VALUE`` and ``--key FILE[:PASSWORD]`` as skopeo and ctr-enc spell them.

Recipients: ``jwe:PUBKEY``, ``pkcs7:CERT``, ``pgp:EMAIL-OR-KEYID`` (keys from ``--gpg-homedir`` or the
user's GnuPG), ``pkcs11:KEY.yaml`` or ``pkcs11:PUBKEY``, ``provider:NAME[:ATTRS]``.

Keys: ``FILE[:PASSWORD]`` where FILE is a private key, an OpenPGP secret key ring, a PKCS#11 key file
or a certificate (PKCS#7 needs it to find its recipient); the password is ``pass=X``, ``file=PATH``,
``fd=N`` or the literal text. ``provider:NAME[:ATTRS]`` asks a key provider; ``pkcs11:FILE`` is a
PKCS#11 key file. Messages name files, never their contents or passwords.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from ..ocicrypt import (
    MAX_KEY_FILE_SIZE,
    DecryptConfig,
    EncryptConfig,
    FileTooLargeError,
    OcicryptError,
    is_pgp_secret_keyring,
    is_pkcs11_keyfile,
    looks_like_certificate,
    parse_private_key,
    read_bounded,
    spec,
)

SCHEMES = ("jwe", "pkcs7", "pgp", "pkcs11", "provider")


class ArgumentError(OcicryptError):
    """A ``--recipient`` or ``--key`` argument cannot be used."""


def _read(path: str, what: str) -> bytes:
    try:
        return read_bounded(path, MAX_KEY_FILE_SIZE)
    except OSError as err:
        raise ArgumentError(f"cannot read {what} {path}: {err.strerror}") from None
    except FileTooLargeError:
        raise ArgumentError(f"{what} {path} is larger than {MAX_KEY_FILE_SIZE} bytes, so not a key") from None


def _is_public_key(data: bytes) -> bool:
    from ..ocicrypt import load_der_public_key, load_pem_public_key

    for load in (load_pem_public_key, load_der_public_key):
        try:
            load(data)
        except (ValueError, TypeError):
            continue
        return True
    return data.lstrip().startswith(b"{") and b'"kty"' in data and b'"d"' not in data


def _provider_parameter(value: str) -> tuple[str, bytes]:
    name, colon, attributes = value.partition(":")
    if not name:
        raise ArgumentError("provider: needs a key provider name (provider:NAME[:ATTRS])")
    return name, attributes.encode() if colon else b"Enabled"


def export_gpg_public_keys(homedir: str | None, recipients: list[str]) -> bytes:
    """Export the recipients' public keys with ``gpg --export`` (from ``homedir`` if given)."""
    command = ["gpg", "--batch", "--no-tty"] + (["--homedir", homedir] if homedir else []) + ["--export", *recipients]
    try:
        result = subprocess.run(command, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ArgumentError(f"cannot run gpg to export the pgp recipients' keys: {err}") from None
    if result.returncode != 0 or not result.stdout:
        where = homedir or "the user's GnuPG home"
        raise ArgumentError(f"gpg found no public key for pgp recipients {', '.join(recipients)} in {where}")
    return result.stdout


def encrypt_config(recipients: Sequence[str], gpg_homedir: str | None = None) -> EncryptConfig:
    """Return the encrypt config for ``--recipient`` arguments; raise :class:`ArgumentError` on bad ones."""
    ec = EncryptConfig()
    gpg_recipients: list[str] = []
    for recipient in recipients:
        scheme, colon, value = recipient.partition(":")
        if not colon or not value:
            raise ArgumentError(f"invalid recipient {recipient!r}: expected SCHEME:VALUE with SCHEME one of {SCHEMES}")
        if scheme == "pgp":
            gpg_recipients.append(value)
        elif scheme == "jwe":
            data = _read(value, "jwe recipient public key")
            if not _is_public_key(data):
                raise ArgumentError(f"jwe recipient {value} is not a public key")
            ec.add(spec.PUBKEYS, [data])
        elif scheme == "pkcs7":
            data = _read(value, "pkcs7 recipient certificate")
            if not looks_like_certificate(data):
                raise ArgumentError(f"pkcs7 recipient {value} is not an x509 certificate")
            ec.add(spec.X509S, [data])
        elif scheme == "pkcs11":
            data = _read(value, "pkcs11 recipient")
            if is_pkcs11_keyfile(data):
                ec.add(spec.PKCS11_YAMLS, [data])
            elif _is_public_key(data):
                ec.add(spec.PKCS11_PUBKEYS, [data])
            else:
                raise ArgumentError(f"pkcs11 recipient {value} is neither a PKCS#11 key file nor a public key")
        elif scheme == "provider":
            name, parameter = _provider_parameter(value)
            ec.add(name, [parameter])
        else:
            raise ArgumentError(f"unknown recipient scheme {scheme!r} in {recipient!r} (schemes: {', '.join(SCHEMES)})")
    if gpg_homedir and not gpg_recipients:
        raise ArgumentError(f"--gpg-homedir {gpg_homedir} is used only to find pgp: recipients, and none was given")
    if gpg_recipients:
        ec.add(spec.GPG_RECIPIENTS, [value.encode() for value in gpg_recipients])
        ec.add(spec.GPG_PUBKEYRINGFILE, [export_gpg_public_keys(gpg_homedir, gpg_recipients)])
    return ec


def _fingerprint(scheme: str, value: str) -> str | None:
    """The ``SHA256:...`` fingerprint (as the doctor prints it) of a recipient's public key, if it has one."""
    from ..ocicrypt import load_certificate, load_der_public_key, load_pem_public_key, public_key_fingerprint

    if scheme not in ("jwe", "pkcs7", "pkcs11"):
        return None
    try:
        data = _read(value, "recipient")
    except ArgumentError:
        return None
    if scheme == "pkcs7":
        certificate = load_certificate(data)
        return None if certificate is None else public_key_fingerprint(certificate.public_key())
    for load in (load_pem_public_key, load_der_public_key):
        try:
            return public_key_fingerprint(load(data))
        except (ValueError, TypeError):
            continue
    return None


def describe_recipients(recipients: Sequence[str]) -> list[dict[str, str | None]]:
    """The ``--recipient`` arguments as ``{scheme, recipient, fingerprint}`` (fingerprint: None for a
    JWK, a PKCS#11 key file, a pgp user or a key provider, whose keys have no SubjectPublicKeyInfo here)."""
    described: list[dict[str, str | None]] = []
    for recipient in recipients:
        scheme, _, value = recipient.partition(":")
        described.append({"scheme": scheme, "recipient": value, "fingerprint": _fingerprint(scheme, value)})
    return described


def _password(text: str) -> bytes:
    if text.startswith("pass="):
        return text[5:].encode()
    if text.startswith("file="):
        data = _read(text[5:], "password file")
        return data[:-1] if data.endswith(b"\n") else data
    if text.startswith("fd="):
        try:
            with os.fdopen(int(text[3:]), "rb", closefd=False) as handle:
                return handle.read(MAX_KEY_FILE_SIZE).rstrip(b"\n")
        except (ValueError, OSError):
            raise ArgumentError("cannot read the key password from the given fd") from None
    return text.encode()


def decrypt_config(key_arguments: Sequence[str], dec_recipients: Sequence[str] = ()) -> DecryptConfig:
    """Return the decrypt config for ``--key`` (and ctr-enc's ``--dec-recipient``) arguments."""
    dc = DecryptConfig()
    for argument in key_arguments:
        if argument.startswith("provider:"):
            name, parameter = _provider_parameter(argument[len("provider:") :])
            dc.add(name, [parameter])
            continue
        argument = argument.removeprefix("pkcs11:")
        path, colon, password_text = argument.partition(":")
        password = _password(password_text) if colon else None
        data = _read(path, "key file")
        if is_pkcs11_keyfile(data):
            dc.add(spec.PKCS11_YAMLS, [data])
        elif is_pgp_secret_keyring(data):
            dc.add(spec.GPG_PRIVATEKEYS, [data])
            dc.add(spec.GPG_PRIVATEKEYS_PASSWORDS, [password])
        elif looks_like_certificate(data):
            dc.add(spec.X509S, [data])
        else:
            try:
                parse_private_key(data, password)
            except OcicryptError as err:
                raise ArgumentError(f"key file {path}: {err}") from None
            dc.add(spec.PRIVKEYS, [data])
            dc.add(spec.PRIVKEYS_PASSWORDS, [password])
    for recipient in dec_recipients:
        scheme, _, value = recipient.partition(":")
        if scheme != "pkcs7" or not value:
            raise ArgumentError(f"invalid --dec-recipient {recipient!r}: expected pkcs7:CERT")
        data = _read(value, "pkcs7 certificate")
        if not looks_like_certificate(data):
            raise ArgumentError(f"--dec-recipient {value} is not an x509 certificate")
        dc.add(spec.X509S, [data])
    return dc
