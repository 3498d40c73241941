"""Reading a small file whole, refusing one larger than it may be (a key, a certificate, a config)."""

from __future__ import annotations

from .errors import FileTooLargeError


def read_bounded(path: str, limit: int) -> bytes:
    """Return the bytes of the file ``path``; raise OSError if it cannot be read, FileTooLargeError over ``limit``.

    The caller turns either into its own message; no more than ``limit + 1`` bytes are ever read.
    """
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(f"{path} is larger than {limit} bytes")
    return data
