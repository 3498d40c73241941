"""Which process started the decoder: the one whose open files say which layer it is."""

from __future__ import annotations

import os

# A wrapper script that does not exec puts itself between containerd and the decoder.
MAX_ANCESTORS = 3


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from ``/proc/<pid>/stat``, or None if it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read(4096)
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    fields = text[text.rfind(b")") + 2 :].split()
    try:
        parent = int(fields[1])
    except (IndexError, ValueError):
        return None
    return parent if parent > 0 else None


def ancestors(start: int) -> list[int]:
    """``start`` and up to :data:`MAX_ANCESTORS` - 1 of its ancestors, nearest first, never pid 1's parent."""
    chain = [start]
    while len(chain) < MAX_ANCESTORS and chain[-1] > 1:
        parent = parent_of(chain[-1])
        if parent is None:
            break
        chain.append(parent)
    return chain


def default_starter() -> int:
    """The process that started this decoder (cold path): our parent."""
    return os.getppid()
