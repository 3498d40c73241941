"""Descriptor recovery's parts on their own, and the decoder recovering from a content store that this
test process holds a blob of open (as containerd does). The real pulls are in tests/e2e/test_recovery_pull.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.decoder import run_decoder
from support.docs import README, section
from support.layers import GZIP_ENCRYPTED, EncryptedLayer, jwe_layer

from ctd_decoder.decoder import MEDIA_TYPE_ENV
from ctd_decoder.decoder.recovery import index, manifests
from ctd_decoder.decoder.recovery.manifests import find_layer
from ctd_decoder.decoder.recovery.openblobs import CONTENT_PLUGIN_DIR, open_blobs
from ctd_decoder.decoder.recovery.parent import ancestors, parent_of
from ctd_decoder.decoder.recovery.peek import PEEK_SIZE, PeekError, peek
from ctd_decoder.decoder.recovery.switch import RECOVERY_ENV, turned_off_by

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class Store:
    """A content store laid out as containerd's: ``<root>/io.containerd.content.v1.content/blobs/sha256``."""

    def __init__(self, root: Path) -> None:
        self.blobs = root / CONTENT_PLUGIN_DIR / "blobs" / "sha256"
        self.blobs.mkdir(parents=True)

    def add(self, data: bytes, mtime: float | None = None) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.blobs / digest
        path.write_bytes(data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return "sha256:" + digest

    def manifest(self, layer: dict[str, object], kind: str = MANIFEST, mtime: float | None = None) -> str:
        document = {"schemaVersion": 2, "mediaType": kind, "config": {"digest": "sha256:" + "0" * 64}}
        return self.add(json.dumps({**document, "layers": [layer]}).encode(), mtime)


def layer_entry(layer: EncryptedLayer, digest: str, **changes: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "mediaType": layer.descriptor.media_type,
        "digest": digest,
        "size": len(layer.blob),
        "annotations": layer.descriptor.annotations,
    }
    return {**entry, **changes}


@pytest.fixture(scope="module")
def layer() -> EncryptedLayer:
    return jwe_layer(os.urandom(3000))


# --- peek ---------------------------------------------------------------------------------------------


def test_peek_leaves_a_pipe_untouched() -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"x" * 1000)
        assert peek(read_end) == b"x" * PEEK_SIZE
        assert peek(read_end) == b"x" * PEEK_SIZE
        assert os.read(read_end, 4096) == b"x" * 1000, "the peeked bytes are still there to decrypt"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_peek_of_a_short_stream_returns_it_whole_once_the_writer_is_done() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"short")
    os.close(write_end)
    try:
        started = time.monotonic()
        assert peek(read_end) == b"short"
        assert time.monotonic() - started < 1
        assert os.read(read_end, 100) == b"short"
    finally:
        os.close(read_end)


def test_peek_waits_for_a_slow_writer() -> None:
    read_end, write_end = os.pipe()
    writer = subprocess.Popen(
        [sys.executable, "-c", "import os, time\nos.write(1, b'a' * 10)\ntime.sleep(0.2)\nos.write(1, b'b' * 600)"],
        stdout=write_end,
    )
    os.close(write_end)
    try:
        assert peek(read_end) == b"a" * 10 + b"b" * (PEEK_SIZE - 10)
    finally:
        writer.wait()
        os.close(read_end)


def test_peek_of_a_file_keeps_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "layer"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as handle:
        handle.seek(2)
        assert peek(handle.fileno()) == b"23456789"
        assert handle.read() == b"23456789"


def test_peek_refuses_a_socket() -> None:
    first, second = socket.socketpair()
    with first, second, pytest.raises(PeekError, match="neither a pipe nor a file"):
        peek(first.fileno())


# --- processes and their open blobs -------------------------------------------------------------------


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Store, str]]:
    """A process holding one blob of a content store open (and an ordinary file)."""
    store = Store(tmp_path / "root")
    digest = store.add(b"layer bytes")
    other = tmp_path / "other"
    other.write_bytes(b"")
    code = (
        "import sys, time\n"
        "handles = [open(p, 'rb') for p in sys.argv[1:]]\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(store.blobs / digest[7:]), str(other)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    yield process, store, digest
    process.kill()
    process.wait()


def test_open_blobs_finds_the_content_store_blob_a_process_holds(
    holder: tuple[subprocess.Popen[bytes], Store, str],
) -> None:
    process, store, digest = holder
    blobs = open_blobs(process.pid)
    assert [(blob.digest, blob.size, blob.blobs_dir) for blob in blobs] == [
        (digest, len(b"layer bytes"), str(store.blobs))
    ]


def test_open_blobs_of_a_process_that_is_gone_is_empty() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert open_blobs(process.pid) == []


def test_parent_and_ancestors() -> None:
    assert parent_of(os.getpid()) == os.getppid()
    chain = ancestors(os.getpid())
    assert chain[:2] == [os.getpid(), os.getppid()] and len(chain) <= 3


# --- manifests ----------------------------------------------------------------------------------------


def test_manifests_listing_the_layer_are_found_newest_first(tmp_path: Path, layer: EncryptedLayer) -> None:
    store = Store(tmp_path)
    digest = store.add(layer.blob)
    now = time.time()
    older = store.manifest(layer_entry(layer, digest), DOCKER_MANIFEST, mtime=now - 100)
    newer = store.manifest(layer_entry(layer, digest, annotations={"x": "y"}), mtime=now)
    store.manifest(layer_entry(layer, digest, size=len(layer.blob) + 1), mtime=now + 10)  # another size
    store.manifest(layer_entry(layer, digest, mediaType="application/vnd.oci.image.layer.v1.tar+gzip"))
    store.add(b'{"not": "a manifest", "layers": []}' + digest.encode() * 3)
    search = find_layer(str(store.blobs), digest, len(layer.blob), GZIP_ENCRYPTED)
    assert [found.manifest for found in search.found] == [newer, older]
    assert search.found[1].descriptor == layer.descriptor.__class__(
        GZIP_ENCRYPTED, digest, len(layer.blob), layer.descriptor.annotations
    )


def test_the_media_type_containerd_names_must_match(tmp_path: Path, layer: EncryptedLayer) -> None:
    store = Store(tmp_path)
    digest = store.add(layer.blob)
    store.manifest(layer_entry(layer, digest))
    zstd = "application/vnd.oci.image.layer.v1.tar+zstd+encrypted"
    assert find_layer(str(store.blobs), digest, len(layer.blob), zstd).found == []


def test_big_blobs_are_never_read(tmp_path: Path, layer: EncryptedLayer, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    digest = store.add(layer.blob)
    store.manifest(layer_entry(layer, digest))
    monkeypatch.setattr(manifests, "MAX_MANIFEST_SIZE", 50)
    search = find_layer(str(store.blobs), digest, len(layer.blob), None)
    assert (search.found, search.files_read) == ([], 0)


def test_layer_data_is_not_read_past_its_head(tmp_path: Path, layer: EncryptedLayer) -> None:
    store = Store(tmp_path)
    digest = store.add(layer.blob)
    now = time.time()
    store.manifest(layer_entry(layer, digest), mtime=now - 1000)
    for n in range(5):
        store.add(b"\0" + os.urandom(100_000), mtime=now - n)  # never JSON-looking (a random "{" would be)
    search = find_layer(str(store.blobs), digest, len(layer.blob), None)
    assert len(search.found) == 1 and search.files_read == 6
    assert search.bytes_read < 5 * manifests.HEAD_SIZE + 2 * len(json.dumps(layer.descriptor.annotations))


def test_the_search_stops_at_its_bounds(tmp_path: Path, layer: EncryptedLayer, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    digest = store.add(layer.blob)
    now = time.time()
    store.manifest(layer_entry(layer, digest), mtime=now - 1000)
    for n in range(20):
        store.add(b"{" + os.urandom(200) + b"}", mtime=now - n)
    monkeypatch.setattr(manifests, "MAX_FILES_READ", 10)
    search = find_layer(str(store.blobs), digest, len(layer.blob), None)
    assert search.found == [] and search.files_read == 10 and search.stopped_by == "10 files read"


def test_ten_thousand_unrelated_blobs(tmp_path: Path, layer: EncryptedLayer) -> None:
    """The manifest is found among 10,000 unrelated blobs (a third of them small JSON) within the search's
    bounds; its cost is measured by bench/recovery.py, not here."""
    store = Store(tmp_path)
    digest = store.add(layer.blob)
    now = time.time()
    for n in range(10_000):
        data = json.dumps({"n": n, "pad": "x" * 150}).encode() if n % 3 == 0 else os.urandom(64 * 1024)
        store.add(data, mtime=now - 10 - n)
    store.manifest(layer_entry(layer, digest), mtime=now)
    search = find_layer(str(store.blobs), digest, len(layer.blob), None)
    assert len(search.found) == 1 and search.stopped_by == ""
    assert search.files_read <= manifests.MAX_FILES_READ and search.bytes_read <= manifests.MAX_BYTES_READ


# --- the index of a store's blobs ---------------------------------------------------------------------


@pytest.fixture
def indexed(tmp_path: Path, layer: EncryptedLayer) -> tuple[Store, str, Path]:
    """A store of 30 unrelated blobs (a third small) and the layer's manifest, the newest; an index directory."""
    store = Store(tmp_path / "root")
    digest = store.add(layer.blob)
    now = time.time()
    for n in range(30):
        store.add(json.dumps({"n": n, "pad": "x" * 150}).encode() if n % 3 == 0 else os.urandom(2000), now - 10 - n)
    store.manifest(layer_entry(layer, digest), mtime=now)
    index_dir = tmp_path / "index"
    index_dir.mkdir(mode=0o700)
    return store, digest, index_dir


def search_in(store: Store, digest: str, layer: EncryptedLayer, index_dir: Path) -> manifests.Search:
    return find_layer(str(store.blobs), digest, len(layer.blob), GZIP_ENCRYPTED, str(index_dir))


def index_file(store: Store, index_dir: Path) -> Path:
    return index_dir / index.StoreKey.of(str(store.blobs)).file_name()


def test_the_index_is_used_by_the_next_search(indexed: tuple[Store, str, Path], layer: EncryptedLayer) -> None:
    store, digest, index_dir = indexed
    first = search_in(store, digest, layer, index_dir)
    assert (first.indexed, first.stats, first.entries) == (False, 32, 32)
    assert index_file(store, index_dir).stat().st_mode & 0o777 == 0o600
    again = search_in(store, digest, layer, index_dir)
    assert (again.indexed, again.stats, again.entries) == (True, 0, 32)
    assert [found.manifest for found in again.found] == [found.manifest for found in first.found] != []
    assert again.files_read == first.files_read


@contextlib.contextmanager
def held_index(store: Store, index_dir: Path) -> Iterator[tuple[int, index.StoreKey, index.Index]]:
    """The index directory's descriptor, the store's key and the index the last search saved."""
    key = index.StoreKey.of(str(store.blobs))
    fd = index.open_index_dir(str(index_dir))
    assert fd is not None
    try:
        held = index.load(fd, key, manifests.MIN_MANIFEST_SIZE, manifests.MAX_MANIFEST_SIZE)
        assert held is not None
        yield fd, key, held
    finally:
        os.close(fd)


def test_a_blob_added_after_the_index_is_found_and_a_removed_one_dropped(
    indexed: tuple[Store, str, Path], layer: EncryptedLayer
) -> None:
    store, digest, index_dir = indexed
    old = search_in(store, digest, layer, index_dir).found[0].manifest
    newer = store.manifest(layer_entry(layer, digest, annotations={"x": "y"}), mtime=time.time() + 100)
    search = search_in(store, digest, layer, index_dir)
    assert (search.indexed, search.stats) == (True, 1)
    assert [found.manifest for found in search.found] == [newer, old]
    (store.blobs / newer[7:]).unlink()
    search = search_in(store, digest, layer, index_dir)
    assert (search.indexed, search.stats, [found.manifest for found in search.found]) == (True, 0, [old])
    with held_index(store, index_dir) as (_, _, held):
        assert newer[7:] not in held.small and old[7:] in held.small
        assert len(held.small) + len(held.other) == 32


def test_a_forged_entry_changes_what_is_read_not_what_is_found(
    indexed: tuple[Store, str, Path], layer: EncryptedLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, digest, index_dir = indexed
    monkeypatch.setattr(manifests, "READS_AFTER_MATCH", 0)
    honest = search_in(store, digest, layer, index_dir)
    assert honest.files_read == 1 and len(honest.found) == 1
    with held_index(store, index_dir) as (fd, key, held):
        manifest = honest.found[0].manifest[7:]
        forged = {name: 1 if name == manifest else time.time_ns() for name in held.small}  # the manifest oldest
        index.save(fd, key, index.Index(forged, held.other), manifests.MIN_MANIFEST_SIZE, manifests.MAX_MANIFEST_SIZE)
    search = search_in(store, digest, layer, index_dir)
    assert search.indexed and search.files_read == 31  # the 30 unrelated blobs (all small) first
    assert [(found.manifest, found.descriptor, found.mtime_ns) for found in search.found] == [
        (found.manifest, found.descriptor, found.mtime_ns) for found in honest.found
    ]


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of a blob's name
    path.write_bytes(bytes(data))


def _oversized(path: Path) -> None:
    with open(path, "r+b") as file:
        file.truncate(index.MAX_INDEX_BYTES + 1)


def _foreign(path: Path) -> None:
    os.chown(path, 4242, 4242)


def _open_to_others(path: Path) -> None:
    path.chmod(0o666)


def _symlink(path: Path) -> None:
    kept = path.with_name("kept")
    path.rename(kept)  # a valid index, only reached through a symlink
    path.symlink_to(kept.name)


def _of_another_store(path: Path) -> None:
    data = path.read_bytes()
    store_dir = b"/blobs/sha256"  # the index names its store's blobs directory
    assert store_dir in data
    path.write_bytes(data.replace(store_dir, b"/blobs/sha257", 1))


@pytest.mark.parametrize(
    "spoil", [_corrupt, _oversized, _foreign, _open_to_others, _symlink, _of_another_store], ids=lambda f: f.__name__
)
def test_an_unfit_index_is_ignored_and_replaced(
    indexed: tuple[Store, str, Path], layer: EncryptedLayer, spoil: Callable[[Path], None]
) -> None:
    store, digest, index_dir = indexed
    expected = search_in(store, digest, layer, index_dir).found[0].manifest
    path = index_file(store, index_dir)
    spoil(path)
    search = search_in(store, digest, layer, index_dir)
    assert (search.indexed, search.stats, search.found[0].manifest) == (False, 32, expected)
    info = path.lstat()
    assert stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_mode & 0o777 == 0o600
    assert search_in(store, digest, layer, index_dir).indexed


def _dir_foreign(path: Path) -> Path:
    os.chown(path, 4242, 4242)
    return path


def _dir_open(path: Path) -> Path:
    path.chmod(0o755)
    return path


def _dir_symlink(path: Path) -> Path:
    link = path.with_name("index-link")
    link.symlink_to(path.name)
    return link


@pytest.mark.parametrize("spoil", [_dir_foreign, _dir_open, _dir_symlink], ids=lambda f: f.__name__)
def test_an_unfit_index_directory_is_not_used(
    indexed: tuple[Store, str, Path], layer: EncryptedLayer, spoil: Callable[[Path], Path]
) -> None:
    store, digest, index_dir = indexed
    given = spoil(index_dir)
    for _ in range(2):
        search = find_layer(str(store.blobs), digest, len(layer.blob), GZIP_ENCRYPTED, str(given))
        assert (search.indexed, search.stats, len(search.found)) == (False, 32, 1)
    assert list(index_dir.iterdir()) == []


def test_a_missing_index_directory_is_made_private(indexed: tuple[Store, str, Path], layer: EncryptedLayer) -> None:
    store, digest, index_dir = indexed
    made = index_dir / "run" / "recovery"
    search_in(store, digest, layer, made)
    assert [made.stat().st_mode & 0o777, made.parent.stat().st_mode & 0o777] == [0o700, 0o700]
    assert search_in(store, digest, layer, made).indexed


def test_the_index_holds_no_key_material_nor_content(indexed: tuple[Store, str, Path], layer: EncryptedLayer) -> None:
    store, digest, index_dir = indexed
    search_in(store, digest, layer, index_dir)
    files = list(index_dir.iterdir())
    assert len(files) == 1
    data = files[0].read_bytes()
    secrets = [value.encode() for value in layer.descriptor.annotations.values()]
    secrets += [line for line in layer.private_key_pem.splitlines() if len(line) > 20]
    assert secrets and not [secret for secret in secrets if secret in data]
    assert b"annotations" not in data and b"pad" not in data and digest[7:].encode() in data


def test_the_indexes_are_bounded_in_number(
    tmp_path: Path, layer: EncryptedLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "MAX_INDEX_FILES", 2)
    index_dir = tmp_path / "index"
    for n in range(4):
        store = Store(tmp_path / f"root-{n}")
        digest = store.add(layer.blob)
        store.manifest(layer_entry(layer, digest))
        assert len(search_in(store, digest, layer, index_dir).found) == 1
        time.sleep(0.05)  # more than the file system's timestamp granularity: the mtimes order the indexes
    assert sorted(path.name for path in index_dir.iterdir()) == sorted(
        index.StoreKey.of(str(tmp_path / f"root-{n}" / CONTENT_PLUGIN_DIR / "blobs" / "sha256")).file_name()
        for n in (2, 3)
    )


def test_a_listing_cut_at_the_entries_bound_writes_no_index(
    indexed: tuple[Store, str, Path], layer: EncryptedLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, digest, index_dir = indexed
    monkeypatch.setattr(manifests, "MAX_ENTRIES", 10)
    search = search_in(store, digest, layer, index_dir)
    assert (search.entries, search.stats, search.stopped_by) == (10, 10, "10 blobs examined")
    assert list(index_dir.iterdir()) == []  # names beyond the bound were not seen: gone or not is unknown


def test_a_temp_file_left_by_a_killed_decoder_is_removed(
    indexed: tuple[Store, str, Path], layer: EncryptedLayer
) -> None:
    store, digest, index_dir = indexed
    left = index_dir / ".someindex.index.12345.tmp"
    left.write_bytes(b"half written")
    recent = index_dir / ".someindex.index.12346.tmp"
    recent.write_bytes(b"being written")
    old = time.time() - index.STALE_TEMP_SECONDS - 10
    os.utime(left, (old, old))
    search_in(store, digest, layer, index_dir)
    assert sorted(path.name for path in index_dir.iterdir()) == sorted([recent.name, index_file(store, index_dir).name])


# --- the switch ---------------------------------------------------------------------------------------


def test_the_switch() -> None:
    assert turned_off_by(None, {}) is None
    assert turned_off_by("on", {RECOVERY_ENV: "on"}) is None
    assert turned_off_by("off", {}) == "--descriptor-recovery=off"
    assert turned_off_by(None, {RECOVERY_ENV: "off"}) == f"{RECOVERY_ENV}=off"
    assert turned_off_by("on", {RECOVERY_ENV: "0"}) == f"{RECOVERY_ENV}=0", "a value not understood is off"


# --- the decoder, with this process as the one holding the blob ---------------------------------------


@pytest.fixture
def node_store(tmp_path: Path, layer: EncryptedLayer) -> Iterator[tuple[Path, str]]:
    """A content store with the layer and its manifest; this process holds the layer's blob open."""
    store = Store(tmp_path / "root")
    digest = store.add(layer.blob)
    store.manifest(layer_entry(layer, digest))
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "node.pem").write_bytes(layer.private_key_pem)
    with open(store.blobs / digest[7:], "rb"):
        yield keys, digest


def test_decoder_without_payload_decrypts_with_the_recovered_descriptor(
    layer: EncryptedLayer, node_store: tuple[Path, str], decoder_path: str
) -> None:
    keys, _ = node_store
    result = run_decoder(layer.blob, None, ["--decryption-keys-path", str(keys)], env={MEDIA_TYPE_ENV: GZIP_ENCRYPTED})
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == layer.plaintext


def test_decoder_stream_not_held_by_the_parent_fails_with_the_no_payload_diagnostic(
    layer: EncryptedLayer, node_store: tuple[Path, str]
) -> None:
    keys, _ = node_store
    other = jwe_layer(b"another layer" * 100)
    result = run_decoder(other.blob, None, ["--decryption-keys-path", str(keys)], env={MEDIA_TYPE_ENV: GZIP_ENCRYPTED})
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.startswith("read payload: read configFd: bad file descriptor (")
    assert "found none of the 1 content-store blob held open by pid" in result.stderr
    assert "PRIVATE KEY" not in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("off", [["--descriptor-recovery=off"], ["--descriptor-recovery", "off"], "env"])
def test_decoder_with_recovery_off(layer: EncryptedLayer, node_store: tuple[Path, str], off: object) -> None:
    keys, _ = node_store
    args = ["--decryption-keys-path", str(keys)] + (off if isinstance(off, list) else [])
    env = {MEDIA_TYPE_ENV: GZIP_ENCRYPTED, **({RECOVERY_ENV: "off"} if off == "env" else {})}
    result = run_decoder(layer.blob, None, args, env=env)
    assert (result.returncode, result.stdout) == (1, b"")
    assert "descriptor recovery is turned off" in result.stderr


def test_decoder_refuses_a_bad_switch_value(layer: EncryptedLayer) -> None:
    result = run_decoder(layer.blob, None, ["--descriptor-recovery=maybe"])
    assert result.returncode == 1
    assert 'invalid value "maybe" for -descriptor-recovery: use on or off' in result.stderr


def test_readme_states_the_bounds_of_the_code() -> None:
    from ctd_decoder.decoder.recovery.switch import RECOVERY_ENV, RECOVERY_FLAG

    readme = section(README, "## Pulls without a payload: descriptor recovery")
    assert f"first {PEEK_SIZE} bytes are stdin's first {PEEK_SIZE} bytes" in readme
    assert (
        f"only blobs of {manifests.MIN_MANIFEST_SIZE} B to {manifests.MAX_MANIFEST_SIZE >> 20} MiB" in readme
        and f"At most {manifests.MAX_ENTRIES:,} entries, {manifests.MAX_FILES_READ:,} files and "
        f"{manifests.MAX_BYTES_READ >> 20} MiB read, {manifests.TIME_BUDGET:g} s"
        in readme
    )
    assert f"the first {manifests.HEAD_SIZE} bytes decide whether it can be JSON" in readme
    assert f"{manifests.READS_AFTER_MATCH} more are read for other manifests listing it" in readme
    assert f"--{RECOVERY_FLAG} off" in readme and f"{RECOVERY_ENV}=off" in readme
    assert f"`{index.INDEX_DIR}/`" in readme and f"`{index.INDEX_DIR}/<hash of the store's path>.index`" in readme
    assert f"at most {index.MAX_INDEX_FILES} of" in readme and f"at most {index.MAX_INDEX_ENTRIES:,} names" in readme
