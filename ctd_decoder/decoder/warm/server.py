"""The fork server: a resident process that has done the decoder's imports and runs each layer in a child.

Single-threaded (so forking is safe), it imports only fork-safe modules before forking: the
decoder, the library's core and the JWE and PKCS#7 schemes; no grpc, gnupg or pkcs11, which the
children import as the cold path does. It keeps a few children forked ahead of time (:mod:`.pool`),
which take clients from the listening socket themselves, so that a layer's way does not pass through
the server; it takes a client itself, and forks a child for its layer, only when no child waits, and
refills the pool when it has nothing else to do. It never reads a key, a payload or a layer (a
request only when it takes the client itself): the client's descriptors are only passed on, and of a
client a child took it only watches the connection. Only its own uid may connect (``SO_PEERCRED``,
checked by whoever takes the client). Each child is watched through a pidfd and reaped when it
exits; if its client goes away before the layer is done, the child is killed. One log line per layer
on stderr: digest, verdict, milliseconds.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import select
import signal
import socket
import stat
import sys
import time

from . import pool
from .handshake import Dropped, close_fds, take_layer
from .priority import PriorityError, idle_while, serving_policy
from .protocol import STATUS
from .rehearsal import Rehearsal

# Everything a JWE or PKCS#7 layer needs, loaded once here instead of once per layer.
PRELOADED = (
    "ctd_decoder.decoder.cold",
    "ctd_decoder.decoder.payload",
    "ctd_decoder.decoder.warm.child",
    "ctd_decoder.decoder.recovery.run",
    "ctd_decoder.ocicrypt.layer",
    "ctd_decoder.ocicrypt.stream",
    "ctd_decoder.ocicrypt.keysdir",
    "ctd_decoder.ocicrypt.digest",
    "ctd_decoder.ocicrypt.keywrap.jwe",
    "ctd_decoder.ocicrypt.keywrap.pkcs7.wrapper",
    "ctd_decoder.ocicrypt.keywrap.pgp.scratch",
)
_LISTEN_FDS_START = 3


class ServerError(Exception):
    """The server cannot start (socket directory not private, another server running ...)."""


def preload() -> Rehearsal | None:
    """Import what the children will need (fork-safe modules only), do OpenSSL's first-use work and
    decode a throwaway layer once; return that layer for the children to rehearse on (None if it failed)."""
    for name in PRELOADED:
        importlib.import_module(name)
    from ...ocicrypt.diagnostics import inert_lines, printable
    from .rehearsal import make_rehearsal, rehearse, throwaway_rsa_key
    from .warmup import warm_up

    printable("")  # compiles its pattern on first use: once here, not in every child
    inert_lines("")
    key = throwaway_rsa_key()  # one key generation (tens of ms) for both
    warm_up(key)
    rehearsal = make_rehearsal(key)
    decoded = rehearse(rehearsal)
    if not decoded:
        log("the throwaway layer did not decode: children start without rehearsing")
    # Out of the collector's reach: a child's collections would otherwise write to (and so copy)
    # every page of the server's objects.
    gc.freeze()
    return rehearsal if decoded else None


def log(message: str) -> None:
    """One line on the server's stderr."""
    sys.stderr.write(f"ctd-decoder-warm: {message}\n")
    sys.stderr.flush()


def _private_directory(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    info = os.stat(directory)
    if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise ServerError(f"{directory} must belong to uid {os.geteuid()} and have mode 0700")


def bind_socket(path: str) -> socket.socket:
    """Listen on ``path`` (mode 0600 in a 0700 directory), replacing a stale socket but not a live server."""
    _private_directory(path)
    if os.path.lexists(path):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)
            else:
                raise ServerError(f"another server already listens on {path}")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    listener.listen(128)
    return listener


def activated_socket() -> socket.socket | None:
    """The listening socket systemd passed (socket activation), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    # Moved off fd 3, which is where every child puts its payload.
    fd = os.dup(_LISTEN_FDS_START)
    os.close(_LISTEN_FDS_START)
    return socket.socket(fileno=fd)


class WarmServer:
    """Serves clients on ``listener``: ``pool_size`` children wait and take clients themselves; when none
    waits, the server takes the client and forks a child for its layer."""

    def __init__(
        self,
        listener: socket.socket,
        run_child: pool.RunChild,
        pool_size: int = pool.DEFAULT_SIZE,
        rehearsal: Rehearsal | None = None,
    ) -> None:
        self._listener = listener
        self._listener.setblocking(False)
        self._run_child = run_child
        self._poll = select.poll()
        self._listening = False
        self._children: dict[int, pool.Child] = {}  # by pidfd, oldest first
        self._by_channel: dict[int, pool.Child] = {}
        self._by_conn: dict[int, pool.Child] = {}
        self._pool_size = pool_size
        self._rehearsal = rehearsal
        self._serving = serving_policy()  # None: nothing at idle priority (see .priority)
        self._refill_at = 0.0  # not before this (monotonic): waiting children that die are replaced slower
        self._waiting_deaths = 0  # in a row, without a layer taken in between
        self._stopping = False
        self._uid = os.geteuid()
        # Signals wake poll() through this pipe (PEP 475 would otherwise resume the wait).
        self._wake_read, wake_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        self._poll.register(self._wake_read, select.POLLIN)
        self._listen_if_none_waits()

    def _waiting(self) -> int:
        return sum(1 for child in self._children.values() if not child.taken)

    def _one_ready(self) -> bool:
        """Whether a child waits for a client (one still rehearsing does not count)."""
        return any(child.ready and not child.taken for child in self._children.values())

    def _layer_running(self) -> bool:
        return any(child.taken and child.status is None for child in self._children.values())

    def _listen_if_none_waits(self) -> None:
        """The server takes clients itself only while no child waits for one (a child still rehearsing,
        which may take long at idle priority on a busy node, does not count)."""
        listen = not self._stopping and not self._one_ready()
        if listen and not self._listening:
            self._poll.register(self._listener.fileno(), select.POLLIN)
        elif self._listening and not listen:
            self._poll.unregister(self._listener.fileno())
        self._listening = listen

    def stop(self) -> None:
        """Stop accepting; :meth:`serve` returns once the running layers are done (waiting children exit)."""
        if not self._stopping:
            self._stopping = True
            self._listen_if_none_waits()
            self._listener.close()
            for child in self._children.values():
                if not child.taken:
                    _tell_to_stop(child)

    def serve(self) -> None:
        """Run until :meth:`stop` and the last child has exited."""
        while not (self._stopping and not self._children):
            try:
                events = self._poll.poll(self._refill_timeout())
            except InterruptedError:
                continue
            if not events:  # nothing else to do: one more child for the pool
                self._refill()
            # Handlers close descriptors and a later one may reuse a number: each checks its event still holds.
            for fd, _ in events:
                if fd == self._wake_read:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_read, 512)
                elif self._listening and fd == self._listener.fileno():
                    self._accept()
                elif fd in self._by_channel:
                    self._read_reports(self._by_channel[fd])
                elif fd in self._children:
                    self._reap(self._children[fd])
                elif fd in self._by_conn:
                    self._client_gone(self._by_conn[fd])

    def _refill_timeout(self) -> int | None:
        """Milliseconds poll() may wait: none while the pool is short (after the back-off), else forever.

        Not while a layer runs: a fork and a new child's set-up would take CPU from it (on a small node,
        half of it); a client that finds no child waiting is taken by the server, which forks for it.
        """
        if not self._pool_short():
            return None
        return max(0, int((self._refill_at - time.monotonic()) * 1000) + 1) if self._refill_at else 0

    def _pool_short(self) -> bool:
        """Whether a child should be added to the pool now (back-off aside): not stopping, fewer waiting
        than the pool's size, and no layer running."""
        return not self._stopping and self._waiting() < self._pool_size and not self._layer_running()

    def _refill(self) -> None:
        if not self._pool_short():
            return
        if time.monotonic() < self._refill_at:
            return
        # At idle priority only while a child takes the clients: the server takes none until the fork is done.
        idle = self._serving if self._one_ready() else None
        try:
            with idle_while(idle) if idle is not None else contextlib.nullcontext():
                child = pool.spawn_waiting(self._listener, self._run_child, self._rehearsal, self._serving)
        except OSError as err:
            log(f"cannot start a waiting child: {err.strerror}")
            self._waiting_deaths += 1
            self._refill_at = time.monotonic() + pool.backoff(self._waiting_deaths)
            return
        self._add(child)
        if self._stopping:  # SIGTERM arrived while it was being forked: stop() has not seen it
            _tell_to_stop(child)

    def _add(self, child: pool.Child) -> None:
        self._children[child.pidfd] = child
        self._poll.register(child.pidfd, select.POLLIN)
        if child.conn is not None:  # forked for a layer: its reports are read when it exits
            self._watch_client(child)
        else:
            self._by_channel[child.channel.fileno()] = child
            self._poll.register(child.channel.fileno(), select.POLLIN)
        self._listen_if_none_waits()

    def _watch_client(self, child: pool.Child) -> None:
        assert child.conn is not None
        child.started = time.monotonic()
        self._by_conn[child.conn.fileno()] = child
        self._poll.register(child.conn.fileno(), select.POLLIN)
        self._waiting_deaths = 0
        self._refill_at = 0.0

    def _unwatch_client(self, child: pool.Child) -> None:
        if child.conn is not None and self._by_conn.get(child.conn.fileno()) is child:
            self._poll.unregister(child.conn.fileno())
            del self._by_conn[child.conn.fileno()]

    def _stop_reading(self, child: pool.Child) -> None:
        """No longer poll the child's reports (they are read on demand)."""
        if self._by_channel.get(child.channel.fileno()) is child:
            self._poll.unregister(child.channel.fileno())
            del self._by_channel[child.channel.fileno()]

    def _read_reports(self, child: pool.Child) -> None:
        was_taken = child.taken
        for kind, text in child.read_reports():
            if kind == pool.READY:
                child.ready = True
                self._listen_if_none_waits()
            elif kind == pool.TAKEN and not was_taken and child.conn is not None:
                was_taken = True
                self._watch_client(child)
                child.started = _reported_time(text, child.started)  # when it accepted the client
                self._listen_if_none_waits()
                # The rest (D, X) is read when it exits or its client goes away: its X, sent just before
                # the client's status, must not wake the server then, to take a CPU from the client.
                self._stop_reading(child)
            elif kind == pool.DIGEST:
                child.digest = text
            elif kind == pool.EXIT and child.status is None:
                # It tells the client itself now: the server's copy of the connection is no longer needed.
                status, _, when = text.partition(" ")
                child.status = int(status) if status.isdigit() else 1
                child.done_at = _reported_time(when, time.monotonic())
                self._unwatch_client(child)
                if child.conn is not None:
                    child.conn.close()
            elif kind == pool.LOG:
                log(text)

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):  # a waiting child took it
            return
        except OSError as err:
            log(f"accept failed: {err.strerror}")
            return
        try:
            taken = take_layer(conn, self._uid)
        except Dropped as dropped:
            log(str(dropped))
            taken = None
        if taken is None:  # refused, or the client gave up before committing: it decodes the layer itself
            conn.close()
            return
        request, fds = taken
        try:
            child = pool.spawn_for_layer(self._run_child, request, fds, conn)
        except OSError as err:
            # The client is committed and cannot decode any more: closing tells it the layer failed.
            conn.close()
            log(f"layer - failed (cannot start a child: {err.strerror})")
            return
        finally:
            close_fds(fds)
        self._add(child)

    def _client_gone(self, child: pool.Child) -> None:
        # The client sends nothing after its go-ahead: readable means it went away (containerd
        # cancelled the pull and killed it), so its child must not go on.
        assert child.conn is not None
        try:
            child.conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):  # not readable: an event of a descriptor since closed and reused
            return
        except OSError:  # reset: gone as well
            pass
        self._read_reports(child)  # it may have finished and told its client just now
        if child.status is not None:
            return
        self._unwatch_client(child)
        child.killed = True
        pool.kill(child)

    def _reap(self, child: pool.Child) -> None:
        pid, wait_status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid == 0:  # an event of a descriptor since closed and reused
            return
        self._read_reports(child)  # what it said before it exited
        self._unwatch_client(child)
        self._poll.unregister(child.pidfd)
        self._stop_reading(child)
        del self._children[child.pidfd]
        status = os.waitstatus_to_exitcode(wait_status)
        if not child.taken:
            pool.close(child)
            self._listen_if_none_waits()
            if not self._stopping:  # killed by someone, or out of memory: replaced, a little later each time
                how = f"exit {status}" if status >= 0 else f"signal {-status}"
                log(f"waiting child {child.pid} died ({how}); replacing it")
                self._waiting_deaths += 1
                self._refill_at = time.monotonic() + pool.backoff(self._waiting_deaths)
            return
        if child.status is None and not child.killed and child.conn is not None:
            # It died without telling its client (killed, crashed): the client hears it from here.
            code = status if status >= 0 else 128 - status
            with contextlib.suppress(OSError):
                child.conn.sendall(STATUS + code.to_bytes(4, "big", signed=True))
        pool.close(child)
        elapsed_ms = ((child.done_at or time.monotonic()) - child.started) * 1000
        peak_mib = usage.ru_maxrss / 1024  # KiB on Linux; a fork starts with the server's resident pages
        log(f"layer {child.digest or '-'} {_verdict(child, status)} {elapsed_ms:.0f} ms {peak_mib:.1f} MiB")
        if status < 0:
            from ...ocicrypt.keywrap.pgp.scratch import sweep

            sweep()  # a child killed mid-unwrap may have left a GnuPG home with private keys


def _reported_time(text: str, otherwise: float) -> float:
    """A child's ``time.monotonic()`` from a report (CLOCK_MONOTONIC: one clock for every process)."""
    try:
        return float(text)
    except ValueError:
        return otherwise


def _verdict(child: pool.Child, wait_status: int) -> str:
    if child.killed:
        return "killed: the client went away"
    status = wait_status if child.status is None else child.status
    if status == 0:
        return "ok"
    return f"failed (exit {status})" if status > 0 else f"failed (signal {-status})"


def _tell_to_stop(child: pool.Child) -> None:
    """A waiting child exits once the server's side of its pair is shut: it has no layer to finish."""
    with contextlib.suppress(OSError):
        child.channel.shutdown(socket.SHUT_WR)


def main(argv: list[str] | None = None) -> int:
    """``ctd-decoder-warm [--socket PATH] [--pool N]``: the server as systemd's unit (and the bundle) runs it."""
    import argparse

    parser = argparse.ArgumentParser(prog="ctd-decoder-warm", description="the warm ctd-decoder server")
    parser.add_argument("--socket", default=default_socket())
    parser.add_argument(
        "--pool",
        default=None,
        help=f"children kept forked and waiting (default: ${pool.POOL_ENV} or {pool.DEFAULT_SIZE}; 0: fork per layer)",
    )
    args = parser.parse_args(argv)
    return run(args.socket, args.pool)


def default_socket() -> str:
    """The socket the server listens on unless told: ``$CTD_DECODER_WARM_SOCKET``, else the default."""
    from .protocol import DEFAULT_SOCKET, SOCKET_ENV

    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def run(path: str, pool_size: str | None = None) -> int:
    """Serve on ``path`` with a pool of ``pool_size`` (else ``$CTD_DECODER_WARM_POOL``, else the default)
    waiting children; a server that cannot start is one line on stderr and exit status 1."""
    try:
        size = pool.pool_size(os.environ.get(pool.POOL_ENV) if pool_size is None else pool_size)
        return serve(path, size)
    except (ServerError, pool.PoolError, PriorityError) as err:
        sys.stderr.write(f"ctd-decoder-warm: {err}\n")
        return 1


def serve(path: str, pool_size: int = pool.DEFAULT_SIZE) -> int:
    """Run the warm server on ``path`` (or on the socket systemd passed) until SIGTERM or SIGINT."""
    from .child import run_child

    listener = activated_socket()  # first: fd 3, where systemd passes it, is lent out by the rehearsal
    rehearsal = preload()
    owned = listener is None
    if listener is None:
        listener = bind_socket(path)
    server = WarmServer(listener, run_child, pool_size, rehearsal)

    def stop(signum: int, frame: object) -> None:
        server.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    log(f"listening on {path if owned else 'the socket systemd passed'} (pid {os.getpid()}, pool {pool_size})")
    try:
        server.serve()
    finally:
        if owned:
            with contextlib.suppress(OSError):
                os.unlink(path)
    log("stopped")
    return 0
