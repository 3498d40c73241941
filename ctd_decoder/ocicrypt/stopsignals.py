"""SIGINT, SIGTERM and SIGHUP turned into an exception, so that clean-ups run on the way out.

The decoder raises its own exception on every stop signal; the OpenPGP wrapper, used by other
programs too, only on those nobody handles, while it holds a GnuPG home with private keys.
Only the main thread can set handlers: elsewhere both context managers do nothing.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (no stubs) what the signal module wraps
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_UNHANDLED = (signal.SIG_DFL, signal.default_int_handler)
# The C function behind signal.signal, without its conversions of numbers to enums and back (7 us a
# call against 0.6 us): every layer sets three handlers and restores them.
_set_handler: Callable[[int, Any], Any] = _signal.signal


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def raising_on_stop(exception: Callable[[int], BaseException], only_unhandled: bool = False) -> Iterator[None]:
    """Raise ``exception(signum)`` on the first stop signal; ignore the ones after it.

    ``only_unhandled``: leave alone the signals that already have a handler of their own.
    """
    if not _in_main_thread():
        yield
        return
    chosen = [sig for sig in STOP_SIGNALS if not only_unhandled or signal.getsignal(sig) in _UNHANDLED]

    def handler(signum: int, _frame: FrameType | None) -> None:
        for sig in STOP_SIGNALS:
            _set_handler(sig, _signal.SIG_IGN)  # its own SIG_IGN: it compares by identity
        raise exception(signum)

    previous = {sig: _set_handler(sig, handler) for sig in chosen}
    try:
        yield
    finally:
        for sig, old in previous.items():
            _set_handler(sig, old)


@contextmanager
def stop_deferred() -> Iterator[None]:
    """Hold stop signals back during a step that must not be cut short; one that came is handled after."""
    if not _in_main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
