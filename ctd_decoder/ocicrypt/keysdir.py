"""Loading ``--decryption-keys-path`` into a :class:`DecryptConfig`.

Differences from the Go decoder, all in the operator's favour:

- symbolic links are followed (Kubernetes Secret volumes are symlink farms), loops and non-regular
  files are refused, and a file reached twice is loaded once;
- entries whose name starts with ``..`` (the Secret volume's own bookkeeping) are ignored;
- a file that is no usable key, or cannot be read, is skipped with a note instead of failing every pull;
- the walk is bounded by time, depth and bytes (names listed, bytes read; files larger than any key
  are not read), not by a count of entries, with a note saying what was left out;
- ``--decryption-keys-path`` may name one key file (Go's ``filepath.Walk`` accepts that too);
- key material that group or others can reach, or (running as root) not owned by root, gets a warning;
- an encrypted private key takes its password from a sibling file ``<name>.password``
  (one trailing newline removed).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator

from . import config as params
from . import keys
from .config import DecryptConfig
from .errors import KeysDirError, PrivateKeyError
from .keywrap.pgp.packets import is_pgp_public_keyring, is_pgp_secret_keyring, secret_keys_need_passphrase

MAX_KEY_FILE_SIZE = 4 * 1024 * 1024
# The walk is bounded whatever the directory holds (a symlink into /usr, a huge tree) by what it costs
# a pull: time and memory, not a count of entries (5,000 notes beside one key take about 0.6 s on a
# busy 2-core machine; Go walks any number). Far above any keys directory, far below a hung pull.
MAX_WALK_SECONDS = 5.0  # walking, reading and classifying together
MAX_WALK_DEPTH = 8
MAX_LISTED_BYTES = 16 * 1024 * 1024  # the paths of the entries looked at, which the walk holds
MAX_BYTES_READ = 32 * 1024 * 1024
PASSWORD_SUFFIX = ".password"
SECRET_VOLUME_DATA = "..data"  # the kubelet's atomic writer links every file through it
# What an :class:`Exposure` is about.
EXPOSED_DIRECTORY = "keys directory"
EXPOSED_KEY = "key file"
EXPOSED_PASSWORD = "password file"


# Why a file was skipped (:attr:`SkippedFile.kind`).
SKIP_UNREADABLE = "unreadable"
SKIP_NOT_REGULAR = "not-regular"
SKIP_TOO_LARGE = "too-large"
SKIP_EMPTY = "empty"
SKIP_PUBLIC_PGP = "public-pgp"
SKIP_NO_PASSWORD = "no-password"
SKIP_BAD_PASSWORD = "bad-password"
SKIP_NOT_A_KEY = "not-a-key"


# Plain classes, not dataclasses: importing dataclasses (and inspect under it) costs about a tenth
# of a small layer's start-up, and this module is on every node-key pull's path.
class LoadedFile:
    """A file loaded as a key: the decrypt parameter it went to, and its password file if one was used."""

    __slots__ = ("parameter", "password_file", "path")

    def __init__(self, path: str, parameter: str, password_file: str | None = None) -> None:
        self.path = path
        self.parameter = parameter
        self.password_file = password_file


class SkippedFile:
    """A file that was not loaded: one of the ``SKIP_*`` kinds and the reason in words."""

    __slots__ = ("kind", "path", "reason")

    def __init__(self, path: str, kind: str, reason: str) -> None:
        self.path = path
        self.kind = kind
        self.reason = reason


class Exposure:
    """Key material (or the directory) that others than root can reach: what, where, why, and the fix."""

    __slots__ = ("fix", "path", "problem", "subject")

    def __init__(self, subject: str, path: str, problem: str, fix: str) -> None:
        self.subject = subject  # one of the EXPOSED_* names
        self.path = path
        self.problem = problem
        self.fix = fix

    @property
    def finding(self) -> str:
        """The warning without its fix, e.g. ``key file /k.pem is open to group or others (mode 0644)``."""
        return f"{self.subject} {self.path} {self.problem}"

    def __str__(self) -> str:
        return f"{self.finding}: {self.fix}"


class KeysDir:
    """The keys found in a directory, what each file became, notes about skipped files, warnings about exposed keys."""

    __slots__ = ("config", "loaded", "notes", "secret_volume", "skipped", "warnings")

    def __init__(self) -> None:
        self.config = DecryptConfig()
        self.notes: list[str] = []
        self.loaded: list[LoadedFile] = []
        self.skipped: list[SkippedFile] = []
        self.warnings: list[Exposure] = []
        self.secret_volume = False  # a Kubernetes Secret volume: the kubelet sets its modes (defaultMode)

    def skip(self, path: str, kind: str, reason: str) -> None:
        """Record that ``path`` was skipped, and the note the decoder prints about it."""
        self.skipped.append(SkippedFile(path, kind, reason))
        self.notes.append(f"skipping {path}: {reason}")


def load_keys_dir(root: str | os.PathLike[str]) -> KeysDir:
    """Walk ``root`` in lexical order and classify every regular file in it (``root`` may be one file)."""
    # os.path rather than pathlib: pathlib's import is a measurable part of a small layer's run time.
    root_path = os.fspath(root)
    try:
        root_stat = os.stat(root_path)
    except OSError as err:
        raise KeysDirError(f"cannot open keys directory {root_path}: {err.strerror}") from None
    result = KeysDir()
    files: Iterator[str]
    if stat.S_ISREG(root_stat.st_mode):
        files = iter([root_path])
    elif stat.S_ISDIR(root_stat.st_mode):
        result.secret_volume = os.path.islink(os.path.join(root_path, SECRET_VOLUME_DATA))
        if not result.secret_volume:
            result.warnings.extend(_exposure(root_path, root_stat, EXPOSED_DIRECTORY, "chmod 700 it"))
        # Each file is read as the walk reaches it, so a budget that runs out keeps what came before.
        files = _walk(root_path, result, time.monotonic() + MAX_WALK_SECONDS)
    else:
        raise KeysDirError(f"{root_path} is neither a directory nor a key file")
    listed: set[str] = set()
    bytes_read = 0
    for path in files:
        listed.add(path)
        # A password file comes right after its key (the key's name is a prefix of it).
        if path.endswith(PASSWORD_SUFFIX) and path[: -len(PASSWORD_SUFFIX)] in listed:
            continue
        if bytes_read > MAX_BYTES_READ:
            result.notes.append(
                f"stopped reading key files after {MAX_BYTES_READ} bytes; {path} and later files skipped"
            )
            break
        try:
            data, info = _read(path)
        except OSError as err:
            result.skip(path, SKIP_UNREADABLE, f"cannot read it: {err.strerror}")
            continue
        if data is None:
            result.skip(path, SKIP_TOO_LARGE, f"larger than {MAX_KEY_FILE_SIZE} bytes, so not a key")
            continue
        bytes_read += len(data)
        try:
            secret = _classify(path, data, result)
        except OSError as err:
            password_name = os.path.basename(path) + PASSWORD_SUFFIX
            result.skip(path, SKIP_UNREADABLE, f"cannot read {password_name}: {err.strerror}")
            continue
        except (ValueError, TypeError, ArithmeticError, RecursionError) as err:
            # A parser's unforeseen complaint about one file must not end every pull.
            result.skip(path, SKIP_NOT_A_KEY, f"could not be read as a key ({type(err).__name__})")
            continue
        if secret:
            result.warnings.extend(_exposure(path, info, EXPOSED_KEY, _file_fix(result)))
    return result


def _file_fix(result: KeysDir) -> str:
    return "set defaultMode: 0400 on the Secret volume" if result.secret_volume else "chmod 600 it"


def _exposure(path: str, info: os.stat_result, what: str, fix: str) -> list[Exposure]:
    """Warn if group or others can reach ``path``, or if it is not root's while we run as root."""
    warnings = []
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        warnings.append(Exposure(what, path, f"is open to group or others (mode {mode:04o})", fix))
    if os.geteuid() == 0 and info.st_uid != 0:
        warnings.append(Exposure(what, path, f"is owned by uid {info.st_uid}, not root", "chown root it"))
    return warnings


def _walk(root: str, result: KeysDir, deadline: float) -> Iterator[str]:
    """Yield the regular files below ``root`` in lexical order, following links, each real file once.

    At ``deadline`` the walk ends; once :data:`MAX_LISTED_BYTES` of names are listed, no further
    directory is listed (the entries already listed are still looked at). A note says which.
    """
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    listed_bytes = 0
    listing_cut = False
    timed_out = False

    def names_of(directory: str) -> list[str]:
        """The directory's names in lexical order, as many as the listing budget holds."""
        nonlocal listed_bytes, listing_cut
        names = []
        with os.scandir(directory) as entries:
            for entry in entries:
                listed_bytes += len(entry.name) + len(directory) + 1
                if listed_bytes > MAX_LISTED_BYTES:
                    listing_cut = True
                    result.notes.append(
                        f"stopped listing the keys directory after {MAX_LISTED_BYTES} bytes of names, in "
                        f"{directory}: its other entries and the directories not yet entered were not looked at"
                    )
                    break
                names.append(entry.name)
        return sorted(names)

    def visit(directory: str, depth: int) -> Iterator[str]:
        """Yield the files of ``directory`` and below, until a limit."""
        nonlocal timed_out
        info = os.stat(directory)
        if listing_cut or (info.st_dev, info.st_ino) in seen_dirs:
            return
        seen_dirs.add((info.st_dev, info.st_ino))
        try:
            names = names_of(directory)
        except OSError as err:
            if depth == 0:
                raise KeysDirError(f"cannot list {directory}: {err.strerror}") from None
            result.skip(directory, SKIP_UNREADABLE, f"cannot list it: {err.strerror}")
            return
        for name in names:
            if name.startswith(".."):
                continue
            path = os.path.join(directory, name)
            if time.monotonic() > deadline:
                timed_out = True
                result.notes.append(
                    f"stopped walking the keys directory after {MAX_WALK_SECONDS:g} s; "
                    f"{path} and the rest were not looked at"
                )
                return
            try:
                info = os.stat(path)
            except OSError as err:
                result.skip(path, SKIP_UNREADABLE, str(err.strerror))
                continue
            if stat.S_ISDIR(info.st_mode):
                if depth + 1 > MAX_WALK_DEPTH:
                    result.skip(path, SKIP_NOT_REGULAR, f"a directory more than {MAX_WALK_DEPTH} levels deep")
                    continue
                yield from visit(path, depth + 1)
                if timed_out:
                    return
            elif not stat.S_ISREG(info.st_mode):
                result.skip(path, SKIP_NOT_REGULAR, "not a regular file")
            elif info.st_size > MAX_KEY_FILE_SIZE:
                result.skip(path, SKIP_TOO_LARGE, f"larger than {MAX_KEY_FILE_SIZE} bytes, so not a key")
            elif (info.st_dev, info.st_ino) not in seen_files:
                seen_files.add((info.st_dev, info.st_ino))
                yield path

    yield from visit(root, 0)


def _read(path: str) -> tuple[bytes | None, os.stat_result]:
    """Return the file's bytes (None if it is too large to be a key) and its status; raise OSError."""
    # O_NONBLOCK: a file replaced by a FIFO after the walk must not hang the pull.
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file")
        data = handle.read(MAX_KEY_FILE_SIZE + 1)
    return (data if len(data) <= MAX_KEY_FILE_SIZE else None), info


def _sibling_password(path: str, result: KeysDir) -> bytes | None:
    """Return the password in ``<path>.password`` (None if there is none); raise OSError if unreadable."""
    password_path = path + PASSWORD_SUFFIX
    if not os.path.isfile(password_path):
        return None
    data, info = _read(password_path)
    result.warnings.extend(_exposure(password_path, info, EXPOSED_PASSWORD, _file_fix(result)))
    return strip_password_newline(data or b"")


def strip_password_newline(data: bytes) -> bytes:
    """A password file's contents without its one trailing line break (LF or CRLF)."""
    for ending in (b"\r\n", b"\n"):
        if data.endswith(ending):
            return data[: -len(ending)]
    return data


def _classify(path: str, data: bytes, result: KeysDir) -> bool:
    """Load ``data`` into the config or record why not; return whether it is secret material."""
    config = result.config
    password_name = os.path.basename(path) + PASSWORD_SUFFIX
    if not data.strip():
        result.skip(path, SKIP_EMPTY, "empty file")
        return False
    if keys.is_pkcs11_keyfile(data):
        config.add(params.PKCS11_YAMLS, [data])
        result.loaded.append(LoadedFile(path, params.PKCS11_YAMLS))
    elif is_pgp_secret_keyring(data):
        password = _sibling_password(path, result)
        if password is None and secret_keys_need_passphrase(data):
            result.skip(
                path,
                SKIP_NO_PASSWORD,
                f"passphrase-protected OpenPGP secret key and no {password_name} file: "
                f"create {path}{PASSWORD_SUFFIX} holding the passphrase",
            )
            return True
        config.add(params.GPG_PRIVATEKEYS, [data])
        config.add(params.GPG_PRIVATEKEYS_PASSWORDS, [password])
        result.loaded.append(
            LoadedFile(path, params.GPG_PRIVATEKEYS, None if password is None else path + PASSWORD_SUFFIX)
        )
    elif is_pgp_public_keyring(data):
        result.skip(path, SKIP_PUBLIC_PGP, "an OpenPGP public key cannot decrypt; put the secret key here")
        return False
    else:
        password = _sibling_password(path, result)
        try:
            keys.parse_private_key(data, password)
        except PrivateKeyError as err:
            if keys.looks_like_certificate(data):
                config.add(params.X509S, [data])
                result.loaded.append(LoadedFile(path, params.X509S))
                return False
            if (public_kind := keys.public_key_kind(data)) is not None:
                result.skip(path, SKIP_NOT_A_KEY, f"{public_kind}, which cannot decrypt; put the private key here")
                return False
            if keys.is_encrypted_private_key(data) and password is None:
                result.skip(
                    path,
                    SKIP_NO_PASSWORD,
                    f"encrypted private key and no {password_name} file: create {path}{PASSWORD_SUFFIX} "
                    "holding the password",
                )
                return True
            if keys.is_encrypted_private_key(data):
                result.skip(path, SKIP_BAD_PASSWORD, f"{err} (password from {password_name})")
                return True
            result.skip(path, SKIP_NOT_A_KEY, "not a private key, certificate, OpenPGP or PKCS#11 key file")
            return False
        config.add(params.PRIVKEYS, [data])
        config.add(params.PRIVKEYS_PASSWORDS, [password])
        result.loaded.append(LoadedFile(path, params.PRIVKEYS, None if password is None else path + PASSWORD_SUFFIX))
    return True
