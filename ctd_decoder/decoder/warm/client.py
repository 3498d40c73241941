"""The ``ctd-decoder`` side of the warm path: hand the layer to the fork server, or say it cannot.

Imported before anything else the decoder needs, so it imports only what the interpreter has loaded
already or has built in: ``_socket`` rather than ``socket`` (whose import costs more than the whole
hand-off, and only when the socket exists), and no ``typing`` or ``collections.abc`` at run time.
"""

from __future__ import annotations

import os
import sys

from .protocol import ACCEPTED, DEFAULT_SOCKET, DISABLED, GO, PASSED_FDS, SOCKET_ENV, STATUS, STATUS_SIZE, Request

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; mypy treats the name alike
if TYPE_CHECKING:
    import _socket
    from collections.abc import Mapping, Sequence

# How long a server may take to accept a request before the client decodes in-process.
ANSWER_TIMEOUT = 1.0
SERVER_GONE = (
    "ctd-decoder: the warm decoder server went away before the layer was done "
    "(see its log; stop it, or set {env}={off}, to decode in-process)\n"
)


def socket_path(environ: Mapping[str, str]) -> str | None:
    """The server's socket from ``CTD_DECODER_WARM_SOCKET`` (default :data:`DEFAULT_SOCKET`); None if off."""
    path = environ.get(SOCKET_ENV, DEFAULT_SOCKET)
    return None if path in ("", DISABLED) else path


def _open_fds(fds: Sequence[int]) -> tuple[list[int], int]:
    present: list[int] = []
    mask = 0
    for position, fd in zip(PASSED_FDS, fds, strict=True):
        try:
            os.get_inheritable(fd)
        except OSError:
            continue
        present.append(fd)
        mask |= 1 << position
    return present, mask


def _receive(sock: _socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _connect(path: str, request: bytes, timeout: float) -> _socket.socket | None:
    """Connect, send the request and wait for ``A``; None (nothing handed over) on any failure."""
    import _socket  # only once a socket exists: no cost on nodes without the server

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request)
        if _receive(sock, len(ACCEPTED)) != ACCEPTED:
            sock.close()
            return None
        return sock
    except OSError:  # no server, refused, timed out: the layer is still ours to decode
        sock.close()
        return None


def hand_off(
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
    fds: Sequence[int] = PASSED_FDS,
    timeout: float = ANSWER_TIMEOUT,
) -> int | None:
    """Have the warm server decode this layer; return its exit status, or None to decode in-process.

    ``fds`` are the descriptors that become the child's 0, 1, 2 and 3 (closed ones are left closed
    in the child too). After the server has accepted, this never returns None: the layer's input
    may be partly consumed, so the caller must not decode it a second time.
    """
    env = os.environ if environ is None else environ
    path = socket_path(env)
    if path is None or not os.path.exists(path):
        return None
    try:
        cwd = os.getcwdb()
    except OSError:
        return None
    umask = os.umask(0o022)
    os.umask(umask)
    present, mask = _open_fds(fds)
    request = Request(
        [os.fsencode(arg) for arg in argv],
        [os.fsencode(name) + b"=" + os.fsencode(value) for name, value in env.items()],
        cwd,
        umask,
        mask,
    ).encode()
    sock = _connect(path, request, timeout)
    if sock is None:
        return None
    import _socket

    rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in present)
    try:
        sock.settimeout(None)
        sock.sendmsg([GO], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)] if rights else [])
    except OSError:  # the server went away before our go-ahead: nothing was handed over
        sock.close()
        return None
    try:
        answer = _receive(sock, STATUS_SIZE)
    except OSError:
        answer = b""
    finally:
        sock.close()
    if len(answer) != STATUS_SIZE or answer[:1] != STATUS:
        os.write(2, SERVER_GONE.format(env=SOCKET_ENV, off=DISABLED).encode())
        return 1
    return int.from_bytes(answer[1:], "big", signed=True)
