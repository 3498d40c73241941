"""Pre-forked children: forked and set up before any request arrives, each waits for one layer.

The server keeps a few children waiting. A waiting child holds none of the server's descriptors
but its end of a socket pair, dies with the server (``PR_SET_PDEATHSIG``) and is named
:data:`IDLE_NAME` (its ``comm``, so that ``ps`` tells it from a child running a layer, named
:data:`LAYER_NAME`). It imports nothing: the backends are still imported by the layer that needs
them. Before it waits, it decodes the server's throwaway layer (:mod:`.rehearsal`), so that the
pages a layer writes are its own before a client waits on it. The server hands it one layer
(:func:`hand_over`): the client's pid as ``SO_PEERCRED`` saw it, the client's request as it came,
and the client's descriptors as ``SCM_RIGHTS``. The child then runs the layer exactly as a child
forked on request would (:func:`.child.run_child`), reports the layer's digest over its end of the
pair, and exits.

Randomness: each child starts from the server's memory, so it must not reuse the server's random
state. OpenSSL (1.1.1 and later; every ``cryptography`` wheel carries 3.x) compares the process's
fork id with the one its DRBG was seeded under and reseeds on the first use in a new process;
Python's ``random`` reseeds its global generator in every child (``os.register_at_fork``); the
rest (``os.urandom``, ``secrets``) reads the kernel. A test shows two children's first bytes differ.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable

from .child import _die_with_the_server
from .protocol import PASSED_FDS, Request
from .rehearsal import Rehearsal, rehearse

DEFAULT_SIZE = 4
POOL_ENV = "CTD_DECODER_WARM_POOL"
MAX_SIZE = 64
IDLE_NAME = b"ctd-warm-idle"
LAYER_NAME = b"ctd-decoder"
# A waiting child reads its request at once; a server blocked longer than this on one is given up.
HAND_OVER_TIMEOUT = 2.0
_PEER_PID = struct.Struct("!i")
_PR_SET_NAME = 15
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}

RunChild = Callable[[Request, list[int], int, int], None]


class PoolError(ValueError):
    """A pool size that is not a small non-negative number."""


def pool_size(value: str | None) -> int:
    """The pool size from ``--pool`` or ``$CTD_DECODER_WARM_POOL`` (default :data:`DEFAULT_SIZE`)."""
    if value is None or value == "":
        return DEFAULT_SIZE
    if not value.isdigit() or int(value) > MAX_SIZE:
        raise PoolError(f"the pool size must be a number from 0 to {MAX_SIZE}, not {value!r}")
    return int(value)


class Waiting:
    """A pre-forked child waiting for its layer: its pid, a pidfd to watch it, the server's end of its pair."""

    __slots__ = ("channel", "pid", "pidfd")

    def __init__(self, channel: socket.socket, pid: int, pidfd: int) -> None:
        self.channel = channel
        self.pid = pid
        self.pidfd = pidfd


def spawn(run_child: RunChild, rehearsal: Rehearsal | None = None) -> Waiting:
    """Fork one waiting child (which decodes ``rehearsal`` before it waits); raise OSError if it cannot be started."""
    server_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server_pid = os.getpid()
    sys.stderr.flush()
    # Held back across the fork: the child must not run the server's stop handler (on its copies of the
    # server's descriptors) before it has set its own; it gets them, if any, once it has.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        server_end.close()
        child_end.close()
        raise
    if pid == 0:
        _wait_for_layer(child_end.detach(), server_pid, run_child, mask, rehearsal)  # never returns
        os._exit(1)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    child_end.close()
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        server_end.close()
        raise
    return Waiting(server_end, pid, pidfd)


def hand_over(child: Waiting, request: Request, fds: list[int]) -> None:
    """Send ``child`` its layer (the request and the client's descriptors); raise OSError if it cannot take it
    (it then never runs the layer: a child needs the whole request, and is killed)."""
    message = _PEER_PID.pack(request.peer_pid) + request.encode()
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))]
    child.channel.settimeout(HAND_OVER_TIMEOUT)
    sent = child.channel.sendmsg([message], rights if fds else [])
    # Only what is left: once the whole request is out, the child may already have run the layer and
    # gone, and a send after that (even of nothing) fails although the layer was handed over.
    if sent < len(message):
        child.channel.sendall(message[sent:])


def _set_name(name: bytes) -> None:
    ctypes.CDLL(None).prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def _receive_layer(channel: socket.socket) -> tuple[Request, list[int]] | None:
    """Block until the server sends a layer; None if it closed the pair (it is stopping)."""
    data, fds, _, _ = socket.recv_fds(channel, 65536, len(PASSED_FDS), socket.MSG_CMSG_CLOEXEC)
    head = _PEER_PID.size + 4
    while data and (len(data) < head or len(data) < head + int.from_bytes(data[_PEER_PID.size : head], "big")):
        chunk = channel.recv(1 << 20)
        if not chunk:
            return None
        data += chunk
    if not data:
        return None
    request = Request.decode(data[head:])
    (request.peer_pid,) = _PEER_PID.unpack_from(data)
    return request, fds


def _wait_for_layer(
    channel_fd: int, server_pid: int, run_child: RunChild, mask: set[int | signal.Signals], rehearsal: Rehearsal | None
) -> None:
    """In a freshly forked child: drop the server's state, rehearse, wait for one layer, run it; never returns."""
    try:
        if channel_fd <= max(PASSED_FDS):  # the rehearsal lends fds 0-3 out
            channel_fd = fcntl.fcntl(channel_fd, fcntl.F_DUPFD_CLOEXEC, max(PASSED_FDS) + 1)
        signal.set_wakeup_fd(-1)  # the server's wake-up pipe is closed below; a signal must not write there
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _set_name(IDLE_NAME)
        os.closerange(0, channel_fd)
        os.closerange(channel_fd + 1, os.sysconf("SC_OPEN_MAX"))
        _die_with_the_server(server_pid)
        if rehearsal is not None:
            rehearse(rehearsal)
        channel = socket.socket(fileno=channel_fd)
        received = _receive_layer(channel)
        channel.detach()  # the descriptor stays open: the layer's digest is reported on it
    except BaseException:  # nothing to tell anyone: the server sees a waiting child gone and replaces it
        os._exit(1)
    if received is None:
        os._exit(0)
    request, fds = received
    _set_name(LAYER_NAME)
    run_child(request, fds, channel_fd, server_pid)
    os._exit(1)


def close(child: Waiting) -> None:
    """Release the server's hold on a child that has been reaped."""
    with contextlib.suppress(OSError):
        os.close(child.pidfd)
    child.channel.close()


def kill(child: Waiting) -> None:
    """SIGKILL a waiting child (its pidfd then becomes readable, and it is reaped as any other)."""
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)


def backoff(failures: int) -> float:
    """How long to wait before replacing a child after ``failures`` waiting children died in a row."""
    return min(0.05 * (2 ** min(failures, 7)), 5.0) if failures else 0.0
