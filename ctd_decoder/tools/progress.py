"""A one-line progress report on a terminal, for layers that take longer than a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO

DELAY = 1.0
INTERVAL = 0.2


class Progress:
    """Counts bytes of one layer; shows ``label  done/total MiB`` on stderr once a second has passed."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty()
        self._label = label
        self._total = total
        self._done = 0
        self._start = time.monotonic()
        self._next = self._start + DELAY
        self._shown = False

    def advance(self, count: int) -> None:
        """Record ``count`` more bytes and refresh the line at most every :data:`INTERVAL` seconds."""
        self._done += count
        if not self._enabled:
            return
        now = time.monotonic()
        if now >= self._next:
            self._next = now + INTERVAL
            self._show(now)

    def _show(self, now: float) -> None:
        mib = 1 << 20
        rate = self._done / mib / max(now - self._start, 1e-9)
        percent = f" {100 * self._done // self._total:3d}%" if self._total else ""
        self._stream.write(
            f"\r{self._label}  {self._done / mib:.0f}/{self._total / mib:.0f} MiB{percent}  {rate:.0f} MiB/s\033[K"
        )
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        """End the line if one was shown."""
        if self._shown:
            self._show(time.monotonic())
            self._stream.write("\n")
            self._stream.flush()
