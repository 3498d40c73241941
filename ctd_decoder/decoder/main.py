"""The ``ctd-decoder`` stream processor: containerd runs it once per encrypted layer.

stdin is the encrypted layer, stdout the decrypted one, fd 3 the payload. Every failure is one
paragraph on stderr that starts with the Go decoder's prefix, and exit status 1.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from .. import __version__
from ..ocicrypt.diagnostics import bounded_message, printable
from ..ocicrypt.errors import DecoderError, KeysDirError

USAGE = """\
NAME:
   ctd-decoder - ctd-decoder is used as a call-out from containerd content stream plugins

USAGE:
   ctd-decoder [--decryption-keys-path DIR]

   Reads an encrypted layer on stdin, the decryption payload on fd 3, and writes the decrypted
   layer to stdout.

OPTIONS:
   --decryption-keys-path DIR  Path to load decryption keys from. (optional)
   --help, -h                  show help
   --version, -v               print the version
"""

KEYS_PATH_FLAG = "decryption-keys-path"
VERIFY_DIGEST_ENV = "CTD_DECODER_VERIFY_DIGEST"
MAX_NOTES = 12
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class UsageError(Exception):
    """The command line is not understood."""


def parse_args(argv: Sequence[str]) -> str | None:
    """Return the keys path, or None; raise UsageError; positional arguments are ignored."""
    keys_path: str | None = None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue
        name, has_value, value = arg.lstrip("-").partition("=")
        if name in ("h", "help"):
            raise SystemExit(_print_usage())
        if name in ("v", "version"):
            raise SystemExit(_print_version())
        if name != KEYS_PATH_FLAG:
            raise UsageError(f"flag provided but not defined: -{name}")
        if not has_value:
            if not args:
                raise UsageError(f"flag needs an argument: -{name}")
            value = args.pop(0)
        keys_path = value
    return keys_path


def _print_usage() -> int:
    sys.stdout.write(USAGE)
    return 0


def _print_version() -> int:
    sys.stdout.write(f"ctd-decoder version {__version__}\n")
    return 0


def _fail(message: str, notes: Sequence[str] = ()) -> int:
    text = message.rstrip("\n")
    if notes:
        shown = [printable(note, 300) for note in notes[:MAX_NOTES]]
        if len(notes) > MAX_NOTES:
            shown[-1] = f"and {len(notes) - MAX_NOTES + 1:,} more notes"
        text += "\nkeys directory notes:" + "".join(f"\n- {note}" for note in shown)
    sys.stderr.write(bounded_message(text) + "\n")
    return 1


class _Stopped(BaseException):
    """A stop signal arrived; unwinding runs every clean-up on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _stop_signals_unwind() -> Iterator[None]:
    """Turn SIGINT/SIGTERM/SIGHUP into an exception (no traceback, clean-ups run); later ones are ignored."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise _Stopped(signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(keys_path: str | None) -> int:
    """Decrypt one layer from stdin to stdout the way containerd expects."""
    from .payload import parse_payload, read_payload_bytes

    try:
        payload = parse_payload(read_payload_bytes())
    except DecoderError as err:
        return _fail(str(err))
    dc = payload.decrypt_config
    notes: list[str] = []
    if keys_path is not None:
        if os.path.exists(keys_path):
            from ..ocicrypt.keysdir import load_keys_dir

            try:
                keys_dir = load_keys_dir(keys_path)
            except KeysDirError as err:
                return _fail(f"unable to get decryption keys in provided key path: {err}")
            dc = keys_dir.config.combined_with(dc)
            notes = keys_dir.notes
        else:
            notes.append(f"{keys_path} does not exist; using the keys in the payload only")

    from ..ocicrypt.layer import decrypt_layer
    from ..ocicrypt.stream import decrypt_stream

    try:
        layer = decrypt_layer(dc, payload.descriptor)
    except DecoderError as err:
        return _fail(f"call to DecryptLayer failed: {err}", notes)
    decryptor = layer.decryptor
    if os.environ.get(VERIFY_DIGEST_ENV) == "1":
        from ..ocicrypt.digest import DigestVerifyingDecryptor

        try:
            decryptor = DigestVerifyingDecryptor(decryptor, layer.digest)
        except DecoderError as err:
            return _fail(f"call to DecryptLayer failed: {err}")
    try:
        decrypt_stream(decryptor, sys.stdin.fileno(), sys.stdout.fileno(), size_hint=payload.descriptor.size)
    except DecoderError as err:
        return _fail(f"could not copy data: {err} (layer {payload.descriptor.digest})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ctd-decoder`` console script."""
    warnings.simplefilter("ignore")  # stderr is the error report: its first line must be the Go prefix
    try:
        keys_path = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        # Go's flag package words it so (one dash, whatever was typed); the first line is its stderr.
        sys.stderr.write(f"{err}\n\nIncorrect Usage.\n\n{USAGE}")
        return 1
    try:
        with _stop_signals_unwind():
            status = run(keys_path)
    except _Stopped as stop:
        sys.stderr.write(f"ctd-decoder: stopped by {signal.Signals(stop.signum).name}\n")
        return 128 + stop.signum
    except Exception as err:  # never a traceback: it could show key material held in locals
        if os.environ.get("CTD_DECODER_DEBUG"):
            raise
        status = _fail(f"ctd-decoder: internal error ({type(err).__name__}); set CTD_DECODER_DEBUG=1 for details")
    if status != 0:
        from .exit_race import hold_stdout_until_reaped

        hold_stdout_until_reaped()
    return status


if __name__ == "__main__":
    sys.exit(main())
