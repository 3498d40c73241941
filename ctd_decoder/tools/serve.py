"""``ocicrypt serve``: run the warm decoder server that ``ctd-decoder`` hands its layers to."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    from ..decoder.warm.pool import DEFAULT_SIZE, POOL_ENV
    from ..decoder.warm.protocol import DEFAULT_SOCKET, SOCKET_ENV
    from ..decoder.warm.server import default_socket

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the warm ctd-decoder server (a fork server that removes the per-layer start-up)",
        description="Listen on a Unix socket (or the one systemd passes) and decode each layer that "
        "ctd-decoder hands over in a forked child. Only this user may connect. One log line per layer "
        "on stderr. Stop it (SIGTERM) or set CTD_DECODER_WARM_SOCKET=off for ctd-decoder to decode "
        "in-process. The same server as ctd-decoder-warm, which systemd's unit runs.",
    )
    parser.add_argument(
        "--socket",
        default=default_socket(),
        help=f"socket path (default: ${SOCKET_ENV} or {DEFAULT_SOCKET}); its directory must be private (0700)",
    )
    parser.add_argument(
        "--pool",
        default=None,
        help=f"children forked ahead to wait for a layer (default: ${POOL_ENV} or {DEFAULT_SIZE}; 0: none)",
    )
    parser.set_defaults(run=_run, own_stop_signals=True)


def _run(args: argparse.Namespace) -> int:
    from ..decoder.warm.server import run

    return run(args.socket, args.pool)
