"""The keys-directory checks: ownership and modes, and for every file what the decoder will do with it.

The directory is read with the decoder's own loader, so "loaded as" and "skipped because" are exactly
what a pull will do. Keys are named by type and public-key fingerprint, never by their contents.
"""

from __future__ import annotations

import os
import stat

from ...ocicrypt import (
    EXPOSED_DIRECTORY,
    MAX_KEY_FILE_SIZE,
    PASSWORD_SUFFIX,
    SKIP_BAD_PASSWORD,
    SKIP_NO_PASSWORD,
    SKIP_NOT_A_KEY,
    SKIP_NOT_REGULAR,
    SKIP_PUBLIC_PGP,
    SKIP_UNREADABLE,
    KeysDir,
    LoadedFile,
    OcicryptError,
    describe_private_key,
    describe_public_key,
    load_certificate,
    load_keys_dir,
    parse_private_key,
    public_key_fingerprint,
    public_key_kind,
    spec,
    strip_password_newline,
)
from .report import Report

CHECK_DIR = "keys.dir"
CHECK_FILE = "keys.file"
DIRECTORY = EXPOSED_DIRECTORY
# File names that announce a key: skipping one of them is worth a warning, not a README.
_KEY_SUFFIXES = (".pem", ".key", ".der", ".jwk", ".json", ".gpg", ".asc", ".pgp", ".yaml", ".yml", ".p8", ".crt")


def _check_directory(report: Report, root: str) -> bool:
    try:
        info = os.stat(root)
    except FileNotFoundError:
        report.warning(
            CHECK_DIR,
            f"{root} does not exist: the decoder uses only key providers and keys in the payload",
            f"create it (install -d -m 0700 {root}) and put the node's private keys in it",
        )
        return False
    except OSError as err:
        report.error(CHECK_DIR, f"cannot stat {root}: {err.strerror}", f"make {root} readable by root")
        return False
    if stat.S_ISREG(info.st_mode):
        report.ok(CHECK_DIR, f"{root} is one key file: the decoder loads that file alone, as the Go decoder does")
    elif not stat.S_ISDIR(info.st_mode):
        report.error(
            CHECK_DIR,
            f"{root} is neither a directory nor a key file",
            "point --decryption-keys-path at a directory of key files",
        )
        return False
    return True


def _check_exposures(report: Report, result: KeysDir, root: str) -> None:
    """Report what the loader warns about: files and the directory open to others, or not owned by root."""
    for warning in result.warnings:
        report.warning(CHECK_DIR if warning.subject == DIRECTORY else CHECK_FILE, warning.finding, warning.fix)
    if not any(warning.subject == DIRECTORY for warning in result.warnings):
        info = os.stat(root)
        layout = ", a Kubernetes Secret volume" if result.secret_volume else ""
        report.ok(CHECK_DIR, f"{root} (mode 0{stat.S_IMODE(info.st_mode):o}, uid {info.st_uid}{layout})")


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(MAX_KEY_FILE_SIZE + 1)


def _password(entry: LoadedFile) -> bytes | None:
    if entry.password_file is None:
        return None
    return strip_password_newline(_read(entry.password_file))


def describe_loaded(entry: LoadedFile) -> str:
    """Say what a loaded file is: key type and fingerprint, certificate, ring fingerprints or token URI."""
    data = _read(entry.path)
    password_note = f" (password from {os.path.basename(entry.password_file)})" if entry.password_file else ""
    if entry.parameter == spec.PRIVKEYS:
        key = parse_private_key(data, _password(entry))
        return f"private key, {describe_private_key(key)}{password_note}"
    if entry.parameter == spec.X509S:
        certificate = load_certificate(data)
        assert certificate is not None  # the loader took it as one
        public = describe_public_key(certificate.public_key())
        return f"certificate for {public} (pkcs7 uses it with its private key)"
    if entry.parameter == spec.GPG_PRIVATEKEYS:
        from ...ocicrypt import pgp_secret_key_fingerprints

        fingerprints = pgp_secret_key_fingerprints(data)
        found = ", ".join(fingerprints) or "gpg imported no secret key from it"
        return f"OpenPGP secret key ring: {found}{password_note}"
    from ...ocicrypt import parse_pkcs11_key_file

    return f"PKCS#11 key file for {parse_pkcs11_key_file(data).uri.redacted()}"


def _public_key_fingerprint(entry: LoadedFile) -> str | None:
    data = _read(entry.path)
    if entry.parameter == spec.PRIVKEYS:
        key = parse_private_key(data, _password(entry))
        return public_key_fingerprint(key.public_key())
    if entry.parameter == spec.X509S:
        certificate = load_certificate(data)
        return None if certificate is None else public_key_fingerprint(certificate.public_key())
    return None


def _check_loaded(report: Report, result: KeysDir, root: str) -> None:
    private_fingerprints = {
        _public_key_fingerprint(entry) for entry in result.loaded if entry.parameter == spec.PRIVKEYS
    }
    for entry in result.loaded:
        try:
            description = describe_loaded(entry)
        except (OcicryptError, OSError) as err:
            report.error(CHECK_FILE, f"{entry.path}: loaded, but cannot be described: {err}", f"replace {entry.path}")
            continue
        if entry.parameter == spec.X509S and _public_key_fingerprint(entry) not in private_fingerprints:
            report.warning(
                CHECK_FILE,
                f"{entry.path}: {description}; its private key is not in {root}",
                f"add the private key of {os.path.basename(entry.path)} to {root} (pkcs7 layers need both)",
            )
            continue
        report.ok(CHECK_FILE, f"{entry.path}: loaded as {description}")


def _check_skipped(report: Report, result: KeysDir, root: str) -> None:
    for entry in result.skipped:
        where = f"{entry.path}: skipped, {entry.reason}"
        password_file = os.path.basename(entry.path) + PASSWORD_SUFFIX
        if entry.kind == SKIP_NO_PASSWORD:
            report.error(
                CHECK_FILE,
                where,
                f"write the key's password to {entry.path}{PASSWORD_SUFFIX} (mode 0600), or store the key unencrypted",
            )
        elif entry.kind == SKIP_BAD_PASSWORD:
            report.error(CHECK_FILE, where, f"put the key's right password in {password_file}")
        elif entry.kind == SKIP_PUBLIC_PGP:
            report.warning(
                CHECK_FILE, where, "export the secret key ring (gpg --export-secret-keys) into the directory"
            )
        elif entry.kind in (SKIP_UNREADABLE, SKIP_NOT_REGULAR):
            report.warning(CHECK_FILE, where, f"remove {entry.path} or make it a readable regular file")
        elif entry.path.endswith(PASSWORD_SUFFIX):
            report.warning(
                CHECK_FILE,
                f"{entry.path}: a password file without its key {entry.path.removesuffix(PASSWORD_SUFFIX)}",
                "name it after its key file plus .password, or remove it",
            )
        elif entry.kind == SKIP_NOT_A_KEY and _is_public_key(entry.path):
            report.warning(
                CHECK_FILE,
                f"{entry.path}: skipped, a public key cannot decrypt",
                "put the private key in the directory instead (the public key is for encrypting)",
            )
        elif entry.path.lower().endswith(_KEY_SUFFIXES):
            report.warning(CHECK_FILE, where, f"replace {entry.path} with a PEM, DER or JWK private key, or remove it")
        else:
            report.ok(CHECK_FILE, where)


def _is_public_key(path: str) -> bool:
    try:
        return public_key_kind(_read(path)) is not None
    except OSError:
        return False


def check_keys_dir(report: Report, root: str) -> KeysDir | None:
    """Check ``root`` and every file in it; return what the decoder loads from it (None if nothing)."""
    if not _check_directory(report, root):
        return None
    try:
        result = load_keys_dir(root)
    except OcicryptError as err:
        report.error(CHECK_DIR, f"the decoder cannot use {root}: {err}", f"make {root} and its files readable by root")
        return None
    _check_exposures(report, result, root)
    _check_loaded(report, result, root)
    _check_skipped(report, result, root)
    usable = [entry for entry in result.loaded if entry.parameter != spec.X509S]
    if not usable:
        report.warning(
            CHECK_DIR,
            f"{root} holds no usable key: only key providers can decrypt on this node",
            f"put the node's private keys in {root}",
        )
    return result
