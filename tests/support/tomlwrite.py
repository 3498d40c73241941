"""Writing a parsed containerd config back as TOML, so tests can break one setting of a real config."""

from __future__ import annotations

import json
from typing import Any


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def _table(lines: list[str], path: list[str], table: dict[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path:
        lines.append("[" + ".".join(json.dumps(part) for part in path) + "]")
    lines.extend(f"{json.dumps(key)} = {_value(value)}" for key, value in scalars.items())
    for key, value in tables.items():
        _table(lines, [*path, key], value)


def dumps(document: dict[str, Any]) -> str:
    """Return ``document`` (as tomllib parsed it; no arrays of tables) as TOML text."""
    lines: list[str] = []
    _table(lines, [], document)
    return "\n".join(lines) + "\n"
