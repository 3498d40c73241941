"""The cold path of the ``ctd-decoder`` stream processor: decode one layer in this process.

containerd runs the decoder once per encrypted layer; :func:`decode_main` is what runs when no warm
server takes the layer over (and what the warm server's child runs). stdin is the encrypted layer,
stdout the decrypted one, fd 3 the payload. Every failure is one paragraph on stderr that starts
with the Go decoder's prefix, and exit status 1.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence

from .. import __version__
from ..ocicrypt.diagnostics import bounded_message, printable
from ..ocicrypt.errors import KeysDirError, OcicryptError
from ..ocicrypt.stopsignals import raising_on_stop

USAGE = """\
NAME:
   ctd-decoder - ctd-decoder is used as a call-out from containerd content stream plugins

USAGE:
   ctd-decoder [--decryption-keys-path PATH] [--descriptor-recovery on|off]

   containerd runs it once per encrypted layer: the encrypted layer on stdin, the decryption
   payload on fd 3, the decrypted layer on stdout. It is not meant to be run by hand.

COMMANDS:
   help, h  Shows a list of commands or help for one command

GLOBAL OPTIONS:
   --decryption-keys-path PATH  Path to load decryption keys from: a directory (searched recursively)
                                or one key file. (optional)
   --descriptor-recovery on|off  Without a payload on fd 3, decrypt with the node's keys and the layer's
                                descriptor from containerd's content store (default: on; also
                                CTD_DECODER_RECOVERY=off).
   --help, -h                   show help
   --version, -v                print the version
"""

HELP_COMMAND_USAGE = """\
NAME:
   help - Shows a list of commands or help for one command

USAGE:
   help [command]
"""

BY_HAND = (
    "ctd-decoder is meant to be run by containerd, which starts it once per encrypted layer with the layer on "
    "stdin and the decryption payload on fd 3. To decrypt an image yourself, use `ctr-enc images decrypt --key ...`."
)

KEYS_PATH_FLAG = "decryption-keys-path"
HELP_COMMANDS = ("help", "h")
VERIFY_DIGEST_ENV = "CTD_DECODER_VERIFY_DIGEST"
MAX_NOTES = 12
# Go's strconv.ParseBool, which its flag package uses for boolean flags.
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class UsageError(Exception):
    """The command line is not understood (the text is Go's flag package's)."""


class CommandLine:
    """What the command line sets: the keys path and the descriptor-recovery switch (None: not given)."""

    __slots__ = ("keys_path", "recovery")

    def __init__(self, keys_path: str | None = None, recovery: str | None = None) -> None:
        self.keys_path = keys_path
        self.recovery = recovery


def parse_command_line(argv: Sequence[str]) -> CommandLine:
    """Parse the flags; raise UsageError, or SystemExit after printing help or the version.

    Parsed as Go's flag package and urfave/cli do: one or two dashes, flags end at ``--`` or at
    the first argument that is not a flag; a first such argument ``help`` or ``h`` is the help
    command, any other is ignored.
    """
    from .recovery.switch import RECOVERY_FLAG, invalid_value

    parsed = CommandLine()
    args = list(argv)
    while args:
        arg = args[0]
        if arg == "--":
            args.pop(0)
            break
        if not arg.startswith("-") or arg == "-":
            break
        args.pop(0)
        name, has_value, value = arg[2:].partition("=") if arg.startswith("--") else arg[1:].partition("=")
        if not name or name[0] in "-=":
            raise UsageError(f"bad flag syntax: {arg}")
        if name in ("h", "help", "v", "version"):
            if has_value and value not in _GO_TRUE + _GO_FALSE:
                raise UsageError(f'invalid boolean value "{value}" for -{name}: parse error')
            if not has_value or value in _GO_TRUE:
                raise SystemExit(_print_usage() if name in ("h", "help") else _print_version())
            continue
        if name not in (KEYS_PATH_FLAG, RECOVERY_FLAG):
            raise UsageError(f"flag provided but not defined: -{name}")
        if not has_value:
            if not args:
                raise UsageError(f"flag needs an argument: -{name}")
            value = args.pop(0)
        if name == RECOVERY_FLAG:
            problem = invalid_value(value)
            if problem is not None:
                raise UsageError(problem)
            parsed.recovery = value
        else:
            parsed.keys_path = value
    if args and args[0] in HELP_COMMANDS:
        raise SystemExit(_help_command(args[1:]))
    return parsed


def _help_command(topics: Sequence[str]) -> int:
    if not topics:
        return _print_usage()
    if topics[0] in HELP_COMMANDS:
        sys.stdout.write(HELP_COMMAND_USAGE)
        return 0
    sys.stderr.write(f"No help topic for '{topics[0]}'\n")
    return 3


def _usage_error(err: UsageError) -> int:
    """Report a bad command line as Go's urfave/cli does: the usage on stdout, the error alone on stderr.

    Under containerd (which sets the media type variable) stdout is the layer: the usage would be
    unpacked as tar data and hide the error, so there it follows the error on stderr instead.
    """
    from . import MEDIA_TYPE_ENV

    usage = f"Incorrect Usage: {err}\n\n{USAGE}"
    if MEDIA_TYPE_ENV in os.environ:
        sys.stderr.write(f"{err}\n\n{usage}")
        return 1
    sys.stdout.write(usage)
    sys.stdout.flush()
    sys.stderr.write(f"{err}\n")
    return 1


def _print_usage() -> int:
    sys.stdout.write(USAGE)
    return 0


def _print_version() -> int:
    sys.stdout.write(f"ctd-decoder version {__version__}\n")
    return 0


def _interactive() -> bool:
    """Whether a person, not containerd, runs us: containerd connects stdin and stderr to pipes."""
    return any(os.isatty(fd) for fd in (0, 2))


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


def run(
    keys_path: str | None,
    layer_seen: Callable[[str], None] | None = None,
    recovery: str | None = None,
    starter: Callable[[], int | None] | None = None,
    sweep_first: bool = True,
) -> int:
    """Decrypt one layer from stdin to stdout the way containerd expects.

    ``layer_seen`` is told the layer's digest as soon as it is known (the warm server logs it).
    Without a payload, the descriptor is recovered from containerd's content store (``recovery``
    is the ``--descriptor-recovery`` value; ``starter`` tells the pid of the process that started the
    decoder, default our parent). ``sweep_first``: remove what an earlier, killed run left first (the
    warm server does that for its children).
    """
    if sweep_first:
        from ..ocicrypt.keywrap.pgp.scratch import sweep

        sweep()  # what an earlier, killed run left (a GnuPG home with private keys)
    from .payload import MISSING_PAYLOAD, MissingPayloadError, Payload, parse_payload, read_payload_bytes

    payload: Payload | None = None
    try:
        payload = parse_payload(read_payload_bytes())
    except MissingPayloadError as err:
        from . import MEDIA_TYPE_ENV

        if _interactive():
            return _fail(f"{MISSING_PAYLOAD}\n{BY_HAND}\n\n{USAGE}")
        if MEDIA_TYPE_ENV not in os.environ:  # not run by containerd: nothing to recover from
            return _fail(str(err))
    except OcicryptError as err:
        return _fail(str(err))
    if layer_seen is not None and payload is not None:
        layer_seen(payload.descriptor.digest)
    if payload is not None:
        dc = payload.decrypt_config
    else:
        from ..ocicrypt.config import DecryptConfig

        dc = DecryptConfig()
    notes: list[str] = []
    if keys_path is not None:
        if os.path.exists(keys_path):
            from ..ocicrypt.keysdir import load_keys_dir

            try:
                keys_dir = load_keys_dir(keys_path)
            except KeysDirError as err:
                return _fail(f"unable to get decryption keys in provided key path: {err}")
            dc = keys_dir.config.combined_with(dc)
            notes = keys_dir.notes + [str(warning) for warning in keys_dir.warnings]
        else:
            notes.append(f"{keys_path} does not exist; using the keys in the payload only")

    from ..ocicrypt.layer import decrypt_layer
    from ..ocicrypt.stream import decrypt_stream

    # --- descriptor recovery (no payload): see ctd_decoder/decoder/recovery ---
    if payload is None:
        from .recovery.run import RecoveryFailed, recovered_layer

        try:
            layer, descriptor = recovered_layer(dc, recovery, starter)
        except RecoveryFailed as failed:
            return _fail(failed.message, notes if failed.keys_notes else ())
        if layer_seen is not None:
            layer_seen(descriptor.digest)
        payload = Payload(dc, descriptor)
    # --- end of descriptor recovery ---
    else:
        try:
            layer = decrypt_layer(dc, payload.descriptor)
        except OcicryptError as err:
            return _fail(f"call to DecryptLayer failed: {err}", notes)
    decryptor = layer.decryptor
    if os.environ.get(VERIFY_DIGEST_ENV) == "1":
        from ..ocicrypt.digest import DigestVerifyingDecryptor

        try:
            decryptor = DigestVerifyingDecryptor(decryptor, layer.digest, payload.descriptor.media_type)
        except OcicryptError as err:
            return _fail(f"call to DecryptLayer failed: {err}")
    try:
        # fds 0 and 1, not sys.stdin: Python sets that to None when fd 0 is closed.
        decrypt_stream(decryptor, 0, 1, size_hint=payload.descriptor.size)
    except OcicryptError as err:
        return _fail(f"could not copy data: {err} (layer {payload.descriptor.digest})")
    except OSError as err:  # fd 0 or 1 not open at all (containerd always opens both)
        return _fail(f"could not copy data: stdin or stdout: {err.strerror} (layer {payload.descriptor.digest})")
    return 0


def decode_main(
    argv: Sequence[str],
    layer_seen: Callable[[str], None] | None = None,
    starter: Callable[[], int | None] | None = None,
    sweep_first: bool = True,
) -> int:
    """Parse ``argv`` (without the program name) and decode one layer in this process.

    The warm path's child passes ``starter`` (asked, only if the descriptor must be recovered, for the
    pid of the process that started the decoder: the client's parent) and ``sweep_first=False``.
    """
    warnings.simplefilter("ignore")  # stderr is the error report: its first line must be the Go prefix
    try:
        command_line = parse_command_line(argv)
    except UsageError as err:
        return _usage_error(err)
    try:
        with raising_on_stop(_Stopped):
            return run(command_line.keys_path, layer_seen, command_line.recovery, starter, sweep_first)
    except _Stopped as stop:
        from ..ocicrypt.keywrap.pgp.scratch import remove_live_dirs

        remove_live_dirs()  # the signal may have landed where no clean-up of a GnuPG home ran
        sys.stderr.write(f"ctd-decoder: stopped by {signal.Signals(stop.signum).name}\n")
        return 128 + stop.signum
    except Exception as err:  # never a traceback: it could show key material held in locals
        if os.environ.get("CTD_DECODER_DEBUG"):
            raise
        return _fail(f"ctd-decoder: internal error ({type(err).__name__}); set CTD_DECODER_DEBUG=1 for details")
