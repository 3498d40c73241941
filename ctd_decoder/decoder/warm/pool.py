"""The warm server's children: waiting ones, which take a client themselves, and ones forked for a layer.

A waiting child is forked ahead of time. It holds none of the server's descriptors but the listening
socket and its end of a socket pair, dies with the server (``PR_SET_PDEATHSIG``) and is named
:data:`IDLE_NAME` (its ``comm``, so that ``ps`` tells it from a child running a layer, named
:data:`LAYER_NAME`). It imports nothing: the backends are still imported by the layer that needs them.
First it decodes the server's throwaway layer (:mod:`.rehearsal`), so that the pages a layer writes are
its own before a client waits on it; then it waits on the listening socket (``EPOLLEXCLUSIVE``: one
waiting child is woken a client), accepts, serves the protocol up to the client's go-ahead
(:mod:`.handshake`) and runs the layer (:func:`.child.run_child`). The server is not on that path: it
only hears about it. When no child waits, the server takes the client and forks a child for its layer
(:func:`spawn_for_layer`), which runs the same way.

A child reports over its end of the pair, one line each (:class:`Child` reads them in the server): ``R``
once it has rehearsed and waits for a client (until then the server still takes clients itself), ``T``
with the client's connection as ``SCM_RIGHTS`` (a waiting child has taken a layer: the server watches
that connection, and kills the child if the client goes away), ``D`` and the layer's digest, ``X`` and
the exit status (sent once the child has closed the client's descriptors, just before it gives the
client that status itself, so that nobody waits for the child's exit), ``L`` and a line for the server's
log. The server reads the reports of a child with a layer only when the child exits or its client goes
away: none of them wakes it while the client waits for its status. The server never writes to a child;
closing its side tells waiting children to exit.

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
import select
import signal
import socket
import sys
import time
from collections.abc import Callable

from .handshake import Dropped, take_layer
from .priority import Policy, PriorityError, idle_while
from .protocol import Request
from .rehearsal import Rehearsal, rehearse

DEFAULT_SIZE = 4
POOL_ENV = "CTD_DECODER_WARM_POOL"
MAX_SIZE = 64
IDLE_NAME = b"ctd-warm-idle"
LAYER_NAME = b"ctd-decoder"
READY, TAKEN, DIGEST, EXIT, LOG = b"R", b"T", b"D", b"X", b"L"
_MAX_PENDING = 1 << 16
_PR_SET_NAME = 15
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
# Kept descriptors go above the ones a child lends out (the rehearsal's and the layer's 0-5).
_KEPT_FROM = 10

# (request, the client's descriptors, the child's end of its pair, the client's connection, the server's pid,
# the environment the child had while it waited: None for a child forked for the layer)
RunChild = Callable[[Request, list[int], int, int, int, dict[bytes, bytes] | None], None]


class PoolError(ValueError):
    """A pool size that is not a small non-negative number."""


def pool_size(value: str | None) -> int:
    """The pool size from ``--pool`` or ``$CTD_DECODER_WARM_POOL`` (default :data:`DEFAULT_SIZE`)."""
    if value is None or value == "":
        return DEFAULT_SIZE
    if not value.isdigit() or int(value) > MAX_SIZE:
        raise PoolError(f"the pool size must be a number from 0 to {MAX_SIZE}, not {value!r}")
    return int(value)


class Child:
    """The server's view of one child: its pid, a pidfd to watch it, its end of the pair, what it reported.

    ``conn`` is the server's copy of the client's connection once the child has a layer (None while it
    waits); ``status`` the exit status the child reported (None until it did).
    """

    __slots__ = (
        "_pending",
        "channel",
        "conn",
        "digest",
        "done_at",
        "killed",
        "pid",
        "pidfd",
        "ready",
        "started",
        "status",
    )

    def __init__(self, channel: socket.socket, pid: int, pidfd: int, conn: socket.socket | None = None) -> None:
        self.channel = channel
        self.pid = pid
        self.pidfd = pidfd
        self.conn = conn
        self.digest = ""
        self.status: int | None = None
        self.started = 0.0
        self.done_at = 0.0
        self.killed = False
        self.ready = False  # a waiting child that has said it waits for a client
        self._pending = b""

    @property
    def taken(self) -> bool:
        """Whether the child has a layer (it took a client, or was forked for one)."""
        return self.conn is not None

    def read_reports(self) -> list[tuple[bytes, str]]:
        """The complete report lines the child has sent since the last call, as (kind, text)."""
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.channel, 4096, 1, socket.MSG_CMSG_CLOEXEC | socket.MSG_DONTWAIT)
            except OSError:  # nothing more now (or the child is gone: its pidfd says so)
                break
            for fd in fds:  # the client's connection, which comes with TAKEN
                if self.conn is None:
                    self.conn = socket.socket(fileno=fd)
                else:
                    os.close(fd)
            if not data:
                break
            self._pending = (self._pending + data)[-_MAX_PENDING:]
        *lines, self._pending = self._pending.split(b"\n")
        return [(line[:1], line[2:].decode("ascii", "replace")) for line in lines if line]


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up once, in the server


def _set_name(name: bytes) -> None:
    _prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def die_with_the_server(server_pid: int) -> None:
    """Be killed when the server dies (a child whose server is gone could not be watched or reaped)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != server_pid:  # the server died before the line above
        os._exit(1)


def report(channel_fd: int, kind: bytes, text: str = "") -> None:
    """Send the server one report line (nothing happens if it is gone)."""
    with contextlib.suppress(OSError):
        os.write(channel_fd, kind + b" " + text.encode("ascii", "replace")[:400].replace(b"\n", b" ") + b"\n")


def _fork(in_child: Callable[[int, list[int], int], None], keep: list[int]) -> Child:
    """Fork a child that keeps only ``keep`` and its end of a new pair, and runs ``in_child(its end, keep as
    renumbered, the server's pid)``; raise OSError if it cannot be started."""
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
        try:
            signal.set_wakeup_fd(-1)  # the server's wake-up pipe is closed below; a signal must not write there
            for signum in (*_STOP_SIGNALS, signal.SIGCHLD):  # SIGCHLD: it may have come ignored to the server
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a decoder started by exec
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            kept = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _KEPT_FROM) for fd in [child_end.fileno(), *keep]]
            _close_all_but(kept)
            die_with_the_server(server_pid)
            in_child(kept[0], kept[1:], server_pid)
        finally:  # in_child never returns; if it raised, there is nobody to tell: the server sees the child gone
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
    server_end.setblocking(False)
    return Child(server_end, pid, pidfd)


def _close_all_but(kept: list[int]) -> None:
    low = 0
    for fd in sorted(kept):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def spawn_waiting(
    listener: socket.socket, run_child: RunChild, rehearsal: Rehearsal | None = None, serving: Policy | None = None
) -> Child:
    """Fork a waiting child that takes its own client from ``listener`` after decoding ``rehearsal``. With
    ``serving`` (see :mod:`.priority`) it does all that comes before the wait at ``SCHED_IDLE`` (the server
    may have forked it so already) and waits at ``serving``."""

    def wait(channel_fd: int, kept: list[int], server_pid: int) -> None:
        _set_name(IDLE_NAME)
        try:
            with idle_while(serving) if serving is not None else contextlib.nullcontext():
                if rehearsal is not None:
                    rehearse(rehearsal)
        except PriorityError:  # a child must not serve a layer at idle priority
            os._exit(1)
        environ = dict(os.environb)  # now, not while a client waits (a variable at a time, in Python)
        request, fds, conn_fd = _take_client(socket.socket(fileno=kept[0]), channel_fd)
        _set_name(LAYER_NAME)
        run_child(request, fds, channel_fd, conn_fd, server_pid, environ)

    return _fork(wait, [listener.fileno()])


def spawn_for_layer(run_child: RunChild, request: Request, fds: list[int], conn: socket.socket) -> Child:
    """Fork a child for a layer the server took itself (``fds``: the client's descriptors; ``conn``: its
    connection, which the returned child keeps a copy of for the server to watch)."""

    def run(channel_fd: int, kept: list[int], server_pid: int) -> None:
        _set_name(LAYER_NAME)
        run_child(request, kept[1:], channel_fd, kept[0], server_pid, None)

    child = _fork(run, [conn.fileno(), *fds])
    child.conn = conn
    return child


def _take_client(listener: socket.socket, channel_fd: int) -> tuple[Request, list[int], int]:
    """In a waiting child: accept clients until one hands over its layer; exit when the server closes the pair."""
    listener.setblocking(False)  # another child may take the client this one was woken for
    watch = select.epoll()
    watch.register(listener.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
    watch.register(channel_fd, select.EPOLLIN)  # readable only once the server closes its side
    uid = os.geteuid()
    channel = socket.socket(fileno=channel_fd)  # made now, not while a client waits (it asks the kernel what it is)
    report(channel_fd, READY)
    while True:
        if any(fd == channel_fd for fd, _ in watch.poll()):
            os._exit(0)
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            continue
        accepted = time.monotonic()
        try:
            taken = take_layer(conn, uid)
        except Dropped as dropped:
            report(channel_fd, LOG, str(dropped))
            taken = None
        if taken is None:
            conn.close()
            continue
        watch.close()
        listener.close()  # a child that has its layer keeps no client of the socket from the others
        request, fds = taken
        with contextlib.suppress(OSError):
            socket.send_fds(channel, [b"%s %.6f\n" % (TAKEN, accepted)], [conn.fileno()])
        channel.detach()
        return request, fds, conn.detach()


def close(child: Child) -> None:
    """Release the server's hold on a child that has been reaped."""
    with contextlib.suppress(OSError):
        os.close(child.pidfd)
    child.channel.close()
    if child.conn is not None:
        child.conn.close()


def kill(child: Child) -> None:
    """SIGKILL a child (its pidfd then becomes readable, and it is reaped as any other)."""
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)


def backoff(failures: int) -> float:
    """How long to wait before replacing a child after ``failures`` waiting children died in a row."""
    return min(0.05 * (2 ** min(failures, 7)), 5.0) if failures else 0.0
