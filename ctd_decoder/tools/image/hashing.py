"""A digest computed on a helper thread, so hashing a blob overlaps with encrypting it.

hashlib releases the GIL on large updates, so on two cores the hash of one chunk runs while the
main thread encrypts the next. The thread can also write each chunk after hashing it (``then``),
taking the write system calls off the main thread too. The queue is bounded: at most
:data:`DEPTH` chunks wait, so memory stays flat however large the blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Callable

DEPTH = 4
# How long :meth:`BackgroundHash.abandon` waits for the thread: a stop signal that lands inside the
# queue's put or get can lose the wake-up the thread sleeps on, and then nothing would end the wait.
ABANDON_WAIT = 1.0


class BackgroundHash:
    """Hash immutable chunks on a daemon thread; :meth:`hexdigest` waits for the last one.

    An exception raised by ``then`` stops the processing; it is raised again in the caller's thread
    by the next :meth:`update` or by :meth:`hexdigest`.
    """

    def __init__(self, algorithm: str = "sha256", then: Callable[[bytes], None] | None = None) -> None:
        self.name = algorithm
        self._hash = hashlib.new(algorithm)
        self._then = then
        self._queue: queue.Queue[bytes | None] = queue.Queue(DEPTH)
        self._failure: BaseException | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name=f"{algorithm}-hash", daemon=True)
        self._thread.start()
        self._result: str | None = None

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._abandoned:
                return
            if self._failure is not None:
                continue
            try:
                self._hash.update(chunk)
                if self._then is not None:
                    self._then(chunk)
            except BaseException as err:  # handed to the caller's thread
                self._failure = err

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def update(self, chunk: bytes) -> None:
        """Queue ``chunk`` (which must not change afterwards) for hashing."""
        self._raise_failure()
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        """Return the hex digest of everything queued (stops the thread)."""
        if self._result is None:
            self.close()
            self._raise_failure()
            self._result = self._hash.hexdigest()
        return self._result

    def close(self) -> None:
        """Stop the thread once the queued chunks are done, without needing the result."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def abandon(self) -> None:
        """Stop without the result (the blob failed or a stop signal ended it): no chunk is processed
        after this, and the wait for the thread is bounded by :data:`ABANDON_WAIT`."""
        self._abandoned = True
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(ABANDON_WAIT)
