"""The background hash of the image tools: its result, and an abandoned blob that never hangs the command."""

from __future__ import annotations

import hashlib
import threading
import time

from ctd_decoder.tools.image.hashing import ABANDON_WAIT, DEPTH, BackgroundHash


def test_the_digest_is_that_of_every_chunk_in_order() -> None:
    chunks = [bytes([n]) * 70_000 for n in range(10)]
    written: list[bytes] = []
    background = BackgroundHash(then=written.append)
    for chunk in chunks:
        background.update(chunk)
    assert background.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert written == chunks


def test_abandoning_a_blob_whose_writer_is_stuck_returns_and_writes_nothing_more() -> None:
    """A stop signal while the writer thread is busy and the queue is full: the clean-up must not wait for
    the queue (Ctrl-C once hung here for good), and no chunk queued before it is written after it."""
    release = threading.Event()
    written: list[bytes] = []

    def slow_write(chunk: bytes) -> None:
        release.wait(10)
        written.append(chunk)

    background = BackgroundHash(then=slow_write)
    for n in range(DEPTH + 1):  # one in the writer, DEPTH waiting: the queue is full
        background.update(bytes([n]) * 1024)
    started = time.monotonic()
    background.abandon()
    assert time.monotonic() - started < ABANDON_WAIT + 0.5
    release.set()
    background._thread.join(5)
    assert not background._thread.is_alive()
    assert written == [bytes([0]) * 1024]  # the chunk being written when it was abandoned, no other


def test_abandon_after_the_digest_is_a_no_op() -> None:
    background = BackgroundHash()
    background.update(b"layer")
    digest = background.hexdigest()
    started = time.monotonic()
    background.abandon()
    assert time.monotonic() - started < 0.1
    assert background.hexdigest() == digest == hashlib.sha256(b"layer").hexdigest()
