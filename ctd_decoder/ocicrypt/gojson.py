"""JSON the way Go's encoding/json reads and writes it.

Member names match case-insensitively (an exact match wins), and ``[]byte`` values are standard
base64 with padding, with CR and LF inside ignored on reading.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any


def member(obj: dict[str, Any], name: str) -> Any:
    """Return ``obj``'s member ``name`` matched as Go does, or None."""
    if name in obj:
        return obj[name]
    folded = name.casefold()
    for key, value in obj.items():
        if key.casefold() == folded:
            return value
    return None


def b64decode(value: str, what: str) -> bytes:
    """Decode a Go ``[]byte`` JSON string; raise ValueError naming ``what`` if it is invalid."""
    text = value.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid standard base64") from None


def b64encode(value: bytes) -> str:
    """Encode bytes as Go marshals ``[]byte``."""
    return base64.b64encode(value).decode("ascii")
