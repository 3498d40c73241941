"""The Secret volume key syncer on a temporary host root, with volumes laid out and updated as the
kubelet's atomic writer does (support.secrets)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support.secrets import kubernetes_secret_volume, update_secret_volume

from ctd_decoder.tools.node import keysync, paths
from ctd_decoder.tools.node.paths import HostLayout

KEY = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
OTHER = b"-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n"


def host(tmp_path: Path) -> tuple[HostLayout, Path]:
    root = tmp_path / "host"
    root.mkdir()
    return HostLayout(str(root)), root / paths.KEYS_DIR.lstrip("/")


def sync_volume(layout: HostLayout, volume: Path) -> keysync.SyncResult:
    _, files = keysync.read_secret_volume(str(volume))
    return keysync.sync(layout, files)


def test_keys_modes_password_and_provider_config(tmp_path: Path) -> None:
    layout, keys = host(tmp_path)
    volume = tmp_path / "secret"
    provider = b'{"key-providers": {}}\n'
    kubernetes_secret_volume(
        volume, {"app.pem": KEY, "app.pem.password": b"pw\n", paths.KEYPROVIDER_SECRET_KEY: provider}
    )
    result = sync_volume(layout, volume)
    assert sorted(result.written) == sorted(
        [f"{paths.KEYS_DIR}/app.pem", f"{paths.KEYS_DIR}/app.pem.password", paths.KEYPROVIDER_CONFIG]
    )
    assert (keys / "app.pem").read_bytes() == KEY and (keys / "app.pem.password").read_bytes() == b"pw\n"
    assert Path(layout.local(paths.KEYPROVIDER_CONFIG)).read_bytes() == provider
    assert not (keys / paths.KEYPROVIDER_SECRET_KEY).exists()
    assert keys.stat().st_mode & 0o777 == 0o700
    for name in ("app.pem", "app.pem.password"):
        assert (keys / name).stat().st_mode & 0o777 == 0o600
        assert not (keys / name).is_symlink()
    assert not list(keys.glob(".ctd-node-*")), "a temp file was left behind"
    ledger = Path(layout.local(paths.KEYS_LEDGER)).read_bytes()
    assert hashlib.sha256(KEY).hexdigest().encode() not in ledger and b"AAAA" not in ledger
    assert not sync_volume(layout, volume).changed  # nothing to do the second time


def test_update_rotate_and_revoke_follow_the_data_swap(tmp_path: Path) -> None:
    layout, keys = host(tmp_path)
    volume = tmp_path / "secret"
    kubernetes_secret_volume(volume, {"a.pem": KEY, "b.pem": KEY})
    sync_volume(layout, volume)
    inode = (keys / "a.pem").stat().st_ino
    update_secret_volume(volume, {"a.pem": OTHER})
    result = sync_volume(layout, volume)
    assert result.written == [f"{paths.KEYS_DIR}/a.pem"] and result.removed == [f"{paths.KEYS_DIR}/b.pem"]
    assert (keys / "a.pem").read_bytes() == OTHER and (keys / "a.pem").stat().st_ino != inode  # renamed over
    assert not (keys / "b.pem").exists()


def test_files_it_did_not_write_are_never_touched(tmp_path: Path) -> None:
    layout, keys = host(tmp_path)
    keys.mkdir(parents=True, mode=0o700)
    (keys / "theirs.pem").write_bytes(OTHER)
    volume = tmp_path / "secret"
    kubernetes_secret_volume(volume, {"theirs.pem": KEY, "ours.pem": KEY})
    result = sync_volume(layout, volume)
    assert result.left_alone == [f"{paths.KEYS_DIR}/theirs.pem"]
    assert (keys / "theirs.pem").read_bytes() == OTHER
    # Ours, edited by an administrator since, is theirs now: revocation leaves it.
    (keys / "ours.pem").write_bytes(OTHER + b"\n")
    update_secret_volume(volume, {})
    result = sync_volume(layout, volume)
    assert result.removed == [] and (keys / "ours.pem").exists() and (keys / "theirs.pem").exists()
    assert "left alone" in "\n".join(result.lines())


def test_remove_all_takes_back_only_its_own(tmp_path: Path) -> None:
    layout, keys = host(tmp_path)
    volume = tmp_path / "secret"
    kubernetes_secret_volume(volume, {"a.pem": KEY})
    sync_volume(layout, volume)
    result = keysync.remove_all(layout)
    assert result.removed == [f"{paths.KEYS_DIR}/a.pem"]
    assert not keys.exists(), "the keys directory it created is removed once empty"
    assert not Path(layout.local(paths.KEYS_LEDGER)).exists()


def test_watch_follows_a_swap_without_restart(tmp_path: Path) -> None:
    layout, keys = host(tmp_path)
    volume = tmp_path / "secret"
    kubernetes_secret_volume(volume, {"a.pem": KEY})
    lines: list[str] = []
    keysync.watch(layout, str(volume), 0.0, lines.append, rounds=1)
    update_secret_volume(volume, {"b.pem": OTHER})
    keysync.watch(layout, str(volume), 0.0, lines.append, rounds=1)
    assert (keys / "b.pem").read_bytes() == OTHER and not (keys / "a.pem").exists()
    assert lines == [
        f"key written: {paths.KEYS_DIR}/a.pem",
        f"key written: {paths.KEYS_DIR}/b.pem",
        f"key removed (no longer in the Secret): {paths.KEYS_DIR}/a.pem",
    ]


def test_not_a_secret_volume(tmp_path: Path) -> None:
    with pytest.raises(keysync.SecretVolumeError, match="not a mounted Secret volume"):
        keysync.read_secret_volume(str(tmp_path / "missing"))
    (tmp_path / "bad name").write_bytes(KEY)
    with pytest.raises(keysync.SecretVolumeError, match="not a Secret key name"):
        keysync.read_secret_volume(str(tmp_path))
