"""Arguments and the run of the image-rewriting subcommands (encrypt, decrypt, recipients)."""

from __future__ import annotations

import argparse

from ..ocicrypt.config import DecryptConfig
from .image.layout import Platform, open_image
from .image.reference import parse_reference
from .image.rewrite import LayerTransform, Selection, rewrite_image
from .image.writer import LayoutWriter


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """Add SRC, DST, ``--platform`` and ``--layer`` (as ctr-enc takes them)."""
    parser.add_argument("source", metavar="SRC", help="oci:DIR[:REF] or oci-archive:FILE[:REF]")
    parser.add_argument("destination", metavar="DST", help="oci:DIR[:REF] or oci-archive:FILE[:REF]; must not exist")
    parser.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="OS/ARCH[/VARIANT]",
        help="only this platform of an index (repeatable; default: all)",
    )
    parser.add_argument(
        "--layer",
        action="append",
        type=int,
        default=[],
        metavar="N",
        help="only layer N: 0 is the base layer, -1 the top one (repeatable; default: all)",
    )


def add_key_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    """Add ``--key FILE[:PASSWORD]`` and ctr-enc's ``--dec-recipient pkcs7:CERT``."""
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        required=required,
        metavar="FILE[:PASSWORD]",
        help="private key, OpenPGP secret ring, PKCS#11 key file or certificate; or provider:NAME (repeatable)",
    )
    parser.add_argument(
        "--dec-recipient",
        action="append",
        default=[],
        metavar="pkcs7:CERT",
        help="certificate of a PKCS#7 recipient (as ctr-enc; a certificate given with --key works too)",
    )


def add_recipient_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--recipient SCHEME:VALUE`` and ``--gpg-homedir``."""
    parser.add_argument(
        "--recipient",
        action="append",
        default=[],
        required=True,
        metavar="SCHEME:VALUE",
        help="jwe:PUBKEY, pkcs7:CERT, pgp:USER, pkcs11:KEY.yaml|PUBKEY or provider:NAME (repeatable)",
    )
    parser.add_argument("--gpg-homedir", metavar="DIR", help="GnuPG home to find pgp recipients' keys in")


def with_keys_dir(keys_dir: str | None, dc: DecryptConfig) -> DecryptConfig:
    """``dc`` plus the keys of ``--keys-dir`` (as the node's decoder loads them), if one was given."""
    if not keys_dir:
        return dc
    from ..ocicrypt.keysdir import load_keys_dir

    return load_keys_dir(keys_dir).config.combined_with(dc)


def rewrite(args: argparse.Namespace, transform: LayerTransform) -> int:
    """Rewrite SRC into DST with ``transform`` on the selected layers; exit status 0."""
    source_ref, target_ref = parse_reference(args.source), parse_reference(args.destination)
    selection = Selection([Platform.parse(text) for text in args.platform], list(args.layer))
    with open_image(source_ref) as image, LayoutWriter(target_ref) as writer:
        rewrite_image(image, writer, selection, transform, target_ref.ref)
    return 0
