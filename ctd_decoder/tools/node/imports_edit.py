"""Adding one file to the ``imports`` of a host's own containerd config as pure insertions, and taking
exactly those insertions out again, so the file returns to its bytes before the install.
"""

from __future__ import annotations

import json
import re

from .ledger import Insertion

MARK = "# added by `ocicrypt node install`; `ocicrypt node uninstall` removes it\n"

_TABLE = re.compile(r"^\s*\[", re.MULTILINE)
_VERSION = re.compile(r"^version\s*=.*$", re.MULTILINE)
_IMPORTS = re.compile(r"^imports\s*=\s*\[", re.MULTILINE)


class EditError(ValueError):
    """The config cannot be edited or restored safely."""


def plan_insertions(text: str, import_path: str) -> list[Insertion]:
    """The insertions that add ``import_path`` to ``imports`` (a new marked line if there is none)."""
    quoted = json.dumps(import_path)
    first_table = _TABLE.search(text)
    top = text[: first_table.start()] if first_table else text
    existing = _IMPORTS.search(top)
    if existing:
        last = _scan_array(text, existing.end())[1]
        if text[last] == "[":
            return [Insertion(last + 1, quoted)]
        if text[last] == ",":
            return [Insertion(last + 1, f" {quoted},")]
        return [Insertion(last + 1, f", {quoted}")]
    version = _VERSION.search(top)
    line = f"{MARK}imports = [{quoted}]\n"
    if version is None:
        return [Insertion(0, line)]
    end = version.end()
    if end < len(text) and text[end] == "\n":
        return [Insertion(end + 1, line)]
    return [Insertion(end, "\n" + line.rstrip("\n"))]  # a last line without a line break


def _scan_array(text: str, start: int) -> tuple[int, int]:
    """For an array whose ``[`` is at ``start - 1``: the index of its closing ``]``, and the index of
    its last character before that which is neither blank nor in a comment (``start - 1`` if none)."""
    depth, index, quote, last = 1, start, "", start - 1
    while index < len(text):
        char = text[index]
        if quote:
            last = index
            if char == "\\" and quote == '"':
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote, last = char, index
        elif char == "#":
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            continue
        elif char == "[":
            depth, last = depth + 1, index
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index, last
            last = index
        elif not char.isspace():
            last = index
        index += 1
    raise EditError("the imports array of the containerd config is not closed")


def apply(text: str, insertions: list[Insertion]) -> str:
    """``text`` with the insertions made (offsets are of the original text)."""
    for insertion in sorted(insertions, key=lambda i: i.offset, reverse=True):
        text = text[: insertion.offset] + insertion.text + text[insertion.offset :]
    return text


def revert(text: str, insertions: list[Insertion]) -> str:
    """``text`` without the insertions: by their offsets when the file is as written, else by finding
    each inserted text once (an administrator edited elsewhere since). EditError if one is gone or
    ambiguous."""
    shifted = 0
    positions: list[tuple[int, str]] = []
    for insertion in sorted(insertions, key=lambda i: i.offset):
        positions.append((insertion.offset + shifted, insertion.text))
        shifted += len(insertion.text)
    if all(text[pos : pos + len(ins)] == ins for pos, ins in positions):
        for pos, ins in reversed(positions):
            text = text[:pos] + text[pos + len(ins) :]
        return text
    for _, ins in positions:
        if text.count(ins) != 1:
            raise EditError(f"cannot find the installer's edit {ins.strip()!r} exactly once: remove it by hand")
        text = text.replace(ins, "", 1)
    return text
