"""Private scratch directories (temporary GnuPG homes) that a killed process cannot leave behind for long.

containerd cancels a pull with SIGKILL, which no clean-up sees. So each directory is named after its
owner, ``<prefix><pid>.<start time>-<random>``, and every decoder run (and the warm server after each
layer) calls :func:`sweep`: a directory whose owner is gone is removed, after killing any process that
still names it on its command line (a gpg-agent normally dies with its owner; this is the fallback).

A process also remembers the directories it made and has not removed yet, and removes them
(:func:`remove_live_dirs`) when it stops: a signal can land between a ``with`` statement's
``__enter__`` and the point where its ``__exit__`` is registered (an ``ExitStack.enter_context``,
for one), and no clean-up of the block runs then.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal

GPG_HOME_PREFIX = "ctd-gpg-"
DEFAULT_PARENT = "/tmp"  # short: a gpg-agent socket path must fit in sun_path (108 bytes)
_live: set[str] = set()
_removal_at_exit = False


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, base 36; None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = int(fields[19])
    digits = ""
    while True:
        ticks, digit = divmod(ticks, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
        if not ticks:
            return digits


def make_private_dir(prefix: str = GPG_HOME_PREFIX, parent: str | None = None) -> str:
    """Create a mode-0700 directory under ``parent`` (default :data:`DEFAULT_PARENT`) naming this process as owner."""
    import tempfile

    owner = f"{os.getpid()}.{_start_time(os.getpid()) or '0'}-"
    path = tempfile.mkdtemp(prefix=prefix + owner, dir=parent or DEFAULT_PARENT)
    global _removal_at_exit
    if not _removal_at_exit:
        atexit.register(remove_live_dirs)
        _removal_at_exit = True
    _live.add(path)
    return path


def remove_private_dir(path: str) -> None:
    """Remove a directory made by :func:`make_private_dir`, with everything in it."""
    import shutil  # not at the top: every decoder run imports this module, few make a directory

    shutil.rmtree(path, ignore_errors=True)
    _live.discard(path)


def remove_live_dirs() -> None:
    """Remove the directories this process made and has not removed, and kill what still names them.

    For the stop path of a process: it runs at interpreter exit, and the decoder calls it after a
    stop signal (its warm-server children leave with ``os._exit``, which skips exit handlers).
    Normally there is nothing left to remove.
    """
    for path in list(_live):
        _kill_processes_naming(path)
        remove_private_dir(path)


def _owner_alive(name: str, prefix: str) -> bool:
    owner = name[len(prefix) :].partition("-")[0]
    pid_text, _, started = owner.partition(".")
    if not pid_text.isdigit():
        return True  # not one of ours (an older layout, or someone else's): leave it
    return _start_time(int(pid_text)) == started


def _kill_processes_naming(path: str) -> None:
    needle = path.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if needle in cmdline.split(b"\0"):
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGKILL)


def sweep(prefix: str = GPG_HOME_PREFIX, parent: str | None = None) -> list[str]:
    """Remove this user's directories under ``parent`` whose owner process is gone; return their paths."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(parent or DEFAULT_PARENT))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if info.st_uid != uid or not entry.is_dir(follow_symlinks=False) or _owner_alive(entry.name, prefix):
            continue
        _kill_processes_naming(entry.path)
        remove_private_dir(entry.path)
        removed.append(entry.path)
    return removed
