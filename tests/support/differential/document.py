"""JSON documents that can say what Python dicts cannot: member order, duplicate names, raw literals.

An object is a :class:`Members` list of (name, value) pairs, so a generator can rename, duplicate or
reorder members, and :class:`Raw` puts text that is not JSON a Python value could make (``NaN``,
``1e2``, invalid UTF-8) exactly where it wants it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class Members(list[tuple[str, Any]]):
    """A JSON object as its ordered list of members (duplicates allowed)."""


@dataclass(frozen=True)
class Raw:
    """Bytes written into the document verbatim."""

    text: bytes


def dumps(value: Any) -> bytes:
    """Serialize ``value`` compactly, keeping member order and duplicates."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Members):
        return b"{" + b",".join(dumps(name) + b":" + dumps(item) for name, item in value) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(dumps(item) for item in value) + b"]"
    return json.dumps(value).encode()


def loads(data: bytes) -> Any:
    """Parse JSON into the same model (objects become :class:`Members`)."""
    return json.loads(data, object_pairs_hook=Members)
