"""Waiting in tests for something another process does: the one polling helper."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll ``condition`` every 10 ms until it holds or ``timeout`` seconds pass; whether it held at the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())
