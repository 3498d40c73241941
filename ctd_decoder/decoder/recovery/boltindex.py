"""A shortcut to the manifests that list a layer: containerd's own metadata, read as an untrusted hint.

containerd labels an image manifest's content record with ``containerd.io/gc.ref.content.l.<n> =
<layer digest>`` before it fetches the layers (that is how its garbage collector keeps them). The
records live in its bbolt database (``<root>/io.containerd.metadata.v1.bolt/meta.db``). In a bbolt
leaf page a key is stored right before its value, and a nested bucket's value starts with the page
number of its root. So the layer's digest, found as a label value in some page, leads to the bucket
holding it (``labels``, when it has a page of its own) and then to the manifest digest whose bucket
is that page. Nothing here is trusted: the file is read while containerd writes it, so a candidate
may be stale or missing. Every candidate is checked by reading the manifest itself from the content
store, and when no candidate is one, the caller searches the content store's blobs instead.
"""

from __future__ import annotations

import mmap
import os
import re
import struct

METADATA_DB = os.path.join("io.containerd.metadata.v1.bolt", "meta.db")
MAX_DB_SIZE = 256 * 1024 * 1024
MAX_OCCURRENCES = 64
MAX_CANDIDATES = 64
MAX_OVERFLOW_PAGES = 64
_BOLT_MAGIC = 0xED0CDAED
_PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
_META = struct.Struct("<III")  # magic, version, page size (after the page header)
_DIGEST_KEY = re.compile(rb"sha256:[0-9a-f]{64}")
_DIGEST_KEY_SIZE = len("sha256:") + 64


def metadata_db_for(store: str) -> str:
    """The bbolt file of the containerd whose content store is ``store``."""
    return os.path.join(os.path.dirname(store), METADATA_DB)


def manifests_labelled_with(db_path: str, digest: str) -> list[str] | None:
    """Digests of the content records whose labels name ``digest``; None if the file cannot be used."""
    try:
        fd = os.open(db_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if not 0 < size <= MAX_DB_SIZE:
            return None
        with mmap.mmap(fd, size, prot=mmap.PROT_READ) as data:
            return _candidates(data, digest.encode("ascii"))
    except (OSError, ValueError, struct.error):
        return None
    finally:
        os.close(fd)


def _candidates(data: mmap.mmap, digest: bytes) -> list[str] | None:
    magic, _, page_size = _META.unpack_from(data, _PAGE_HEADER.size)
    if magic != _BOLT_MAGIC or page_size < 512 or page_size & (page_size - 1):
        return None
    found: list[str] = []
    position = data.find(digest)
    occurrences = 0
    while position >= 0 and occurrences < MAX_OCCURRENCES and len(found) < MAX_CANDIDATES:
        occurrences += 1
        page = _page_of(data, position, page_size)
        if page is not None:
            for parent in _owners(data, page, page_size):
                if parent not in found and "sha256:" + parent != digest.decode():
                    found.append(parent)
        position = data.find(digest, position + 1)
    return found


def _page_of(data: mmap.mmap, offset: int, page_size: int) -> int | None:
    """The page that holds ``offset`` (the first page of an overflowing run), or None."""
    last = offset // page_size
    for start in range(last, max(last - MAX_OVERFLOW_PAGES, 1), -1):
        page_id, _, _, overflow = _PAGE_HEADER.unpack_from(data, start * page_size)
        if page_id == start and overflow >= last - start:
            return start
    return None


def _owners(data: mmap.mmap, page: int, page_size: int) -> list[str]:
    """Digest keys whose bucket is ``page``, directly or through a ``labels`` bucket in its own page."""
    owners = _digest_keys_of(data, page)
    for position in _finds(data, b"labels" + _bucket_value(page)):
        parent = _page_of(data, position, page_size)
        if parent is not None:
            owners += _digest_keys_of(data, parent)
    return owners


def _bucket_value(page: int) -> bytes:
    """A nested bucket's value as bbolt stores it: its root page, then its sequence (0 for these buckets)."""
    return struct.pack("<QQ", page, 0)


def _finds(data: mmap.mmap, needle: bytes) -> list[int]:
    """Where ``needle`` starts in ``data`` (mmap.find: a fast byte search, no regular expression)."""
    found: list[int] = []
    position = data.find(needle)
    while position >= 0 and len(found) < MAX_OCCURRENCES:
        found.append(position)
        position = data.find(needle, position + 1)
    return found


def _digest_keys_of(data: mmap.mmap, page: int) -> list[str]:
    keys: list[str] = []
    for position in _finds(data, _bucket_value(page)):
        key = data[max(position - _DIGEST_KEY_SIZE, 0) : position]
        if _DIGEST_KEY.fullmatch(key):
            keys.append(key[len(b"sha256:") :].decode("ascii"))
    return keys
