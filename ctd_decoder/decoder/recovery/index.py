"""The index of a content store's blobs that the next manifest search reuses: what each blob was when seen.

Without it every search stats every blob of the store to order the small ones by age (about 5 µs a
blob, tens of milliseconds for 10,000 blobs, in every decoder process). Content-store blobs are
content-addressed and never change once committed, so whether a name is small and its modification
time, once seen, hold while the name stays: a search lists the directory (names only, no stat), stats
only the names the index does not hold, and drops the names that are gone. A blob removed and written
again between two searches keeps its first mtime here: only the order in which candidates are read can
differ (each manifest found is ordered by its own file's mtime, read when it is read).

The index is a cache, never trusted for content: every candidate blob is still read and checked, so
a stale or forged entry can only cost a read, hide a blob from the search or reorder the candidates,
never change what is accepted. It holds only blob names and the small blobs' modification times: no
key material and nothing from a blob's content. It lives in a directory only its owner can use
(:data:`INDEX_DIR`, tmpfs, mode 0700, owned by the decoder's uid). An index that is a symlink, owned by
another uid, open to others, corrupt or too big is ignored (the search falls back to the full scan) and
replaced; a directory that is a symlink, owned by another uid or open to others is not used at all.
Files are written atomically (a temp file renamed over the index) and their number is bounded.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import os
import stat
import struct
import time
import zlib

INDEX_DIR = "/run/ctd-decoder/recovery"
MAGIC = b"ctd-decoder recovery index 3\n"
# The header: the blobs directory's device and inode, the size bounds "small" was decided by, the numbers
# of small and other blobs and the length of the directory's path. Then the path, the small blobs' names,
# the other blobs' names (64 ASCII hex digits and a newline each: split in one call), the small blobs'
# mtimes (int64, native order), and a CRC-32 of all that came before (a corrupt file is ignored, not half
# used).
HEADER = struct.Struct("=QQQQIIH")
NAME_LENGTH = 64
RECORD = NAME_LENGTH + 1  # a name and its newline
MAX_INDEX_ENTRIES = 200_000
MAX_PATH_BYTES = 4096
CHECKSUM = struct.Struct("=I")
MAX_INDEX_BYTES = len(MAGIC) + HEADER.size + MAX_PATH_BYTES + MAX_INDEX_ENTRIES * (RECORD + 8) + CHECKSUM.size
MAX_INDEX_FILES = 16  # one per content store; the least recently written go first
STALE_TEMP_SECONDS = 60.0
SUFFIX = ".index"
HEX_DIGITS = frozenset("0123456789abcdef")


class Index:
    """The blobs of one store as last seen: the small ones (``min_size`` to ``max_size`` bytes, the ones
    that may be manifests) with their mtimes, and the names of the others."""

    __slots__ = ("other", "small")

    def __init__(self, small: dict[str, int], other: set[str]) -> None:
        self.small = small
        self.other = other


class StoreKey:
    """Which blobs directory an index is of: its real path, device and inode (a directory replaced under
    the same path gets a new index)."""

    __slots__ = ("device", "inode", "path")

    def __init__(self, path: str, device: int, inode: int) -> None:
        self.path = path
        self.device = device
        self.inode = inode

    @classmethod
    def of(cls, blobs_dir: str) -> StoreKey:
        """The key of ``blobs_dir`` (raises OSError if it cannot be examined)."""
        path = os.path.realpath(blobs_dir)
        info = os.stat(path)
        return cls(path, info.st_dev, info.st_ino)

    def file_name(self) -> str:
        """The index file's name in the index directory."""
        token = f"{self.path}\0{self.device}\0{self.inode}".encode("utf-8", "surrogateescape")
        return hashlib.sha256(token).hexdigest()[:40] + SUFFIX


def open_index_dir(index_dir: str) -> int | None:
    """An fd of ``index_dir`` (created mode 0700 if missing), or None if it is not fit for the index:
    not a directory of its own (a symlink), owned by another uid, or open to group or others."""
    try:
        _make_private_dirs(index_dir)
        fd = os.open(index_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        os.close(fd)
        return None
    return fd


def _make_private_dirs(index_dir: str) -> None:
    parent = os.path.dirname(index_dir.rstrip("/"))
    if parent and not os.path.lexists(parent):
        _make_private_dirs(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(index_dir, 0o700)


def load(dir_fd: int, key: StoreKey, min_size: int, max_size: int) -> Index | None:
    """``key``'s index, or None if there is none fit to use (missing, not a regular file of this uid closed
    to others, too big, corrupt, of another store or other size bounds)."""
    try:
        fd = os.open(key.file_name(), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_mode & 0o022
            or info.st_size > MAX_INDEX_BYTES
        ):
            return None
        data = _read_all(fd, info.st_size)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _parse(data, key, min_size, max_size)


def _read_all(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size + 1  # one byte more: a file that grew since the fstat is refused by _parse's length check
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _parse(data: bytes, key: StoreKey, min_size: int, max_size: int) -> Index | None:
    if not data.startswith(MAGIC) or len(data) > MAX_INDEX_BYTES or len(data) < CHECKSUM.size:
        return None
    data, (checksum,) = data[: -CHECKSUM.size], CHECKSUM.unpack(data[-CHECKSUM.size :])
    if zlib.crc32(data) != checksum:
        return None
    offset = len(MAGIC)
    try:
        device, inode, low, high, small_count, other_count, path_length = HEADER.unpack_from(data, offset)
    except struct.error:
        return None
    offset += HEADER.size
    path = data[offset : offset + path_length]
    offset += path_length
    count = small_count + other_count
    if (
        (device, inode, low, high) != (key.device, key.inode, min_size, max_size)
        or path != key.path.encode("utf-8", "surrogateescape")
        or count > MAX_INDEX_ENTRIES
        or len(data) - offset != count * RECORD + small_count * 8
    ):
        return None
    raw_names = data[offset : offset + count * RECORD]
    # Each record is 64 lowercase hex digits and a newline: the newlines where they belong, and nothing but
    # hex digits left once they are taken out.
    if raw_names[NAME_LENGTH::RECORD] != b"\n" * count or raw_names.translate(None, b"0123456789abcdef") != (
        b"\n" * count
    ):
        return None
    names = raw_names.decode("ascii").split("\n")
    mtimes = array.array("q")
    mtimes.frombytes(data[offset + count * RECORD :])
    return Index(dict(zip(names[:small_count], mtimes, strict=True)), set(names[small_count:count]))


def save(dir_fd: int, key: StoreKey, index: Index, min_size: int, max_size: int) -> bool:
    """Write ``index`` as ``key``'s (a temp file renamed over it); False if it was not written."""
    count = len(index.small) + len(index.other)
    path = key.path.encode("utf-8", "surrogateescape")
    if count > MAX_INDEX_ENTRIES or len(path) > MAX_PATH_BYTES:
        return False
    data = b"".join(
        (
            MAGIC,
            HEADER.pack(key.device, key.inode, min_size, max_size, len(index.small), len(index.other), len(path)),
            path,
            "".join(name + "\n" for name in index.small).encode("ascii"),
            "".join(name + "\n" for name in index.other).encode("ascii"),
            array.array("q", index.small.values()).tobytes(),
        )
    )
    data += CHECKSUM.pack(zlib.crc32(data))
    name = key.file_name()
    temp = f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # replaces a symlink, never follows it
    except OSError:
        _unlink(dir_fd, temp)
        return False
    _prune(dir_fd)
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _prune(dir_fd: int) -> None:
    """Keep at most :data:`MAX_INDEX_FILES` indexes (of stores gone, or many stores) and no stale temp file."""
    indexes: list[tuple[int, str]] = []
    now = time.time()
    try:
        names = os.listdir(dir_fd)
    except OSError:
        return
    for name in names:
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        if name.endswith(SUFFIX):
            indexes.append((info.st_mtime_ns, name))
        elif name.endswith(".tmp") and now - info.st_mtime > STALE_TEMP_SECONDS:
            _unlink(dir_fd, name)  # of a decoder killed while writing
    indexes.sort(reverse=True)
    for _, name in indexes[MAX_INDEX_FILES:]:
        _unlink(dir_fd, name)


def _unlink(dir_fd: int, name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)
