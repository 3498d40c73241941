"""The first bytes of stdin without consuming them.

A pipe (how containerd feeds a stream processor) is peeked with ``tee(2)``: the bytes are duplicated
into a private pipe and stay in stdin, where the decryption reads them with the rest of the layer. A
regular file is read with ``pread`` at its current offset, which does not move it either.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import time

PEEK_SIZE = 512
# containerd starts copying the layer as soon as the decoder runs; this only bounds a stalled writer.
PEEK_TIMEOUT = 10.0
_SPLICE_F_NONBLOCK = 0x02
_RETRY_INTERVAL = 0.001


class PeekError(Exception):
    """stdin cannot be peeked (a terminal, a socket, a stalled writer)."""


def peek(fd: int, size: int = PEEK_SIZE, timeout: float = PEEK_TIMEOUT) -> bytes:
    """Up to ``size`` bytes from the head of ``fd``, fewer only if the stream is shorter; nothing is consumed."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return os.pread(fd, size, os.lseek(fd, 0, os.SEEK_CUR))
    if not stat.S_ISFIFO(mode):
        raise PeekError("stdin is neither a pipe nor a file")
    return _peek_pipe(fd, size, timeout)


def _tee_function() -> object:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    tee = libc.tee
    tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
    tee.restype = ctypes.c_ssize_t
    return tee


def _peek_pipe(fd: int, size: int, timeout: float) -> bytes:
    import ctypes

    tee = _tee_function()
    copy_read, copy_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    data = b""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if data:
                    return data
                raise PeekError(f"no byte of the layer arrived on stdin within {timeout:g} s")
            events = poller.poll(remaining * 1000)
            hung_up = any(event & select.POLLHUP for _, event in events)
            copied = tee(fd, copy_write, size, _SPLICE_F_NONBLOCK)  # type: ignore[operator]
            if copied < 0:
                code = ctypes.get_errno()
                if code not in (errno.EAGAIN, errno.EINTR):
                    raise PeekError(f"cannot peek at stdin: {os.strerror(code)}")
                copied = 0
            data = _drain(copy_read, copied) if copied else data
            if len(data) >= size or (hung_up and copied == len(data)):
                return data
            time.sleep(_RETRY_INTERVAL)  # the writer has not written enough yet: look again from the head
    finally:
        os.close(copy_read)
        os.close(copy_write)


def _drain(fd: int, count: int) -> bytes:
    chunks: list[bytes] = []
    while count:
        chunk = os.read(fd, count)
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)
