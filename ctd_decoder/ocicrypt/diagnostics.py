"""Keeping operator-facing text short and inert, whatever the image put in it.

Annotation names and values are image content: their control characters are escaped (no terminal
escapes, no forged lines), long values are cut, and reasons repeated for thousands of wrapped keys
or annotations are summarized, so that an error stays a few KiB.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_VALUE = 200
MAX_REASON = 600
MAX_REASON_LINES = 16
MAX_MESSAGE = 6000
MAX_NAMES_SHOWN = 3
# Compiled on first use, not at import: every layer imports this module, few print anything.
_CONTROL_CHARACTERS = {False: r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", True: r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]"}
_compiled: dict[bool, re.Pattern[str]] = {}


def _control(keep_lines: bool) -> re.Pattern[str]:
    if keep_lines not in _compiled:
        _compiled[keep_lines] = re.compile(_CONTROL_CHARACTERS[keep_lines])
    return _compiled[keep_lines]


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, limit: int = MAX_VALUE) -> str:
    """Escape every control character (line breaks too) and cut ``text`` to about ``limit`` characters."""
    return cut(_control(keep_lines=False).sub(_escape, text), limit)


def inert_lines(text: str) -> str:
    """Escape control characters other than line feeds and tabs (for a whole multi-line message)."""
    return _control(keep_lines=True).sub(_escape, text)


def cut(text: str, limit: int) -> str:
    """Return ``text``, or its start and a note of how much was cut if it is longer than ``limit``."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit:,} more characters cut]"


def names(items: list[str], shown: int = MAX_NAMES_SHOWN) -> str:
    """List the first ``shown`` names (escaped, cut), then how many more there are."""
    listed = ", ".join(printable(item, 64) for item in items[:shown])
    if len(items) > shown:
        listed += f" and {len(items) - shown:,} more"
    return listed


def summarize(reasons: Iterable[tuple[str, str]], max_lines: int = MAX_REASON_LINES) -> list[str]:
    """Group ``(where, why)`` pairs by reason, in first-seen order, one line per reason.

    ``where`` names a scheme (or key file, ...); it is listed once per reason, with the count of
    repeats: ``jwe: could not ... (and 4,999 more wrapped keys with the same reason)``.
    """
    grouped: dict[str, list[str]] = {}
    for where, why in reasons:
        grouped.setdefault(printable(why, MAX_REASON), []).append(where)
    lines = []
    for why, places in grouped.items():
        distinct = list(dict.fromkeys(places))
        line = f"{names(distinct)}: {why}"
        if len(places) > len(distinct):
            line += f" (and {len(places) - len(distinct):,} more with the same reason)"
        lines.append(line)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], f"and {len(lines) - max_lines + 1:,} more different reasons"]
    return lines


def bounded_message(text: str, limit: int = MAX_MESSAGE) -> str:
    """The last guard before stderr: escaped control characters, at most about ``limit`` characters."""
    return cut(inert_lines(text), limit)
