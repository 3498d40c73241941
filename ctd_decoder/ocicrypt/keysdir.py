"""Loading ``--decryption-keys-path`` into a :class:`DecryptConfig`.

Differences from the Go decoder, all in the operator's favour:

- symbolic links are followed (Kubernetes Secret volumes are symlink farms), loops and non-regular
  files are refused, and a file reached twice is loaded once;
- entries whose name starts with ``..`` (the Secret volume's own bookkeeping) are ignored;
- a file that is no usable key is skipped with a note instead of failing every pull;
- an encrypted private key takes its password from a sibling file ``<name>.password``
  (one trailing newline removed).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from . import config as params
from . import keys
from .config import DecryptConfig
from .errors import KeysDirError, PrivateKeyError

MAX_KEY_FILE_SIZE = 4 * 1024 * 1024
PASSWORD_SUFFIX = ".password"


# Why a file was skipped (:attr:`SkippedFile.kind`).
SKIP_UNREADABLE = "unreadable"
SKIP_NOT_REGULAR = "not-regular"
SKIP_TOO_LARGE = "too-large"
SKIP_EMPTY = "empty"
SKIP_PUBLIC_PGP = "public-pgp"
SKIP_NO_PASSWORD = "no-password"
SKIP_BAD_PASSWORD = "bad-password"
SKIP_NOT_A_KEY = "not-a-key"


@dataclass(frozen=True)
class LoadedFile:
    """A file loaded as a key: the decrypt parameter it went to, and its password file if one was used."""

    path: str
    parameter: str
    password_file: str | None = None


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not loaded: one of the ``SKIP_*`` kinds and the reason in words."""

    path: str
    kind: str
    reason: str


@dataclass
class KeysDir:
    """The keys found in a directory, what each file became, and notes about files that were skipped."""

    config: DecryptConfig = field(default_factory=DecryptConfig)
    notes: list[str] = field(default_factory=list)
    loaded: list[LoadedFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def skip(self, path: str, kind: str, reason: str) -> None:
        """Record that ``path`` was skipped, and the note the decoder prints about it."""
        self.skipped.append(SkippedFile(path, kind, reason))
        self.notes.append(f"skipping {path}: {reason}")


def load_keys_dir(root: str | os.PathLike[str]) -> KeysDir:
    """Walk ``root`` in lexical order and classify every regular file in it."""
    # os.path rather than pathlib: pathlib's import is a measurable part of a small layer's run time.
    root_path = os.fspath(root)
    try:
        root_stat = os.stat(root_path)
    except OSError as err:
        raise KeysDirError(f"cannot open keys directory {root_path}: {err.strerror}") from None
    if not stat.S_ISDIR(root_stat.st_mode):
        raise KeysDirError(f"{root_path} is not a directory")
    result = KeysDir()
    files = _walk(root_path, result)
    listed = set(files)
    for path in files:
        if path.endswith(PASSWORD_SUFFIX) and path[: -len(PASSWORD_SUFFIX)] in listed:
            continue
        data = _read(path)
        if data is None:
            result.skip(path, SKIP_TOO_LARGE, f"larger than {MAX_KEY_FILE_SIZE} bytes, so not a key")
            continue
        _classify(path, data, result)
    return result


def _walk(root: str, result: KeysDir) -> list[str]:
    """Return the regular files below ``root``, following links, each real file once."""
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    found: list[str] = []

    def visit(directory: str) -> None:
        info = os.stat(directory)
        if (info.st_dev, info.st_ino) in seen_dirs:
            return
        seen_dirs.add((info.st_dev, info.st_ino))
        try:
            names = sorted(os.listdir(directory))
        except OSError as err:
            raise KeysDirError(f"cannot list {directory}: {err.strerror}") from None
        for name in names:
            if name.startswith(".."):
                continue
            path = os.path.join(directory, name)
            try:
                info = os.stat(path)
            except OSError as err:
                result.skip(path, SKIP_UNREADABLE, str(err.strerror))
                continue
            if stat.S_ISDIR(info.st_mode):
                visit(path)
            elif not stat.S_ISREG(info.st_mode):
                result.skip(path, SKIP_NOT_REGULAR, "not a regular file")
            elif (info.st_dev, info.st_ino) not in seen_files:
                seen_files.add((info.st_dev, info.st_ino))
                found.append(path)

    visit(root)
    return found


def _read(path: str) -> bytes | None:
    """Return the file's bytes, or None if it is too large to be a key."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE_SIZE + 1)
    except OSError as err:
        raise KeysDirError(f"cannot read {path}: {err.strerror}") from None
    return data if len(data) <= MAX_KEY_FILE_SIZE else None


def _sibling_password(path: str) -> bytes | None:
    password_path = path + PASSWORD_SUFFIX
    if not os.path.isfile(password_path):
        return None
    password = _read(password_path) or b""
    for ending in (b"\r\n", b"\n"):
        if password.endswith(ending):
            return password[: -len(ending)]
    return password


def _classify(path: str, data: bytes, result: KeysDir) -> None:
    config = result.config
    password_name = os.path.basename(path) + PASSWORD_SUFFIX
    if not data.strip():
        result.skip(path, SKIP_EMPTY, "empty file")
        return
    if keys.is_pkcs11_keyfile(data):
        config.add(params.PKCS11_YAMLS, [data])
        result.loaded.append(LoadedFile(path, params.PKCS11_YAMLS))
    elif keys.is_pgp_secret_keyring(data):
        password = _sibling_password(path)
        config.add(params.GPG_PRIVATEKEYS, [data])
        config.add(params.GPG_PRIVATEKEYS_PASSWORDS, [password])
        result.loaded.append(
            LoadedFile(path, params.GPG_PRIVATEKEYS, None if password is None else path + PASSWORD_SUFFIX)
        )
    elif keys.is_pgp_public_keyring(data):
        result.skip(path, SKIP_PUBLIC_PGP, "an OpenPGP public key cannot decrypt")
        return
    else:
        password = _sibling_password(path)
        try:
            keys.parse_private_key(data, password)
        except PrivateKeyError as err:
            if keys.looks_like_certificate(data):
                config.add(params.X509S, [data])
                result.loaded.append(LoadedFile(path, params.X509S))
            elif keys.is_encrypted_private_key(data) and password is None:
                result.skip(path, SKIP_NO_PASSWORD, f"encrypted private key and no {password_name} file")
            elif keys.is_encrypted_private_key(data):
                result.skip(path, SKIP_BAD_PASSWORD, f"{err} (password from {password_name})")
            else:
                result.skip(path, SKIP_NOT_A_KEY, "not a private key, certificate, OpenPGP or PKCS#11 key file")
            return
        config.add(params.PRIVKEYS, [data])
        config.add(params.PRIVKEYS_PASSWORDS, [password])
        result.loaded.append(LoadedFile(path, params.PRIVKEYS, None if password is None else path + PASSWORD_SUFFIX))
