"""JSON the way Go's encoding/json reads and writes it.

:func:`unmarshal` decodes into a described Go type with ``json.Unmarshal``'s rules: struct members
match their field exactly or else case-insensitively (Unicode simple folding), every occurrence of
a duplicate member is decoded in order into the same field (so the last wins, and objects merge
into the struct or map decoded before), unknown members are ignored, ``null`` leaves strings,
numbers and structs alone and clears byte strings, maps and slices, an ``int64`` takes only an
integer literal in range, and ``[]byte`` is padded standard base64 in which CR and LF are ignored
(or, as for any slice, an array of numbers 0-255).
The text must be UTF-8 (invalid bytes read as U+FFFD, as Go does) without a byte-order mark, and
``NaN`` or ``Infinity`` are not JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Union

# With the length a multiple of 4, this is StdEncoding's grammar; one character class, not a repeated
# group, so that the regex engine keeps no state per character (a 10 MB annotation cost 350 MiB).
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

STRING = "string"
INT64 = "int64"
BYTES = "[]byte"


# Plain classes, not dataclasses: importing dataclasses would cost every decoder start-up.
class MapOf:
    """``map[string]T``."""

    __slots__ = ("value",)

    def __init__(self, value: GoType) -> None:
        self.value = value


class SliceOf:
    """``[]T``."""

    __slots__ = ("item",)

    def __init__(self, item: GoType) -> None:
        self.item = item


class Struct:
    """A struct (or, with ``pointer``, a pointer to one): JSON member name to field type."""

    __slots__ = ("fields", "pointer")

    def __init__(self, fields: dict[str, GoType], pointer: bool = False) -> None:
        self.fields = fields
        self.pointer = pointer


GoType = Union[str, MapOf, SliceOf, Struct]  # noqa: UP007 (a runtime alias, evaluated on 3.11)


class _Members(list[tuple[str, Any]]):
    """A JSON object as its members in order, duplicates kept."""


class _Number(str):
    """A JSON number that is not an integer literal, kept as its text."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character in numeric literal: {name} is not JSON")


def loads(data: bytes | str) -> Any:
    """Parse JSON text as Go's scanner accepts it; objects keep every member in order."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        return json.loads(text, object_pairs_hook=_Members, parse_float=_Number, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("the JSON document is nested too deeply") from None


def zero(go_type: GoType) -> Any:
    """Go's zero value of ``go_type`` (None for nil byte strings, maps, slices and pointers)."""
    if go_type == STRING:
        return ""
    if go_type == INT64:
        return 0
    if isinstance(go_type, Struct) and not go_type.pointer:
        return {name: zero(field) for name, field in go_type.fields.items()}
    return None


def unmarshal(data: bytes | str, go_type: Struct) -> dict[str, Any]:
    """Decode ``data`` into ``go_type`` as ``json.Unmarshal`` does; raise ValueError where Go returns an error."""
    result: dict[str, Any] = _decode(go_type, loads(data), zero(go_type), ())
    return result


# Where a value sits, for error messages only: () at the top, else (parent, kind, key) with kind "." (a
# struct field), "m" (a map key) or "[" (a slice index); rendered only when there is an error to report.
_Path = tuple[Any, ...]


def _where(path: _Path) -> str:
    parts = []
    while path:
        path, kind, key = path
        parts.append(f".{key}" if kind == "." else f"[{key!r}]" if kind == "m" else f"[{key}]")
    return "".join(reversed(parts)).lstrip(".") or "value"


def fold(name: str) -> str:
    """Go's folded form of a member name: ASCII upper case, other runes the smallest of their fold set."""
    out = []
    for char in name:
        if char.isascii():
            out.append(char.upper())
            continue
        candidates = {char, char.lower(), char.upper(), char.lower().upper(), char.upper().lower()}
        out.append(min(c for c in candidates if len(c) == 1))
    return "".join(out)


def _field(go_type: Struct, name: str) -> str | None:
    if name in go_type.fields:
        return name
    folded = fold(name)
    return next((field for field in go_type.fields if fold(field) == folded), None)


def _decode(go_type: GoType, value: Any, current: Any, path: _Path) -> Any:
    if value is None:
        if go_type in (STRING, INT64) or (isinstance(go_type, Struct) and not go_type.pointer):
            return current
        return None
    if go_type == STRING:
        if not isinstance(value, str) or isinstance(value, _Number):
            raise ValueError(f"cannot unmarshal {_kind(value)} into {_where(path)} of type string")
        return value
    if go_type == INT64:
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
            raise ValueError(f"cannot unmarshal {_kind(value)} into {_where(path)} of type int64")
        return value
    if go_type == BYTES:
        if isinstance(value, list) and not isinstance(value, _Members):  # also a slice of uint8: [1, 2, 3]
            return bytes(_uint8(item, path) for item in value)
        if not isinstance(value, str) or isinstance(value, _Number):
            raise ValueError(f"cannot unmarshal {_kind(value)} into {_where(path)} of type []uint8")
        decoded = _std_base64(value)
        if decoded is None:
            raise ValueError(f"{_where(path)} is not valid standard base64")
        return decoded
    if isinstance(go_type, MapOf):
        if not isinstance(value, _Members):
            raise ValueError(f"cannot unmarshal {_kind(value)} into {_where(path)} of type map")
        result = dict(current or {})
        for name, item in value:
            result[name] = _decode(go_type.value, item, zero(go_type.value), (path, "m", name))
        return result
    if isinstance(go_type, SliceOf):
        if not isinstance(value, list) or isinstance(value, _Members):  # an object's members are a list too
            raise ValueError(f"cannot unmarshal {_kind(value)} into {_where(path)} of type slice")
        return [_decode(go_type.item, item, zero(go_type.item), (path, "[", i)) for i, item in enumerate(value)]
    assert isinstance(go_type, Struct)
    if not isinstance(value, _Members):
        raise ValueError(f"cannot unmarshal {_kind(value)} into {_where(path)} of type struct")
    fields = dict(current) if current is not None else zero(Struct(go_type.fields))
    for name, item in value:
        field = _field(go_type, name)
        if field is not None:
            fields[field] = _decode(go_type.fields[field], item, fields[field], (path, ".", field))
    return fields


def _uint8(value: Any, path: _Path) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
        raise ValueError(f"cannot unmarshal {_kind(value)} into {_where(path)} of type uint8")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, _Members):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Number | int):
        return f"number {value}"
    return "string"


def member(obj: dict[str, Any], name: str) -> Any:
    """Return ``obj``'s member ``name`` matched as Go does (an exact match wins), or None."""
    if name in obj:
        return obj[name]
    folded = fold(name)
    for key, value in obj.items():
        if fold(key) == folded:
            return value
    return None


def b64decode(value: str, what: str) -> bytes:
    """Decode as Go's ``base64.StdEncoding`` (CR and LF ignored, padding required); ValueError names ``what``."""
    decoded = _std_base64(value)
    if decoded is None:
        raise ValueError(f"{what} is not valid standard base64")
    return decoded


def _std_base64(value: str) -> bytes | None:
    text = value.replace("\r", "").replace("\n", "")
    if len(text) % 4 or _BASE64.fullmatch(text) is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def b64encode(value: bytes) -> str:
    """Encode bytes as Go marshals ``[]byte``."""
    return base64.b64encode(value).decode("ascii")
