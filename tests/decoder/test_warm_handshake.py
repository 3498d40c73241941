"""The serving side of the warm protocol (ctd_decoder/decoder/warm/handshake.py), over real socket pairs.

The client end is written by the test as a client would write it; the serving end is the module's own code.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from ctd_decoder.decoder.warm.handshake import REQUEST_TIMEOUT, Dropped, take_layer
from ctd_decoder.decoder.warm.protocol import ACCEPTED, GO, MAX_REQUEST, Request

REQUEST = Request([b"ctd-decoder", b"--decryption-keys-path", b"/keys"], [b"PATH=/usr/bin"], b"/", 0o22, 0b0010)


def test_request_then_go_ahead_hands_over_the_request_and_the_descriptor() -> None:
    serving, client = socket.socketpair()
    read_end, write_end = os.pipe()
    with serving, client:
        client.sendall(REQUEST.encode())
        socket.send_fds(client, [GO], [write_end])
        taken = take_layer(serving, os.geteuid())
        assert client.recv(1) == ACCEPTED
    assert taken is not None
    request, fds = taken
    assert (request.argv, request.environ, request.cwd, request.umask) == (
        REQUEST.argv,
        REQUEST.environ,
        REQUEST.cwd,
        REQUEST.umask,
    )
    assert request.peer_pid == os.getpid()
    (received,) = fds
    os.write(received, b"through the received descriptor")
    assert os.read(read_end, 100) == b"through the received descriptor"
    for fd in (received, read_end, write_end):
        os.close(fd)


def test_a_go_ahead_sent_with_the_request_is_not_read_as_part_of_it() -> None:
    """A client that does not wait for ``A`` must not cost the request time-out (the request is read exactly)."""
    no_descriptors = Request([b"ctd-decoder"], [], b"/", 0o22, 0)
    serving, client = socket.socketpair()
    with serving, client:
        client.sendall(no_descriptors.encode() + GO)
        started = time.monotonic()
        taken = take_layer(serving, os.geteuid())
        assert time.monotonic() - started < REQUEST_TIMEOUT / 2
    assert taken is not None
    assert taken[0].argv == [b"ctd-decoder"] and taken[1] == []


def test_a_client_that_gives_up_before_its_go_ahead_is_not_served() -> None:
    serving, client = socket.socketpair()
    with serving, client:
        client.sendall(REQUEST.encode())
        client.shutdown(socket.SHUT_WR)
        assert take_layer(serving, os.geteuid()) is None


def test_a_client_of_another_uid_is_dropped_with_the_log_line() -> None:
    serving, client = socket.socketpair()
    with serving, client, pytest.raises(Dropped) as dropped:
        take_layer(serving, os.geteuid() + 1)
    assert str(dropped.value) == (
        f"refused a client of uid {os.geteuid()} (pid {os.getpid()}): only uid {os.geteuid() + 1} may connect"
    )


def test_an_oversized_request_is_dropped_without_reading_it_all() -> None:
    serving, client = socket.socketpair()
    with serving, client, pytest.raises(Dropped, match="request too large"):
        client.sendall((MAX_REQUEST + 1).to_bytes(4, "big") + b"x" * 1000)
        take_layer(serving, os.geteuid())
