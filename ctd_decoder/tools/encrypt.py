"""``ocicrypt encrypt``: encrypt an image's layers for recipients (adding them to already-encrypted layers)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``encrypt`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "encrypt",
        help="encrypt image layers for recipients",
        description="Encrypt the layers of SRC for the recipients and write DST. Layers that are already "
        "encrypted get the recipients added (their key is unwrapped with --key), never a second encryption.",
    )
    from .options import add_image_arguments, add_key_arguments, add_recipient_arguments

    add_image_arguments(parser)
    add_recipient_arguments(parser)
    add_key_arguments(parser, required=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Encrypt SRC into DST."""
    from . import layercrypt
    from .image.run import rewrite
    from .key_arguments import decrypt_config, describe_recipients, encrypt_config

    ec = encrypt_config(args.recipient, args.gpg_homedir)
    dc = decrypt_config(args.key, args.dec_recipient)
    recipients = describe_recipients(args.recipient) if args.json else ()
    return rewrite(args, "encrypt", layercrypt.encrypt(ec, dc), "the image has no layers", recipients=recipients)
