"""The image manifests of a content store that list one layer: where its descriptor is recovered from.

containerd writes an image's manifest into the content store before it fetches and unpacks the
layers, so the manifest of the layer being unpacked is there, usually among the newest blobs. The
search is bounded: directory entries examined, files and bytes read, and time. Big blobs are never
read (a manifest is at most :data:`MAX_MANIFEST_SIZE`); of a small one the first bytes are read, and
the rest only if they start a JSON object; it is parsed only if it contains the layer's digest.
Which blobs are small and how old they are comes from the store's index (:mod:`.index`) for the
blobs an earlier search saw; only the others are stat'ed.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import time

from ...ocicrypt.descriptor import Descriptor
from ...ocicrypt.spec import ENCRYPTED_MEDIA_TYPES
from . import index
from .index import HEX_DIGITS, Index, StoreKey

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MAX_MANIFEST_SIZE = 4 * 1024 * 1024  # what registries accept (the distribution spec's recommendation)
MIN_MANIFEST_SIZE = 100  # smaller cannot hold a config and a layer descriptor
MAX_ENTRIES = 200_000
MAX_FILES_READ = 2_000
HEAD_SIZE = 512  # what is read of a small blob before deciding whether it may be a manifest
MAX_BYTES_READ = 64 * 1024 * 1024
TIME_BUDGET = 2.0  # seconds
# Once a manifest listing the layer is found, this many more (older) small blobs are read for
# others listing it too; all are tried newest first.
READS_AFTER_MATCH = 32
_NAME = operator.attrgetter("name")


class Found:
    """A layer descriptor recovered from one manifest."""

    __slots__ = ("descriptor", "manifest", "mtime_ns")

    def __init__(self, descriptor: Descriptor, manifest: str, mtime_ns: int) -> None:
        self.descriptor = descriptor
        self.manifest = manifest
        self.mtime_ns = mtime_ns


class Search:
    """What one search saw: its results newest first and the counts an operator's message needs."""

    def __init__(self) -> None:
        self.found: list[Found] = []
        self.entries = 0
        self.stats = 0  # blobs stat'ed: those the index did not hold
        self.indexed = False  # whether the store's index was used
        self.files_read = 0
        self.bytes_read = 0
        self.manifests_parsed = 0
        self.stopped_by = ""  # the bound that ended the search early, if one did
        self.elapsed_ms = 0.0


def find_layer(blobs_dir: str, digest: str, size: int, media_type: str | None, index_dir: str | None = None) -> Search:
    """Search ``blobs_dir`` for manifests listing ``digest`` of ``size`` bytes with an encrypted media type.

    ``media_type`` (containerd's ``$STREAM_PROCESSOR_MEDIATYPE``), if given, must match too. The store's
    index is kept in ``index_dir`` (the decoder's is :data:`.index.INDEX_DIR`; None: no index, every blob
    is stat'ed).
    """
    search = Search()
    started = time.monotonic()
    deadline = started + TIME_BUDGET
    try:
        candidates = _small_blobs(blobs_dir, digest, search, index_dir)
    except OSError:
        candidates = []
    needle = digest.encode("ascii")
    reads_left: int | None = None
    for name in candidates:
        if reads_left is not None:
            if reads_left == 0:
                break
            reads_left -= 1
        if search.files_read >= MAX_FILES_READ:
            search.stopped_by = f"{MAX_FILES_READ:,} files read"
            break
        if search.bytes_read >= MAX_BYTES_READ:
            search.stopped_by = f"{MAX_BYTES_READ // (1024 * 1024)} MiB read"
            break
        if time.monotonic() > deadline:
            search.stopped_by = f"{TIME_BUDGET:g} s spent"
            break
        read = _read_blob(blobs_dir, name, search)
        if read is None or needle not in read[0]:
            continue
        descriptor = _layer_in_manifest(read[0], digest, size, media_type, search)
        if descriptor is not None:
            search.found.append(Found(descriptor, "sha256:" + name, read[1]))
            if reads_left is None:
                reads_left = READS_AFTER_MATCH
    search.elapsed_ms = (time.monotonic() - started) * 1000
    return search


def _small_blobs(blobs_dir: str, digest: str, search: Search, index_dir: str | None) -> list[str]:
    """The names of the blobs that may be manifests, newest first."""
    dir_fd = index.open_index_dir(index_dir) if index_dir else None
    try:
        key = StoreKey.of(blobs_dir) if dir_fd is not None else None
        known = None
        if dir_fd is not None and key is not None:
            known = index.load(dir_fd, key, MIN_MANIFEST_SIZE, MAX_MANIFEST_SIZE)
        search.indexed = known is not None
        blobs, changed = _list_blobs(blobs_dir, known or Index({}, set()), search)
        # By integer keys: fast, and the index keeps them newest first, so usually already in order.
        newest_first = sorted(blobs.small, key=blobs.small.__getitem__, reverse=True)
        if dir_fd is not None and key is not None and (changed or known is None) and not search.stopped_by:
            ordered = Index({name: blobs.small[name] for name in newest_first}, blobs.other)
            index.save(dir_fd, key, ordered, MIN_MANIFEST_SIZE, MAX_MANIFEST_SIZE)
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    own = digest.removeprefix("sha256:")
    if own in blobs.small:
        newest_first.remove(own)  # the layer itself (a small one) is no manifest of itself
    return newest_first


def _list_blobs(blobs_dir: str, known: Index, search: Search) -> tuple[Index, bool]:
    """The blobs now in ``blobs_dir``, and whether they differ from ``known``: the names ``known`` holds
    are taken from it (blobs are immutable), the others stat'ed; names no longer listed are left out."""
    with os.scandir(blobs_dir) as entries:
        # Names only (no stat), in one C loop, and never more than the bound from a huge directory.
        listed = list(map(_NAME, itertools.islice(entries, MAX_ENTRIES + 1)))
    search.entries = len(listed)
    if len(listed) > MAX_ENTRIES:
        search.stopped_by = f"{MAX_ENTRIES:,} blobs examined"
        search.entries = MAX_ENTRIES
        del listed[MAX_ENTRIES:]
    names = set(listed)
    small = known.small
    gone = small.keys() - names
    if gone:
        small = {name: mtime_ns for name, mtime_ns in small.items() if name in names}
    other = known.other & names
    changed = bool(gone) or len(other) != len(known.other)
    for name in names - small.keys() - other:
        if len(name) != 64 or not HEX_DIGITS.issuperset(name):
            continue
        try:
            info = os.stat(os.path.join(blobs_dir, name), follow_symlinks=False)
        except OSError:
            continue  # removed since the listing
        search.stats += 1
        changed = True
        if small is known.small:
            small = dict(small)
        if MIN_MANIFEST_SIZE <= info.st_size <= MAX_MANIFEST_SIZE:
            small[name] = info.st_mtime_ns
        else:
            other.add(name)
    return Index(small, other), changed


def _read_blob(blobs_dir: str, name: str, search: Search) -> tuple[bytes, int] | None:
    """The blob and its mtime if it may be a JSON document: its first bytes decide before the rest is read.

    The mtime is the file's own (the index's could be of an earlier file of that name, removed since).
    """
    try:
        fd = os.open(os.path.join(blobs_dir, name), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None  # removed (garbage collected) since the listing
    try:
        head = os.read(fd, HEAD_SIZE)
        search.files_read += 1
        search.bytes_read += len(head)
        if not head.lstrip(b" \t\r\n").startswith(b"{"):
            return None  # layer data, not a manifest
        rest = os.read(fd, MAX_MANIFEST_SIZE + 1 - len(head)) if len(head) == HEAD_SIZE else b""
        mtime_ns = os.fstat(fd).st_mtime_ns
    except OSError:
        return None
    finally:
        os.close(fd)
    search.bytes_read += len(rest)
    data = head + rest
    return (data, mtime_ns) if len(data) <= MAX_MANIFEST_SIZE else None


def _layer_in_manifest(
    data: bytes, digest: str, size: int, media_type: str | None, search: Search
) -> Descriptor | None:
    """The descriptor of ``digest`` in this manifest, if it is an image manifest listing it encrypted."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    kind = document.get("mediaType")
    # OCI manifests may omit their media type (image-spec 1.0); they still have a config and layers.
    if kind not in MANIFEST_MEDIA_TYPES and not (kind is None and isinstance(document.get("config"), dict)):
        return None
    layers = document.get("layers")
    if not isinstance(layers, list):
        return None
    search.manifests_parsed += 1
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("digest") != digest:
            continue
        layer_type = layer.get("mediaType")
        if layer_type not in ENCRYPTED_MEDIA_TYPES or (media_type and layer_type != media_type):
            continue
        if type(layer.get("size")) is not int or layer["size"] != size:
            continue
        annotations = layer.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            continue
        return Descriptor(layer_type, digest, size, dict(annotations))
    return None
