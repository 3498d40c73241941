"""File operations of the node installer: atomic writes with explicit modes, and fingerprints."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile


def sha256_file(path: str) -> str | None:
    """The SHA-256 of a file's bytes, or None if it does not exist (a symlink is followed)."""
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except FileNotFoundError:
        return None


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 of ``data`` as hex."""
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: str, data: bytes, mode: int) -> os.stat_result:
    """Write ``data`` to ``path`` through a temp file in the same directory renamed over it.

    The temp file has ``mode`` before any byte is written, so a key is never readable by others,
    and a reader sees the old file or the new one, never a part. Returns the new file's stat.
    """
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(prefix=".ctd-node-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return os.stat(path)


def make_dirs(path: str, mode: int, created: list[str], host_name: str) -> None:
    """Create ``path`` with ``mode`` and missing parents with 0755; append the host names of those created.

    ``host_name`` is the host's name of ``path``; parents' host names are derived from it.
    """
    missing: list[tuple[str, str]] = []
    local, host = path, host_name
    while not os.path.isdir(local):
        missing.append((local, host))
        local, host = os.path.dirname(local), os.path.dirname(host)
    for local, host in reversed(missing):
        wanted = mode if local == path else 0o755
        os.mkdir(local, wanted)
        os.chmod(local, wanted)  # mkdir's mode is masked by the umask
        created.append(host)


def remove_empty_dirs(local_dirs: list[str]) -> None:
    """Remove the given directories, deepest first, each only if it is empty."""
    for local in sorted(local_dirs, key=len, reverse=True):
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(local)


def write_if_changed(path: str, data: bytes, mode: int) -> bool:
    """:func:`atomic_write` unless ``path`` already holds ``data``; return whether it wrote."""
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return False
    except FileNotFoundError:
        pass
    atomic_write(path, data, mode)
    return True
