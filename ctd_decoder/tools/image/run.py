"""Running an image rewrite from the command line's SRC, DST, ``--platform`` and ``--layer``."""

from __future__ import annotations

import argparse

from .layout import Platform, open_image
from .reference import parse_reference
from .rewrite import LayerTransform, Selection, rewrite_image
from .writer import LayoutWriter


def rewrite(args: argparse.Namespace, transform: LayerTransform) -> int:
    """Rewrite SRC into DST with ``transform`` on the selected layers; exit status 0."""
    source_ref, target_ref = parse_reference(args.source), parse_reference(args.destination)
    selection = Selection([Platform.parse(text) for text in args.platform], list(args.layer))
    with open_image(source_ref) as image, LayoutWriter(target_ref) as writer:
        rewrite_image(image, writer, selection, transform, target_ref.ref)
    return 0
