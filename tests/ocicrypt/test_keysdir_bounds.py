"""The keys-directory walk is bounded whatever the directory holds, and says what it left out."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
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
    # Which bound ends it depends on /usr (here: the bytes read); each says so.
    stops = ("stopped walking the keys directory after", "stopped listing", "stopped reading key files after")
    assert any(note.startswith(stops) for note in loaded.notes), loaded.notes[-3:]
    assert time.monotonic() - started < 60  # a guard against hanging, not a speed target (bench/adversarial.py)


def test_thousands_of_small_files_in_sub_directories_do_not_hide_the_key(tmp_path: Path) -> None:
    """5,000 notes in 50 directories, then the key (lexically last): no count of entries stops the walk
    before it, as Go's walk would not stop (the time budget is far above what this costs)."""
    for directory in range(50):
        sub = tmp_path / f"notes-{directory:02d}"
        sub.mkdir()
        for number in range(100):
            (sub / f"note-{number:03d}.txt").write_text(f"note {directory}/{number}\n")
    key = private_pem(new_key("p256"))
    (tmp_path / "zz-node-key.pem").write_bytes(key)
    started = time.monotonic()
    loaded = load_keys_dir(tmp_path)
    assert loaded.config.get(params.PRIVKEYS) == [key]
    assert len(loaded.skipped) == 5000
    assert not any(note.startswith("stopped") for note in loaded.notes)
    assert time.monotonic() - started < keysdir.MAX_WALK_SECONDS


def test_walk_out_of_time_keeps_what_it_read_and_names_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = private_pem(new_key("p256"))
    (tmp_path / "a-key.pem").write_bytes(key)
    for number in range(200):
        (tmp_path / f"b-{number:03d}").write_bytes(b"junk")
    clock = iter(range(10_000))  # each look at the clock one second later: the budget runs out on the way
    monkeypatch.setattr(keysdir, "time", SimpleNamespace(monotonic=lambda: float(next(clock))))
    monkeypatch.setattr(keysdir, "MAX_WALK_SECONDS", 3)
    loaded = load_keys_dir(tmp_path)
    assert loaded.config.get(params.PRIVKEYS) == [key]
    assert loaded.notes[-1] == (
        f"stopped walking the keys directory after 3 s; {tmp_path / 'b-002'} and the rest were not looked at"
    )
    assert [Path(s.path).name for s in loaded.skipped] == ["b-000", "b-001"]


def test_listing_stops_after_its_byte_budget_and_keeps_what_was_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = private_pem(new_key("p256"))
    (tmp_path / "a-key.pem").write_bytes(key)
    wide = tmp_path / "b-wide"
    wide.mkdir()
    for number in range(300):
        (wide / f"entry-{number:03d}").write_bytes(b"junk")
    (tmp_path / "c-later").mkdir()
    (tmp_path / "c-later" / "k.pem").write_bytes(private_pem(new_key("p256")))
    monkeypatch.setattr(keysdir, "MAX_LISTED_BYTES", 4096)
    loaded = load_keys_dir(tmp_path)
    assert loaded.config.get(params.PRIVKEYS) == [key]  # c-later/ is a directory not yet entered: not listed
    assert any(
        note.startswith(f"stopped listing the keys directory after 4096 bytes of names, in {wide}:")
        for note in loaded.notes
    ), loaded.notes[-2:]
    assert 0 < len(loaded.skipped) < 300


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
