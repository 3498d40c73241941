"""The serving side of :mod:`.protocol` for one accepted connection, up to the client's go-ahead.

Run by a waiting child (which accepts clients itself) and by the server (when no child waits): check
the peer's uid, read the request, answer ``A``, take the descriptors that come with ``G``. Nothing
here reads a key, a payload or a layer: the descriptors are only received.
"""

from __future__ import annotations

import contextlib
import socket
import struct

from .protocol import ACCEPTED, GO, MAX_REQUEST, PASSED_FDS, ProtocolError, Request, passed_fds

# A client has this long to send its request and its go-ahead.
REQUEST_TIMEOUT = 2.0
_UCRED = struct.Struct("3i")


class Dropped(Exception):
    """The connection is not served; the text is the server's log line for it."""


def _receive_request(conn: socket.socket) -> Request:
    """Read one request, and nothing after it (the go-ahead is read with its descriptors); raise
    ProtocolError or OSError."""
    data = b""
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        if len(data) >= 4 and int.from_bytes(data[:4], "big") > MAX_REQUEST:
            raise ProtocolError("request too large")
        wanted = 4 - len(data) if len(data) < 4 else 4 + int.from_bytes(data[:4], "big") - len(data)
        chunk = conn.recv(min(wanted, 65536))
        if not chunk:
            raise ProtocolError("the client closed the connection mid-request")
        data += chunk
    return Request.decode(data[4 : 4 + int.from_bytes(data[:4], "big")])


def close_fds(fds: list[int]) -> None:
    """Close each of ``fds`` that is open (received descriptors not handed on)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            socket.close(fd)


def _receive_go(conn: socket.socket, request: Request) -> list[int] | None:
    """Wait for the client's go-ahead and its descriptors; None if it gave up (it then decodes itself)."""
    try:
        go, fds, flags, _ = socket.recv_fds(conn, len(GO), len(PASSED_FDS), socket.MSG_CMSG_CLOEXEC)
    except OSError:
        return None
    if go == GO and not flags & socket.MSG_CTRUNC and len(fds) == len(passed_fds(request.fd_mask)):
        return fds
    close_fds(fds)
    return None


def take_layer(conn: socket.socket, uid: int) -> tuple[Request, list[int]] | None:
    """Serve ``conn`` up to its go-ahead: the request (``peer_pid`` set) and the client's descriptors.

    None if the client gave up before its go-ahead (it decodes the layer itself); raise :class:`Dropped`
    for a client of another uid or one that does not follow the protocol. ``conn`` is left open either way.
    """
    pid = 0
    try:
        conn.settimeout(REQUEST_TIMEOUT)
        pid, peer_uid, _ = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        if peer_uid != uid:
            raise Dropped(f"refused a client of uid {peer_uid} (pid {pid}): only uid {uid} may connect")
        request = _receive_request(conn)
        request.peer_pid = pid  # descriptor recovery looks at the client's parent (containerd)
        conn.sendall(ACCEPTED)
    except (OSError, ProtocolError) as err:
        raise Dropped(f"dropped a client (pid {pid}): {err}") from None
    fds = _receive_go(conn, request)
    return None if fds is None else (request, fds)
