"""Find the layer on stdin and its candidate descriptors (see the package's docstring)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from .index import INDEX_DIR
from .manifests import Found, find_layer
from .messages import no_payload
from .openblobs import OpenBlob, open_blobs
from .parent import ancestors
from .peek import PEEK_SIZE, PeekError, peek
from .switch import turned_off_by


class RecoveryError(Exception):
    """No descriptor: the text is the whole no-payload diagnostic."""


class Recovered:
    """The layer's blob and its candidate descriptors, newest manifest first (distinct descriptors only)."""

    __slots__ = ("blob", "candidates")

    def __init__(self, blob: OpenBlob, candidates: list[Found]) -> None:
        self.blob = blob
        self.candidates = candidates


def recover(
    media_type: str,
    keys_configured: bool,
    flag: str | None,
    starter: int,
    stdin_fd: int = 0,
    environ: Mapping[str, str] = os.environ,
) -> Recovered:
    """Find the descriptor of the layer on ``stdin_fd`` among the blobs ``starter`` (or a close ancestor) holds.

    ``media_type`` is ``$STREAM_PROCESSOR_MEDIATYPE``; ``flag`` the value of ``--descriptor-recovery``.
    Raises :class:`RecoveryError` with the operator's diagnostic.
    """
    off = turned_off_by(flag, environ)
    if off is not None:
        raise RecoveryError(no_payload(media_type, f"is turned off ({off})"))
    if not keys_configured:
        raise RecoveryError(
            no_payload(
                media_type,
                "was not tried: it decrypts with the node's keys and none are configured (no key in "
                "--decryption-keys-path, no OCICRYPT_KEYPROVIDER_CONFIG)",
            )
        )
    blobs, holder = _held_blobs(starter)
    if not blobs:
        raise RecoveryError(
            no_payload(
                media_type,
                f"found no containerd content-store blob held open by the process that started ctd-decoder "
                f"(pid {starter} and its parents; a wrapper that does not exec, or a caller other than containerd)",
            )
        )
    try:
        head = peek(stdin_fd)
    except (PeekError, OSError) as err:
        raise RecoveryError(no_payload(media_type, f"could not look at the layer's first bytes: {err}")) from None
    blob = _matching_blob(blobs, head, media_type, holder)
    search = find_layer(blob.blobs_dir, blob.digest, blob.size, media_type or None, INDEX_DIR)
    candidates = _distinct(search.found)
    if not candidates:
        bound = f", stopped at {search.stopped_by}" if search.stopped_by else ""
        raise RecoveryError(
            no_payload(
                media_type,
                f"found the layer's blob {blob.digest} ({blob.size:,} bytes) in {blob.store} but no image manifest "
                f"there lists it with an encrypted media type and that size ({search.entries:,} blobs examined, "
                f"{search.files_read:,} read, {search.manifests_parsed:,} manifests parsed{bound}; the manifest may "
                f"have been removed or garbage collected)",
            )
        )
    return Recovered(blob, candidates)


def _held_blobs(starter: int) -> tuple[list[OpenBlob], int]:
    for pid in ancestors(starter):
        blobs = open_blobs(pid)
        if blobs:
            return blobs, pid
    return [], starter


def _matching_blob(blobs: list[OpenBlob], head: bytes, media_type: str, holder: int) -> OpenBlob:
    if not head:
        raise RecoveryError(no_payload(media_type, "found the layer on stdin empty"))
    matches = [blob for blob in blobs if _starts_with(blob, head)]
    if len(matches) == 1:
        return matches[0]
    what = f"{len(blobs)} content-store blob{'s' if len(blobs) != 1 else ''} held open by pid {holder}"
    if not matches:
        raise RecoveryError(no_payload(media_type, f"found none of the {what} starting with the layer's first bytes"))
    raise RecoveryError(
        no_payload(media_type, f"found {len(matches)} of the {what} starting with the layer's first {len(head)} bytes")
    )


def _starts_with(blob: OpenBlob, head: bytes) -> bool:
    if blob.size < len(head) or (len(head) < PEEK_SIZE and blob.size != len(head)):
        return False  # a shorter peek means the whole stream was seen: the blob is exactly that long
    try:
        fd = os.open(blob.proc_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return os.pread(fd, len(head), 0) == head
    except OSError:
        return False
    finally:
        os.close(fd)


def _distinct(found: list[Found]) -> list[Found]:
    """One candidate per distinct descriptor, in the search's order (newest manifest first)."""
    seen: list[dict[str, str]] = []
    kept: list[Found] = []
    for candidate in sorted(found, key=lambda item: item.mtime_ns, reverse=True):
        if candidate.descriptor.annotations in seen:
            continue
        seen.append(candidate.descriptor.annotations)
        kept.append(candidate)
    return kept
