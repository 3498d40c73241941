"""One layer in a child of the warm server: take over the client's descriptors and context, then decode.

Runs the same :func:`ctd_decoder.decoder.cold.decode_main` as the cold path, with the client's
stdin, stdout, stderr and fd 3, argv, environment, working directory and umask. When the layer is
done it closes the client's descriptors, reports the status to the server and gives it to the
client itself (``S``), so that the client is not kept waiting while the kernel takes the child's
copy of the server's memory apart. It never returns: it leaves with ``os._exit`` so nothing of the
server (atexit handlers, buffers) runs twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sys
import time

from .pool import DIGEST, EXIT, report
from .protocol import PASSED_FDS, STATUS, Request, passed_fds

REPORT_FD = len(PASSED_FDS)
CONN_FD = REPORT_FD + 1


def _install_descriptors(request: Request, received: list[int], channel_fd: int, conn_fd: int) -> None:
    """Put the client's descriptors at 0-3, the pair to the server at 4 and the client's connection at 5;
    close everything else."""
    # Out of the way first: a received descriptor may sit where another one has to go.
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in received]
    channel = fcntl.fcntl(channel_fd, fcntl.F_DUPFD_CLOEXEC, 64)
    conn = fcntl.fcntl(conn_fd, fcntl.F_DUPFD_CLOEXEC, 64)
    sources = dict(zip(passed_fds(request.fd_mask), moved, strict=True))
    for target in PASSED_FDS:
        if target in sources:
            os.dup2(sources[target], target)
        else:
            with contextlib.suppress(OSError):
                os.close(target)
    os.dup2(channel, REPORT_FD, inheritable=False)
    os.dup2(conn, CONN_FD, inheritable=False)
    os.closerange(CONN_FD + 1, os.sysconf("SC_OPEN_MAX"))


def _apply_context(request: Request, environ: dict[bytes, bytes]) -> None:
    """Take the client's umask, environment (``environ``: this process's now) and argv."""
    # Signal dispositions are a decoder's already: the fork that made this child set them.
    os.umask(request.umask)
    wanted = dict(entry.partition(b"=")[::2] for entry in request.environ)
    for name in environ.keys() - wanted.keys():
        del os.environb[name]
    for name, value in wanted.items():  # only what differs: each change is a putenv()
        if environ.get(name) != value:
            os.environb[name] = value
    sys.argv = [os.fsdecode(arg) for arg in request.argv]


def _report_layer(digest: str) -> None:
    """Tell the server which layer this is (a public digest, for its log line)."""
    report(REPORT_FD, DIGEST, digest[:200])


def _finish(status: int) -> None:
    """Close the client's descriptors, report ``status`` to the server, then to the client; exit."""
    status &= 0xFF  # what the client would have read from a wait status
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream: nothing left to tell
            stream.flush()
    for fd in PASSED_FDS:  # the end of the layer for containerd, which reads stdout to its end
        with contextlib.suppress(OSError):
            os.close(fd)
    report(REPORT_FD, EXIT, f"{status} {time.monotonic():.6f}")  # the clock is the system's: the server's too
    with contextlib.suppress(OSError):
        os.write(CONN_FD, STATUS + status.to_bytes(4, "big", signed=True))
    os._exit(status)


def run_child(
    request: Request,
    received: list[int],
    channel_fd: int,
    conn_fd: int,
    server_pid: int,
    environ: dict[bytes, bytes] | None,
) -> None:
    """Decode one layer in this child of ``server_pid`` (which already dies with it) and exit with the
    decoder's status. ``environ``: this process's environment, if a copy was made before the client came."""
    status = 1
    try:
        _install_descriptors(request, received, channel_fd, conn_fd)
        _apply_context(request, dict(os.environb) if environ is None else environ)
        try:
            os.chdir(request.cwd)
        except OSError as err:
            os.write(2, f"ctd-decoder: cannot enter the working directory: {err.strerror}\n".encode())
        else:
            from ..cold import decode_main
            from ..recovery.parent import parent_of

            # Without a payload, the layer's blob is found among those the client's parent holds open.
            starter = functools.partial(parent_of, request.peer_pid) if request.peer_pid > 0 else None
            try:
                # No sweep of earlier runs' GnuPG homes: the server does that when one of its children dies.
                status = decode_main(sys.argv[1:], layer_seen=_report_layer, starter=starter, sweep_first=False)
            except SystemExit as done:  # --help and --version
                status = done.code if isinstance(done.code, int) else 1
    except BaseException:  # never a traceback: it could show key material held in locals
        with contextlib.suppress(OSError):
            os.write(2, b"ctd-decoder: internal error in the warm decoder child\n")
        status = 1
    finally:
        _finish(status)
