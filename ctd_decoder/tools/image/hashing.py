"""A digest computed on a helper thread, so hashing a blob overlaps with encrypting and writing it.

hashlib releases the GIL on large updates, so on two cores the hash of one chunk runs while the
main thread encrypts or writes the next. The queue is bounded: at most :data:`DEPTH` chunks wait,
so memory stays flat however large the blob.
"""

from __future__ import annotations

import hashlib
import queue
import threading

DEPTH = 4


class BackgroundHash:
    """Hash immutable chunks on a daemon thread; :meth:`hexdigest` waits for the last one."""

    def __init__(self, algorithm: str = "sha256") -> None:
        self.name = algorithm
        self._hash = hashlib.new(algorithm)
        self._queue: queue.Queue[bytes | None] = queue.Queue(DEPTH)
        self._thread = threading.Thread(target=self._run, name=f"{algorithm}-hash", daemon=True)
        self._thread.start()
        self._result: str | None = None

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        """Queue ``chunk`` (which must not change afterwards) for hashing."""
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        """Return the hex digest of everything queued (stops the thread)."""
        if self._result is None:
            self._queue.put(None)
            self._thread.join()
            self._result = self._hash.hexdigest()
        return self._result

    def close(self) -> None:
        """Stop the thread without needing the result."""
        self.hexdigest()
