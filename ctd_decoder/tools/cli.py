"""The ``ocicrypt`` operator command: one argparse parser, one subcommand module each.

A subcommand module exposes ``register(subparsers)``, which adds its parser and sets ``run`` (a
callable taking the parsed namespace and returning the exit status) as the parser's default.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..ocicrypt import OcicryptError

# Subcommand modules under ctd_decoder.tools, in the order --help lists them; imported lazily so
# that `ocicrypt --help` stays fast and no scheme backend is loaded before it is needed.
SUBCOMMANDS: tuple[str, ...] = ("encrypt", "decrypt", "recipients", "inspect", "doctor", "serve", "node")

Runner = Callable[[argparse.Namespace], int]


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
