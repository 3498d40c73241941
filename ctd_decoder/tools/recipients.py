"""``ocicrypt recipients add|rotate``: give an encrypted image more recipients, or a new key for a new set."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``recipients`` subcommand with ``add`` and ``rotate``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "recipients", help="add recipients to an encrypted image, or rotate its layer keys"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    from .options import add_image_arguments, add_key_arguments, add_recipient_arguments

    add_parser = actions.add_parser(
        "add",
        help="wrap every layer key for more recipients (layer data untouched)",
        description="Unwrap each encrypted layer's key with --key and wrap it again for the new recipients, "
        "who are added to those already there. Layer blobs are copied unchanged.",
    )
    rotate_parser = actions.add_parser(
        "rotate",
        help="re-encrypt every layer under a new key for exactly the given recipients",
        description="Decrypt each encrypted layer with --key and encrypt it again under a fresh layer key for "
        "exactly the given recipients: recipients not named can no longer decrypt the result.",
    )
    for sub, action in ((add_parser, "add"), (rotate_parser, "rotate")):
        add_image_arguments(sub)
        add_recipient_arguments(sub)
        add_key_arguments(sub, required=True)
        sub.set_defaults(run=run, action=action)


def run(args: argparse.Namespace) -> int:
    """Add recipients to, or rotate the keys of, SRC into DST."""
    from . import layercrypt
    from .image.run import rewrite
    from .key_arguments import decrypt_config, describe_recipients, encrypt_config

    ec = encrypt_config(args.recipient, args.gpg_homedir)
    dc = decrypt_config(args.key, args.dec_recipient)
    operation = layercrypt.add(ec, dc) if args.action == "add" else layercrypt.rotate(ec, dc)
    what = "recipients are added only to" if args.action == "add" else "layer keys are rotated only in"
    no_layer = f"no selected layer is encrypted: {what} encrypted layers (to encrypt: ocicrypt encrypt)"
    recipients = describe_recipients(args.recipient) if args.json else ()
    return rewrite(args, f"recipients {args.action}", operation, no_layer, recipients=recipients)
