"""Temporarily setting process environment variables (PKCS#11 modules read theirs from it)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

_LOCK = threading.RLock()


@contextlib.contextmanager
def scoped_environment(env: dict[str, str]) -> Iterator[None]:
    """Set ``env`` for the duration of the block (one block at a time), then restore what was there."""
    with _LOCK:
        saved = {name: os.environ.get(name) for name in env}
        try:
            os.environ.update(env)
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
