"""The fork server: a resident process that has done the decoder's imports and runs each layer in a child.

Single-threaded (so forking is safe), it imports only fork-safe modules before forking: the
decoder, the library's core and the JWE and PKCS#7 schemes; no grpc, gnupg or pkcs11, which the
children import as the cold path does. It keeps a few children forked ahead of time (:mod:`.pool`)
and hands each layer to one of them, forking a new one when none waits; it refills the pool when
it has nothing else to do. It never reads a key, a payload or a layer: those descriptors are only
passed on to the child. Only its own uid may connect (``SO_PEERCRED``). Each child is watched
through a pidfd and reaped when it exits; if its client goes away first, the child is killed. One
log line per layer on stderr: digest, verdict, milliseconds.
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
import struct
import sys
import time
from collections.abc import Callable

from . import pool
from .protocol import ACCEPTED, GO, MAX_REQUEST, PASSED_FDS, STATUS, ProtocolError, Request, passed_fds
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
# A client has this long to send its request and its go-ahead.
REQUEST_TIMEOUT = 2.0
_UCRED = struct.Struct("3i")
_LISTEN_FDS_START = 3


class ServerError(Exception):
    """The server cannot start (socket directory not private, another server running ...)."""


def preload() -> Rehearsal | None:
    """Import what the children will need (fork-safe modules only), do OpenSSL's first-use work and
    decode a throwaway layer once; return that layer for the children to rehearse on (None if it failed)."""
    for name in PRELOADED:
        importlib.import_module(name)
    from ...ocicrypt.diagnostics import inert_lines, printable
    from .rehearsal import make_rehearsal, rehearse
    from .warmup import warm_up

    printable("")  # compiles its pattern on first use: once here, not in every child
    inert_lines("")
    warm_up()
    rehearsal = make_rehearsal()
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


class _Layer:
    """A forked child decoding one client's layer."""

    __slots__ = ("conn", "digest", "killed", "pid", "pidfd", "report", "started")

    def __init__(self, conn: socket.socket, pid: int, pidfd: int, report: int) -> None:
        self.conn = conn
        self.pid = pid
        self.pidfd = pidfd
        self.report = report
        self.started = time.monotonic()
        self.digest = ""
        self.killed = False


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


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _receive_request(conn: socket.socket) -> Request:
    """Read one request; raise ProtocolError or OSError."""
    data = b""
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        if len(data) >= 4 and int.from_bytes(data[:4], "big") > MAX_REQUEST:
            raise ProtocolError("request too large")
        chunk = conn.recv(65536)
        if not chunk:
            raise ProtocolError("the client closed the connection mid-request")
        data += chunk
    return Request.decode(data[4 : 4 + int.from_bytes(data[:4], "big")])


def _receive_go(conn: socket.socket, request: Request) -> list[int] | None:
    """Wait for the client's go-ahead and its descriptors; None if it gave up (it then decodes itself)."""
    try:
        go, fds, flags, _ = socket.recv_fds(conn, len(GO), len(PASSED_FDS), socket.MSG_CMSG_CLOEXEC)
    except OSError:
        return None
    if go == GO and not flags & socket.MSG_CTRUNC and len(fds) == len(passed_fds(request.fd_mask)):
        return fds
    _close_all(fds)
    return None


class WarmServer:
    """Accepts clients on ``listener`` and runs each layer in a child, keeping ``pool_size`` children waiting."""

    def __init__(
        self,
        listener: socket.socket,
        run_child: Callable[[Request, list[int], int, int], None],
        pool_size: int = pool.DEFAULT_SIZE,
        rehearsal: Rehearsal | None = None,
    ) -> None:
        self._listener = listener
        self._listener.setblocking(False)
        self._run_child = run_child
        self._poll = select.poll()
        self._poll.register(listener.fileno(), select.POLLIN)
        self._by_conn: dict[int, _Layer] = {}
        self._by_pidfd: dict[int, _Layer] = {}
        self._waiting: dict[int, pool.Waiting] = {}  # by pidfd, oldest first
        self._pool_size = pool_size
        self._rehearsal = rehearsal
        self._refill_at = 0.0  # not before this (monotonic): waiting children that die are replaced slower
        self._waiting_deaths = 0  # in a row, without a layer taken in between
        self._stopping = False
        self._uid = os.geteuid()
        # Signals wake poll() through this pipe (PEP 475 would otherwise resume the wait).
        self._wake_read, wake_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        self._poll.register(self._wake_read, select.POLLIN)

    def stop(self) -> None:
        """Stop accepting; :meth:`serve` returns once the running layers are done (waiting children are killed)."""
        if not self._stopping:
            self._stopping = True
            self._poll.unregister(self._listener.fileno())
            self._listener.close()
            for child in self._waiting.values():
                pool.kill(child)

    def serve(self) -> None:
        """Run until :meth:`stop` and the last child has exited."""
        while not (self._stopping and not self._by_pidfd and not self._waiting):
            try:
                events = self._poll.poll(self._refill_timeout())
            except InterruptedError:
                continue
            if not events:  # nothing else to do: one more child for the pool
                self._refill()
            for fd, _ in events:
                if fd == self._wake_read:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_read, 512)
                elif not self._stopping and fd == self._listener.fileno():
                    self._accept()
                elif fd in self._by_pidfd:
                    self._reap(self._by_pidfd[fd])
                elif fd in self._waiting:
                    self._waiting_died(self._waiting[fd])
                elif fd in self._by_conn:
                    self._client_gone(self._by_conn[fd])

    def _refill_timeout(self) -> int | None:
        """Milliseconds poll() may wait: none while the pool is short (after the back-off), else forever.

        Not while a layer runs: a fork and a new child's set-up would take CPU from it (on a small node,
        half of it); a request that finds the pool empty gets a child forked for it.
        """
        if self._stopping or len(self._waiting) >= self._pool_size or self._by_pidfd:
            return None
        return max(0, int((self._refill_at - time.monotonic()) * 1000) + 1) if self._refill_at else 0

    def _refill(self) -> None:
        if self._stopping or len(self._waiting) >= self._pool_size or self._by_pidfd:
            return
        if time.monotonic() < self._refill_at:
            return
        try:
            child = pool.spawn(self._run_child, self._rehearsal)
        except OSError as err:
            log(f"cannot start a waiting child: {err.strerror}")
            self._waiting_deaths += 1
            self._refill_at = time.monotonic() + pool.backoff(self._waiting_deaths)
            return
        self._waiting[child.pidfd] = child
        self._poll.register(child.pidfd, select.POLLIN)
        if self._stopping:  # SIGTERM arrived while it was being forked: stop() has not seen it
            pool.kill(child)

    def _waiting_died(self, child: pool.Waiting) -> None:
        # Killed by someone, or out of memory: replaced, a little later each time it happens again.
        _, wait_status, _ = os.wait4(child.pid, 0)
        self._poll.unregister(child.pidfd)
        del self._waiting[child.pidfd]
        pool.close(child)
        if not self._stopping:
            status = os.waitstatus_to_exitcode(wait_status)
            how = f"exit {status}" if status >= 0 else f"signal {-status}"
            log(f"waiting child {child.pid} died ({how}); replacing it")
            self._waiting_deaths += 1
            self._refill_at = time.monotonic() + pool.backoff(self._waiting_deaths)

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            log(f"accept failed: {err.strerror}")
            return
        pid = 0
        try:
            conn.settimeout(REQUEST_TIMEOUT)
            pid, uid, _ = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
            if uid != self._uid:
                log(f"refused a client of uid {uid} (pid {pid}): only uid {self._uid} may connect")
                conn.close()
                return
            request = _receive_request(conn)
            request.peer_pid = pid  # descriptor recovery looks at the client's parent (containerd)
            conn.sendall(ACCEPTED)
        except (OSError, ProtocolError) as err:
            log(f"dropped a client (pid {pid}): {err}")
            conn.close()
            return
        fds = _receive_go(conn, request)
        if fds is None:  # the client gave up before committing: it decodes the layer itself
            conn.close()
            return
        self._dispatch(conn, request, fds)

    def _take(self) -> pool.Waiting:
        """The longest-waiting child (no longer watched as waiting), or a new one; raise OSError."""
        if self._waiting:
            pidfd = next(iter(self._waiting))
            return self._waiting.pop(pidfd)  # its pidfd stays registered: it becomes the layer's
        child = pool.spawn(self._run_child)  # no rehearsal: a client waits for this one
        self._poll.register(child.pidfd, select.POLLIN)
        return child

    def _dispatch(self, conn: socket.socket, request: Request, fds: list[int]) -> None:
        """Hand the layer to a waiting child (a second one if the first cannot take it)."""
        error: OSError | None = None
        for _ in range(2):
            try:
                child = self._take()
            except OSError as err:
                error = err
                break
            try:
                pool.hand_over(child, request, fds)
            except OSError as err:  # it died while waiting, before we saw it: it never had the layer
                error = err
                pool.kill(child)
                self._poll.unregister(child.pidfd)
                os.wait4(child.pid, 0)
                pool.close(child)
                continue
            self._waiting_deaths = 0
            self._refill_at = 0.0
            _close_all(fds)
            os.set_blocking(child.channel.fileno(), False)
            layer = _Layer(conn, child.pid, child.pidfd, child.channel.detach())
            self._by_conn[conn.fileno()] = layer
            self._by_pidfd[layer.pidfd] = layer
            self._poll.register(conn.fileno(), select.POLLIN)
            return
        assert error is not None
        self._fork_failed(conn, fds, error)

    def _fork_failed(self, conn: socket.socket, fds: list[int], err: OSError) -> None:
        # The client is committed and cannot decode any more: closing tells it the layer failed.
        _close_all(fds)
        conn.close()
        log(f"layer - failed (cannot start a child: {err.strerror})")

    def _client_gone(self, layer: _Layer) -> None:
        # The client sends nothing after its go-ahead: readable means it went away (containerd
        # cancelled the pull and killed it), so its child must not go on.
        self._poll.unregister(layer.conn.fileno())
        del self._by_conn[layer.conn.fileno()]
        layer.killed = True
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(layer.pidfd, signal.SIGKILL)

    def _reap(self, layer: _Layer) -> None:
        _, wait_status, usage = os.wait4(layer.pid, 0)
        elapsed_ms = (time.monotonic() - layer.started) * 1000
        peak_mib = usage.ru_maxrss / 1024  # KiB on Linux; a fork starts with the server's resident pages
        with contextlib.suppress(OSError):
            layer.digest = os.read(layer.report, 256).decode("ascii", "replace").strip()
        self._poll.unregister(layer.pidfd)
        del self._by_pidfd[layer.pidfd]
        _close_all([layer.pidfd, layer.report])
        status = os.waitstatus_to_exitcode(wait_status)
        if layer.conn.fileno() in self._by_conn:
            self._poll.unregister(layer.conn.fileno())
            del self._by_conn[layer.conn.fileno()]
            code = status if status >= 0 else 128 - status
            with contextlib.suppress(OSError):
                layer.conn.sendall(STATUS + code.to_bytes(4, "big", signed=True))
        layer.conn.close()
        if layer.killed:
            verdict = "killed: the client went away"
        elif status == 0:
            verdict = "ok"
        elif status > 0:
            verdict = f"failed (exit {status})"
        else:
            verdict = f"failed (signal {-status})"
        log(f"layer {layer.digest or '-'} {verdict} {elapsed_ms:.0f} ms {peak_mib:.1f} MiB")
        if status < 0:
            from ...ocicrypt.keywrap.pgp.scratch import sweep

            sweep()  # a child killed mid-unwrap may have left a GnuPG home with private keys


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
    except (ServerError, pool.PoolError) as err:
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
