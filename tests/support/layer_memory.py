"""Memory of the process that decodes one layer, read from /proc while it waits for the end of its input.

``wait4``'s peak RSS is no use here: it counts the interpreter that forked the decoder (its RSS before the
exec), and a warm server's child is the server's to reap, not ours. So the whole layer is written, stdin
is kept open, and once the decoding process has read all of it and sleeps in the next read, its peak RSS
(``VmHWM``, since its exec or fork), PSS (pages shared with the server or other processes divided among
them) and private memory are read; then stdin is closed and the decoder finishes.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from support.decoder import start_decoder
from support.proc import state, status_field


@dataclass
class LayerMemory:
    """MiB: the decoding process's peak RSS, PSS, private memory, and the peak RSS of the one started."""

    peak_rss: float
    pss: float
    private: float
    launched_peak_rss: float


def _status_mib(pid: int, field: str) -> float:
    return int(status_field(pid, field)) / 1024


def _rollup_mib(pid: int) -> dict[str, float]:
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    return {name: int(value.split()[0]) / 1024 for name, value in (line.split(":", 1) for line in lines)}


def _sleeping(pid: int) -> bool:
    return state(pid) == "S"


def _unread(fd: int) -> int:
    count: int = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    return count


def waits_for_input(pid: int, input_fd: int) -> bool:
    """Tell whether ``pid`` has read everything written to the pipe ``input_fd`` and sleeps (in the next read)."""
    return _unread(input_fd) == 0 and _sleeping(pid)


def rss_mib(pid: int) -> float:
    """The resident set size of ``pid`` now (``VmRSS``)."""
    return _status_mib(pid, "VmRSS")


def peak_rss_mib(pid: int) -> float:
    """The peak RSS of ``pid`` since its exec (or fork): ``VmHWM``, which wait4 cannot give."""
    return _status_mib(pid, "VmHWM")


def layer_memory(
    argv: list[str],
    env: dict[str, str],
    layer: tuple[bytes, bytes, int],
    decoding: Callable[[int], int | None],
) -> LayerMemory:
    """Run ``argv`` on one layer (blob on stdin, payload on fd 3, the plaintext size it must write) and
    measure the process that decodes it: ``decoding(pid of argv)`` (the pid itself, or the warm server's
    child; None until it exists). The blob must fit in a pipe (64 KiB)."""
    blob, payload, plaintext_size = layer
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    process = start_decoder(stdin_r, payload, env=env, command=argv, stdout=stdout_w, stderr=None)
    for fd in (stdin_r, stdout_w):
        os.close(fd)
    os.write(stdin_w, blob)
    try:
        deadline = time.monotonic() + 30
        while True:
            pid = decoding(process.pid)
            if pid is not None and waits_for_input(pid, stdin_w):
                rollup = _rollup_mib(pid)
                figures = LayerMemory(
                    peak_rss_mib(pid),
                    rollup["Pss"],
                    rollup["Private_Clean"] + rollup["Private_Dirty"],
                    peak_rss_mib(process.pid),
                )
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{argv[0]} never waited for the end of its layer")
            time.sleep(0.002)
    finally:
        os.close(stdin_w)
        with os.fdopen(stdout_r, "rb") as output:
            received = len(output.read())
        process.wait(30)
    if process.returncode != 0 or received != plaintext_size:
        raise RuntimeError(f"{argv[0]} failed with status {process.returncode} ({received} bytes out)")
    return figures
