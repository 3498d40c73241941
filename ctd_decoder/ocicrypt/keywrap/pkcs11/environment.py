"""Temporarily setting process environment variables (PKCS#11 modules read theirs from it)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping

_LOCK = threading.RLock()


@contextlib.contextmanager
def scoped_environment(env: Mapping[str, str | None]) -> Iterator[None]:
    """Set ``env`` (a None value unsets the variable) for the block, one block at a time, then restore."""
    with _LOCK:
        saved = {name: os.environ.get(name) for name in env}
        try:
            for name, value in env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
