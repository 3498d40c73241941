"""Make a failure's message reach containerd instead of ``wrong diff id ... calculated on extraction``.

containerd (1.6 and 2.x, upstream containerd/containerd#6914) reads a stream processor's stdout to end
of file, applies what it read, and only then asks for the processor's error. That error is recorded by
another goroutine once it has reaped the process and collected its stderr. When the decoder fails, its
exit closes stdout and ends the read at the same instant, so in about one failing pull in ten the
differ looks before the error is recorded, applies an empty layer and reports a wrong diff ID.

The fix: on failure, a forked child keeps the write end of stdout open (and nothing else) until
containerd has reaped the decoder, plus a short margin; only then does containerd's read see end of
file, and the error is recorded by then. Successful layers never get here.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import time

from . import MEDIA_TYPE_ENV

REAP_WAIT_LIMIT = 1.0  # seconds; containerd reaps at once, this only bounds other callers
AFTER_REAP_MARGIN = 0.1  # seconds for containerd's goroutine to record the error after reaping
POLL_INTERVAL = 0.002


def hold_stdout_until_reaped() -> None:
    """Fork a child that holds stdout open until this process is reaped (bounded), then return.

    Only when containerd runs the decoder (its media type variable is set) and stdout is a pipe;
    call it after the failure's message is written, just before exiting with a failure status.
    """
    if MEDIA_TYPE_ENV not in os.environ or not _stdout_is_pipe():
        return
    with contextlib.suppress(OSError, ValueError):  # a broken pipe must not turn into a traceback
        sys.stdout.flush()
        sys.stderr.flush()
    decoder, stdout = os.getpid(), sys.stdout.fileno()
    try:
        child = os.fork()
    except OSError:
        return
    if child == 0:
        _hold(decoder, stdout)


def _stdout_is_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def _open_descriptors() -> list[int]:
    """This process's open file descriptors (containerd may allow a billion: never loop to the limit)."""
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3 + 64))


def _hold(decoder: int, stdout: int) -> None:
    """In the child: keep only ``stdout``, wait for ``decoder`` to be reaped, then exit at once.

    Nothing here touches Python objects another thread of the parent may have held locked at the fork.
    """
    try:
        # stdin, stderr and the payload pipe must close with the decoder: containerd waits for them.
        for fd in _open_descriptors():
            if fd != stdout:
                with contextlib.suppress(OSError):  # e.g. the listing's own, already closed
                    os.close(fd)
        deadline = time.monotonic() + REAP_WAIT_LIMIT
        while time.monotonic() < deadline:
            try:
                os.kill(decoder, 0)  # succeeds while the decoder runs or is an unreaped zombie
            except OSError:
                break
            time.sleep(POLL_INTERVAL)
        time.sleep(AFTER_REAP_MARGIN)
    finally:
        os._exit(0)
