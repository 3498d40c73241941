"""The arguments of the image-rewriting subcommands (encrypt, decrypt, recipients); :mod:`.image.run` runs them."""

from __future__ import annotations

import argparse

from ..ocicrypt import DecryptConfig


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
        help="only layer N: 0 is the base layer, -1 the top one (repeatable; default: all); "
        "every N must exist in each selected platform's image",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print what was written as JSON (destination, digests, each layer before and after, recipients)",
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
    from ..ocicrypt import load_keys_dir

    return load_keys_dir(keys_dir).config.combined_with(dc)
