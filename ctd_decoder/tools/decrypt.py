"""``ocicrypt decrypt``: decrypt an image's encrypted layers with the given keys."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``decrypt`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "decrypt",
        help="decrypt image layers",
        description="Decrypt the encrypted layers of SRC with the keys and write DST. An image with no "
        "encrypted layer (in the selected platforms and layers) is copied unchanged, with a note on stderr.",
    )
    from .options import add_image_arguments, add_key_arguments

    add_image_arguments(parser)
    add_key_arguments(parser, required=False)
    parser.add_argument("--keys-dir", metavar="DIR", help="also use the keys of this directory, as the node has it")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Decrypt SRC into DST."""
    from . import layercrypt
    from .image.run import rewrite
    from .key_arguments import decrypt_config
    from .options import with_keys_dir

    dc = with_keys_dir(args.keys_dir, decrypt_config(args.key, args.dec_recipient))
    no_layer = "no selected layer is encrypted"
    return rewrite(args, "decrypt", layercrypt.decrypt(dc), no_layer, refuse_no_layer=False)
