"""The ``ocicrypt`` operator command: one argparse parser, one subcommand module each.

A subcommand module exposes ``register(subparsers)``, which adds its parser and sets ``run`` (a
callable taking the parsed namespace and returning the exit status) as the parser's default; one
that handles stop signals itself (``serve``) also sets ``own_stop_signals=True``.

SIGINT, SIGTERM and SIGHUP (unless ignored, as under nohup) raise :class:`Stopped`, so every
temporary file and unfinished destination is removed on the way out; the exit status is then
128 + the signal number (130, 143, 129), as a shell reports a process the signal killed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..ocicrypt import OcicryptError, raising_on_stop

# Subcommand modules under ctd_decoder.tools, in the order --help lists them; imported lazily so
# that `ocicrypt --help` stays fast and no scheme backend is loaded before it is needed.
SUBCOMMANDS: tuple[str, ...] = ("encrypt", "decrypt", "recipients", "inspect", "doctor", "serve", "node")

Runner = Callable[[argparse.Namespace], int]


class Stopped(BaseException):
    """A stop signal arrived: raised in the main thread so that every clean-up runs (like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def message(self) -> str:
        """The one line printed on the way out."""
        if self.signum == signal.SIGINT:
            return "interrupted"
        return f"stopped by {signal.Signals(self.signum).name}"


def build_parser() -> argparse.ArgumentParser:
    """Return the ``ocicrypt`` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="ocicrypt",
        description="Operator tools for encrypted OCI images and the nodes that pull them.",
    )
    parser.add_argument("--version", action="version", version=f"ocicrypt version {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ocicrypt`` console script; exit 0 on success, 1 on failure, 2 on usage."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    run: Runner | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    if getattr(args, "own_stop_signals", False):
        return _run(run, args)
    try:
        with raising_on_stop(Stopped, only_unhandled=True):
            return _run(run, args)
    except Stopped as stop:
        sys.stderr.write(f"ocicrypt: {stop.message()}\n")
        return 128 + stop.signum


def _run(run: Runner, args: argparse.Namespace) -> int:
    """Run the subcommand; turn its errors into one line on stderr and an exit status."""
    try:
        return run(args)
    except OcicryptError as err:
        sys.stderr.write(f"ocicrypt: {err}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("ocicrypt: interrupted\n")
        return 130
    except OSError as err:
        where = f" ({err.filename})" if err.filename else ""
        sys.stderr.write(f"ocicrypt: {err.strerror or type(err).__name__}{where}\n")
        return 1
    except Exception as err:  # never a traceback: it could show key material held in locals
        if os.environ.get("OCICRYPT_DEBUG"):
            raise
        sys.stderr.write(f"ocicrypt: internal error ({type(err).__name__}); set OCICRYPT_DEBUG=1 for details\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
