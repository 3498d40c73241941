"""The progress line: only on a terminal, only after a second, ended with a newline."""

from __future__ import annotations

import io

import pytest

from ctd_decoder.tools import progress
from ctd_decoder.tools.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_appears_on_a_terminal_after_a_second_and_ends_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = _Terminal()
    bar = Progress("encrypting sha256:abc", 8 << 20, out)
    bar.advance(1 << 20)
    assert out.getvalue() == ""  # under a second: nothing
    clock[0] += 1.5
    bar.advance(3 << 20)
    assert out.getvalue().startswith("\rencrypting sha256:abc  4/8 MiB  50%")
    bar.finish()
    assert out.getvalue().endswith("\n")


def test_no_progress_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    bar = Progress("decrypting", 1 << 20, out)
    clock[0] += 5
    bar.advance(1 << 20)
    bar.finish()
    assert out.getvalue() == ""
