"""The keys-directory walk is bounded whatever the directory holds, and says what it left out."""

from __future__ import annotations

import time
from pathlib import Path

from support.keygen import new_key, private_pem
from support.secrets import kubernetes_secret_volume

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt import keysdir
from ctd_decoder.ocicrypt.keysdir import load_keys_dir


def test_directory_symlink_into_usr_stops_at_the_walk_limits(tmp_path: Path) -> None:
    key = private_pem(new_key("p256"))
    (tmp_path / "a.pem").write_bytes(key)
    (tmp_path / "usr").symlink_to("/usr")
    started = time.monotonic()
    loaded = load_keys_dir(tmp_path)
    assert loaded.config.get(params.PRIVKEYS) == [key]
    assert any(note.startswith("stopped walking the keys directory after") for note in loaded.notes)
    assert time.monotonic() - started < 60  # a guard against hanging, not a speed target (bench/adversarial.py)


def test_wide_directory_stops_after_the_file_limit_with_a_note(tmp_path: Path) -> None:
    for number in range(keysdir.MAX_KEY_FILES + 50):
        (tmp_path / f"f{number:05d}").write_bytes(b"junk")
    loaded = load_keys_dir(tmp_path)
    assert len(loaded.skipped) == keysdir.MAX_KEY_FILES
    assert f"f{keysdir.MAX_KEY_FILES:05d} and the rest were not looked at" in loaded.notes[0]


def test_directories_deeper_than_the_limit_are_skipped_with_a_note(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*[f"d{level}" for level in range(keysdir.MAX_WALK_DEPTH + 2)])
    deep.mkdir(parents=True)
    (deep / "k.pem").write_bytes(private_pem(new_key("p256")))
    shallow = tmp_path.joinpath(*[f"d{level}" for level in range(keysdir.MAX_WALK_DEPTH)])
    key = private_pem(new_key("p256"))
    (shallow / "k.pem").write_bytes(key)
    loaded = load_keys_dir(tmp_path)
    assert loaded.config.get(params.PRIVKEYS) == [key]
    assert any(f"more than {keysdir.MAX_WALK_DEPTH} levels deep" in note for note in loaded.notes)


def test_file_larger_than_any_key_is_skipped_by_its_size_without_being_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.img"
    with huge.open("wb") as handle:
        handle.truncate(8 * keysdir.MAX_KEY_FILE_SIZE)  # sparse: its size says enough
    loaded = load_keys_dir(tmp_path)
    assert [(s.path, s.kind) for s in loaded.skipped] == [(str(huge), keysdir.SKIP_TOO_LARGE)]


def test_reading_stops_after_the_byte_limit(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(keysdir, "MAX_BYTES_READ", 10_000)
    for number in range(5):
        (tmp_path / f"f{number}").write_bytes(b"x" * 4000)
    loaded = load_keys_dir(tmp_path)
    assert any(note.startswith("stopped reading key files after 10000 bytes") for note in loaded.notes)
    assert len(loaded.skipped) == 3


def test_kubernetes_secret_volume_still_loads_within_the_limits(tmp_path: Path) -> None:
    keys = {f"k{number}.pem": private_pem(new_key("p256")) for number in range(3)}
    kubernetes_secret_volume(tmp_path, keys)
    loaded = load_keys_dir(tmp_path)
    assert loaded.config.get(params.PRIVKEYS) == list(keys.values())
    assert loaded.notes == []


def test_malformed_jwk_files_are_notes_and_the_good_key_still_loads(tmp_path: Path) -> None:
    bad = {
        "a.jwk": b'{"kty":"RSA","n":1,"e":2,"d":3}',
        "b.jwk": b'{"kty":"EC","crv":["P-256"],"x":"AA","y":"AA","d":"AA"}',
        "c.jwk": b"[" * 100_000 + b"]" * 100_000,
        "d.jwk": b'{"kty":' * 100_000 + b"1" + b"}" * 100_000,
        "e.jwk": b'{"kty":"RSA","n":"AA","e":"AQAB","d":"AQ"}',
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    key = private_pem(new_key("p256"))
    (tmp_path / "z.pem").write_bytes(key)
    loaded = load_keys_dir(tmp_path)
    assert loaded.config.get(params.PRIVKEYS) == [key]
    assert sorted(Path(s.path).name for s in loaded.skipped) == sorted(bad)
