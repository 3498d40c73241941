"""Writing an OCI layout or oci-archive atomically: everything is built beside the destination first.

The destination must not exist. Blobs, manifests and index.json go to a hidden temporary directory
in the destination's own directory (so the final move is a rename on one file system); only when
:meth:`LayoutWriter.commit` has written everything is it renamed to DST (``oci:``) or packed into a
tarball that is then linked to DST (``oci-archive:``). Any failure, an interrupt included, removes
the temporary files and leaves DST absent (``ocicrypt`` turns SIGTERM and SIGHUP into an exception
too). Files are created mode 0666 and directories 0777, less the umask, as skopeo writes a layout's
index.json and directories.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tarfile
import tempfile
from types import TracebackType
from typing import BinaryIO

from ...ocicrypt import stop_deferred
from .errors import ImageError
from .hashing import BackgroundHash
from .layout import INDEX_FILE, LAYOUT_FILE, VerifiedBlob, blob_relpath
from .reference import OCI_ARCHIVE, ImageReference

LAYOUT_CONTENT = b'{"imageLayoutVersion": "1.0.0"}'
COPY_CHUNK = 2 << 20


def _os_error(err: OSError, what: str) -> ImageError:
    return ImageError(f"cannot write {what}: {err.strerror or err}")


def _create_temporary(directory: str) -> tuple[str, int]:
    """Create a new hidden blob file, mode 0666 less the umask as skopeo's manifests and index.json are
    (``mkstemp`` would make it 0600, unreadable by the other users who read our images)."""
    while True:
        path = os.path.join(directory, f".blob-{secrets.token_hex(8)}")
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue


class BlobSink:
    """A blob being written: hashed as it is written, named by its digest when finished.

    Use it as a context manager: a block left by an exception discards the unfinished blob.
    """

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self.path, handle = _create_temporary(directory)
        self.file: BinaryIO = os.fdopen(handle, "wb", buffering=0)
        self._hash = BackgroundHash(then=self._write_all)
        self.size = 0

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = self.file.write(view)
            except OSError as err:
                raise _os_error(err, "a blob of the destination image") from None
            view = view[written or 0 :]

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Queue ``data`` to be hashed and written by a helper thread (a bytes chunk is not copied).

        A write error surfaces on a later call or at :meth:`finish`.
        """
        self._hash.update(data if isinstance(data, bytes) else bytes(data))
        self.size += len(data)
        return len(data)

    def finish(self, digest: str | None = None, size: int | None = None) -> tuple[str, int]:
        """Close the blob and move it to its digest's name; return (digest, size).

        When the data was written to :attr:`file` directly (not through :meth:`write`), pass its
        ``digest`` and ``size``, which the caller computed.
        """
        computed = "sha256:" + self._hash.hexdigest()
        self.file.close()
        if digest is None:
            digest, size = computed, self.size
        assert size is not None
        target = os.path.join(self._directory, os.path.basename(blob_relpath(digest)))
        os.replace(self.path, target)
        return digest, size

    def discard(self) -> None:
        """Close and remove the unfinished blob."""
        self._hash.abandon()
        self.file.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def __enter__(self) -> BlobSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, traceback: object) -> None:
        if kind is not None:
            self.discard()


class LayoutWriter:
    """Builds the destination image; use as a context manager and call :meth:`commit` at the end."""

    def __init__(self, reference: ImageReference) -> None:
        self.reference = reference
        self._target = os.path.abspath(reference.path)
        if os.path.lexists(self._target):
            raise ImageError(f"destination {reference.path} already exists; refusing to overwrite it")
        parent = os.path.dirname(self._target)
        with stop_deferred():  # a stop signal between creating and recording the directory would leak it
            try:
                self._scratch = tempfile.mkdtemp(prefix=f".{os.path.basename(self._target)}.ocicrypt-", dir=parent)
            except OSError as err:
                raise ImageError(f"cannot create the destination {reference.path}: {err.strerror}") from None
        self.root = os.path.join(self._scratch, "layout")
        self._blobs = os.path.join(self.root, "blobs", "sha256")
        try:
            os.makedirs(self._blobs)
        except BaseException:
            self.close()
            raise

    def new_blob(self) -> BlobSink:
        """Start a new blob."""
        try:
            return BlobSink(self._blobs)
        except OSError as err:
            raise _os_error(err, "a blob of the destination image") from None

    def add_bytes(self, data: bytes) -> tuple[str, int]:
        """Store a small blob (manifest, index, config); return (digest, size)."""
        with self.new_blob() as sink:
            sink.write(data)
            return sink.finish()

    def copy_blob(self, source: VerifiedBlob) -> None:
        """Copy an unchanged blob, checking it against its digest on the way."""
        if os.path.exists(os.path.join(self.root, blob_relpath(source.digest))):
            return
        with self.new_blob() as sink:
            while chunk := source.read(COPY_CHUNK):
                sink.write(chunk)
            digest, _ = sink.finish()
        if digest != source.digest:  # only a non-sha256 source digest gets here
            raise ImageError(f"blob {source.digest} cannot be copied: only sha256 destinations are written")

    def commit(self, index_json: bytes) -> None:
        """Write oci-layout and index.json, then move the finished image to the destination."""
        try:
            with open(os.path.join(self.root, LAYOUT_FILE), "wb") as handle:
                handle.write(LAYOUT_CONTENT)
            with open(os.path.join(self.root, INDEX_FILE), "wb") as handle:
                handle.write(index_json)
            if self.reference.transport == OCI_ARCHIVE:
                self._commit_archive()
            else:
                os.rename(self.root, self._target)
        except OSError as err:
            raise _os_error(err, f"the destination {self.reference.path}") from None

    def _commit_archive(self) -> None:
        packed = os.path.join(self._scratch, "archive.tar")
        with tarfile.open(packed, "w", format=tarfile.PAX_FORMAT) as archive:
            for name in (LAYOUT_FILE, INDEX_FILE, "blobs"):
                archive.add(os.path.join(self.root, name), name, filter=_normalised)
        try:
            os.link(packed, self._target)
        except FileExistsError:
            raise ImageError(f"destination {self.reference.path} appeared while writing; left it alone") from None

    def close(self) -> None:
        """Remove the temporary files (after a commit they are leftovers; before, the aborted image)."""
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> LayoutWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Archive members as skopeo writes them: no owner names, no ids."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
