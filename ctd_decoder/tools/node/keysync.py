"""Keeping the host keys directory in step with a Kubernetes Secret volume.

The kubelet writes a Secret volume atomically: the files live in a timestamped directory, ``..data``
is a symlink to it, each key is a symlink ``NAME -> ..data/NAME``, and an update writes a new
directory and renames ``..data_tmp`` over ``..data``. The syncer reads one such directory as a
whole, so it never mixes two versions of the Secret.

Each Secret key becomes ``KEYS_DIR/NAME`` (0600, the directory 0700), written atomically; the
``.password`` convention of the keys directory needs nothing more (``key.pem.password`` is a Secret
key like any other); the key ``ocicrypt_keyprovider.conf`` becomes the key-provider config instead.
A key that leaves the Secret is removed from the host (revocation). Files the syncer did not write
are never changed or removed: its ledger records each file it wrote by inode, mtime and size,
never by content, so it holds nothing derived from a key.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .fsops import atomic_write, make_dirs, remove_empty_dirs, write_if_changed
from .paths import KEYPROVIDER_CONFIG, KEYPROVIDER_SECRET_KEY, KEYS_DIR, KEYS_LEDGER, HostLayout

DATA_LINK = "..data"
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")  # what the API server accepts as a Secret data key


class SecretVolumeError(ValueError):
    """The Secret volume cannot be read as one."""


def read_secret_volume(directory: str) -> tuple[str, dict[str, bytes]]:
    """Return (version, files) of a Secret volume; version is the ``..data`` target ('' if none).

    Without ``..data`` (a plain directory) the regular files at its top are the Secret.
    """
    link = os.path.join(directory, DATA_LINK)
    version = os.readlink(link) if os.path.islink(link) else ""
    source = os.path.join(directory, version) if version else directory
    try:
        names = sorted(os.listdir(source))
    except FileNotFoundError:
        raise SecretVolumeError(f"{directory} is not a mounted Secret volume") from None
    files: dict[str, bytes] = {}
    for name in names:
        path = os.path.join(source, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        if not _SECRET_KEY.match(name):
            raise SecretVolumeError(f"{name!r} is not a Secret key name")
        with open(path, "rb") as handle:
            files[name] = handle.read()
    return version, files


def _fingerprint(stat: os.stat_result) -> list[int]:
    return [stat.st_ino, stat.st_mtime_ns, stat.st_size]


@dataclass
class KeysLedger:
    """The files the syncer wrote (host path -> fingerprint) and the directories it created."""

    files: dict[str, list[int]] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, local_path: str) -> KeysLedger:
        try:
            with open(local_path, "rb") as handle:
                raw: Any = json.loads(handle.read())
        except FileNotFoundError:
            return cls()
        except ValueError:
            raise SecretVolumeError(f"{local_path} is not the key syncer's ledger") from None
        return cls({str(k): [int(n) for n in v] for k, v in raw.get("files", {}).items()}, list(raw.get("dirs", [])))

    def write(self, local_path: str) -> None:
        data = json.dumps({"format": 1, "files": self.files, "dirs": self.dirs}, indent=2, sort_keys=True) + "\n"
        write_if_changed(local_path, data.encode(), 0o600)


@dataclass
class SyncResult:
    """What one sync did, by host path (names only, never contents)."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # not written by the syncer

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)

    def lines(self) -> list[str]:
        """One line per event, for the log."""
        return (
            [f"key written: {p}" for p in self.written]
            + [f"key removed (no longer in the Secret): {p}" for p in self.removed]
            + [f"left alone (not written by ocicrypt node): {p}" for p in self.left_alone]
        )


def host_target(name: str) -> str:
    """The host path of one Secret key."""
    return KEYPROVIDER_CONFIG if name == KEYPROVIDER_SECRET_KEY else f"{KEYS_DIR}/{name}"


def _ours(local: str, fingerprint: list[int] | None) -> bool:
    try:
        return fingerprint is not None and _fingerprint(os.lstat(local)) == fingerprint
    except FileNotFoundError:
        return False


def sync(layout: HostLayout, files: dict[str, bytes]) -> SyncResult:
    """Make the host's keys those in ``files`` (a Secret's contents); see the module docstring."""
    ledger_path = layout.local(KEYS_LEDGER)
    ledger = KeysLedger.read(ledger_path)
    result = SyncResult()
    make_dirs(layout.local(KEYS_DIR), 0o700, ledger.dirs, KEYS_DIR)
    wanted = {host_target(name): content for name, content in files.items()}
    for host_path, content in sorted(wanted.items()):
        local = layout.local(host_path)
        recorded = ledger.files.get(host_path)
        if os.path.lexists(local) and not _ours(local, recorded):
            result.left_alone.append(host_path)
            ledger.files.pop(host_path, None)
            continue
        if _read(local) == content:
            continue
        ledger.files[host_path] = _fingerprint(atomic_write(local, content, 0o600))
        result.written.append(host_path)
    for host_path in sorted(set(ledger.files) - set(wanted)):
        local = layout.local(host_path)
        if _ours(local, ledger.files[host_path]):
            os.unlink(local)
            result.removed.append(host_path)
        elif os.path.lexists(local):
            result.left_alone.append(host_path)
        del ledger.files[host_path]
    ledger.write(ledger_path)
    return result


def _read(local: str) -> bytes | None:
    try:
        with open(local, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def remove_all(layout: HostLayout) -> SyncResult:
    """Remove every file the syncer wrote and still owns, the directories it created if empty, and its
    ledger (``uninstall``)."""
    result = sync(layout, {})
    ledger_path = layout.local(KEYS_LEDGER)
    ledger = KeysLedger.read(ledger_path)
    os.unlink(ledger_path)
    remove_empty_dirs([layout.local(d) for d in ledger.dirs])
    return result


def watch(
    layout: HostLayout,
    secret_dir: str,
    interval: float,
    report: Callable[[str], None],
    rounds: int | None = None,
) -> None:
    """Sync now, then again whenever the Secret volume's ``..data`` target changes (checked every
    ``interval`` seconds; a full comparison every 30 checks catches edits of a plain directory).
    ``rounds`` bounds the loop (tests); None runs until the process is stopped."""
    last_version: str | None = None
    count = 0
    while rounds is None or count < rounds:
        link = os.path.join(secret_dir, DATA_LINK)
        version = os.readlink(link) if os.path.islink(link) else ""
        if version != last_version or count % 30 == 0:
            try:
                version, files = read_secret_volume(secret_dir)
                for line in sync(layout, files).lines():
                    report(line)
                last_version = version
            except FileNotFoundError:
                pass  # the kubelet swapped ..data while we read: the next round reads the new one
        count += 1
        time.sleep(interval)
