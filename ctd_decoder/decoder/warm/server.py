"""The fork server: a resident process that has done the decoder's imports and forks one child per layer.

Single-threaded (so forking is safe), it imports only fork-safe modules before forking: the
decoder, the library's core and the JWE and PKCS#7 schemes; no grpc, gnupg or pkcs11, which the
children import as the cold path does. It never reads a key, a payload or a layer: those
descriptors are only passed on to the child. Only its own uid may connect (``SO_PEERCRED``).
Each child is watched through a pidfd and reaped when it exits; if its client goes away first,
the child is killed. One log line per layer on stderr: digest, verdict, milliseconds.
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

from .protocol import ACCEPTED, GO, MAX_REQUEST, PASSED_FDS, STATUS, ProtocolError, Request, passed_fds

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
)
# A client has this long to send its request and its go-ahead.
REQUEST_TIMEOUT = 2.0
_UCRED = struct.Struct("3i")
_LISTEN_FDS_START = 3


class ServerError(Exception):
    """The server cannot start (socket directory not private, another server running ...)."""


def preload() -> None:
    """Import what the children will need (fork-safe modules only)."""
    for name in PRELOADED:
        importlib.import_module(name)
    # Out of the collector's reach: a child's collections would otherwise write to (and so copy)
    # every page of the server's objects.
    gc.freeze()


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
    """Accepts clients on ``listener`` and runs each layer in a forked child."""

    def __init__(self, listener: socket.socket, run_child: Callable[[Request, list[int], int, int], None]) -> None:
        self._listener = listener
        self._listener.setblocking(False)
        self._run_child = run_child
        self._poll = select.poll()
        self._poll.register(listener.fileno(), select.POLLIN)
        self._by_conn: dict[int, _Layer] = {}
        self._by_pidfd: dict[int, _Layer] = {}
        self._stopping = False
        self._uid = os.geteuid()
        # Signals wake poll() through this pipe (PEP 475 would otherwise resume the wait).
        self._wake_read, wake_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        self._poll.register(self._wake_read, select.POLLIN)

    def stop(self) -> None:
        """Stop accepting; :meth:`serve` returns once the running layers are done."""
        if not self._stopping:
            self._stopping = True
            self._poll.unregister(self._listener.fileno())
            self._listener.close()

    def serve(self) -> None:
        """Run until :meth:`stop` and the last child has exited."""
        while not (self._stopping and not self._by_pidfd):
            try:
                events = self._poll.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == self._wake_read:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_read, 512)
                elif not self._stopping and fd == self._listener.fileno():
                    self._accept()
                elif fd in self._by_pidfd:
                    self._reap(self._by_pidfd[fd])
                elif fd in self._by_conn:
                    self._client_gone(self._by_conn[fd])

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
        self._fork(conn, request, fds)

    def _fork(self, conn: socket.socket, request: Request, fds: list[int]) -> None:
        try:
            report_read, report_write = os.pipe2(os.O_CLOEXEC)
        except OSError as err:
            self._fork_failed(conn, fds, err)
            return
        sys.stderr.flush()
        server_pid = os.getpid()
        try:
            pid = os.fork()
        except OSError as err:
            self._fork_failed(conn, [*fds, report_read, report_write], err)
            return
        if pid == 0:
            self._run_child(request, fds, report_write, server_pid)  # never returns
            os._exit(1)
        _close_all([*fds, report_write])
        os.set_blocking(report_read, False)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as err:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self._fork_failed(conn, [report_read], err)
            return
        layer = _Layer(conn, pid, pidfd, report_read)
        self._by_conn[conn.fileno()] = layer
        self._by_pidfd[layer.pidfd] = layer
        self._poll.register(conn.fileno(), select.POLLIN)
        self._poll.register(layer.pidfd, select.POLLIN)

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
    """``ctd-decoder-warm [--socket PATH]``: the server as systemd's unit (and the bundle) runs it."""
    import argparse

    parser = argparse.ArgumentParser(prog="ctd-decoder-warm", description="the warm ctd-decoder server")
    parser.add_argument("--socket", default=default_socket())
    return run(parser.parse_args(argv).socket)


def default_socket() -> str:
    """The socket the server listens on unless told: ``$CTD_DECODER_WARM_SOCKET``, else the default."""
    from .protocol import DEFAULT_SOCKET, SOCKET_ENV

    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def run(path: str) -> int:
    """Serve on ``path``; a server that cannot start is one line on stderr and exit status 1."""
    try:
        return serve(path)
    except ServerError as err:
        sys.stderr.write(f"ctd-decoder-warm: {err}\n")
        return 1


def serve(path: str) -> int:
    """Run the warm server on ``path`` (or on the socket systemd passed) until SIGTERM or SIGINT."""
    from .child import run_child

    preload()
    listener = activated_socket()
    owned = listener is None
    if listener is None:
        listener = bind_socket(path)
    server = WarmServer(listener, run_child)

    def stop(signum: int, frame: object) -> None:
        server.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    log(f"listening on {path if owned else 'the socket systemd passed'} (pid {os.getpid()})")
    try:
        server.serve()
    finally:
        if owned:
            with contextlib.suppress(OSError):
                os.unlink(path)
    log("stopped")
    return 0
