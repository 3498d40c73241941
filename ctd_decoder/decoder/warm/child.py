"""One layer in a child of the fork server: take over the client's descriptors and context, then decode.

Runs the same :func:`ctd_decoder.decoder.cold.decode_main` as the cold path, with the client's
stdin, stdout, stderr and fd 3, argv, environment, working directory and umask. It never returns:
it leaves with ``os._exit`` so nothing of the server (atexit handlers, buffers) runs twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import sys

from .protocol import PASSED_FDS, Request, passed_fds

_PR_SET_PDEATHSIG = 1
REPORT_FD = len(PASSED_FDS)


def _die_with_the_server(server_pid: int) -> None:
    # A child whose server is gone could not report its status: the client then fails the layer,
    # and the child must not go on writing to the client's stdout.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server_pid:  # the server died before the line above
        os._exit(1)


def _install_descriptors(request: Request, received: list[int], report_fd: int) -> None:
    """Put the client's descriptors at 0-3 and the report pipe at 4; close everything else."""
    # Out of the way first: a received descriptor may sit where another one has to go.
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in received]
    report = fcntl.fcntl(report_fd, fcntl.F_DUPFD_CLOEXEC, 64)
    sources = dict(zip(passed_fds(request.fd_mask), moved, strict=True))
    for target in PASSED_FDS:
        if target in sources:
            os.dup2(sources[target], target)
        else:
            with contextlib.suppress(OSError):
                os.close(target)
    os.dup2(report, REPORT_FD)
    os.closerange(REPORT_FD + 1, os.sysconf("SC_OPEN_MAX"))


def _apply_context(request: Request) -> None:
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.umask(request.umask)
    os.environb.clear()
    for entry in request.environ:
        name, _, value = entry.partition(b"=")
        os.environb[name] = value
    sys.argv = [os.fsdecode(arg) for arg in request.argv]


def _report_layer(digest: str) -> None:
    """Tell the server which layer this is (a public digest, for its log line)."""
    with contextlib.suppress(OSError):
        os.write(REPORT_FD, digest.encode("ascii", "replace")[:200] + b"\n")


def run_child(request: Request, received: list[int], report_fd: int, server_pid: int) -> None:
    """Decode one layer in this freshly forked child of ``server_pid`` and exit with the decoder's status."""
    status = 1
    try:
        _die_with_the_server(server_pid)
        _install_descriptors(request, received, report_fd)
        _apply_context(request)
        try:
            os.chdir(request.cwd)
        except OSError as err:
            os.write(2, f"ctd-decoder: cannot enter the working directory: {err.strerror}\n".encode())
        else:
            from ..cold import decode_main
            from ..recovery.parent import parent_of

            # Without a payload, the layer's blob is found among those the client's parent holds open.
            starter = parent_of(request.peer_pid) if request.peer_pid > 0 else None
            try:
                status = decode_main(sys.argv[1:], layer_seen=_report_layer, starter=starter)
            except SystemExit as done:  # --help and --version
                status = done.code if isinstance(done.code, int) else 1
    except BaseException:  # never a traceback: it could show key material held in locals
        os.write(2, b"ctd-decoder: internal error in the warm decoder child\n")
        status = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed or broken stream: nothing left to tell
                stream.flush()
        os._exit(status)
