"""Running an image rewrite from the command line's SRC, DST, ``--platform``, ``--layer`` and ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .errors import ImageError
from .layout import Platform, open_image
from .reference import parse_reference
from .rewrite import LayerOperation, Selection, rewrite_image
from .writer import LayoutWriter


def rewrite(
    args: argparse.Namespace,
    command: str,
    operation: LayerOperation,
    no_layer: str,
    refuse_no_layer: bool = True,
    recipients: Sequence[dict[str, Any]] = (),
) -> int:
    """Rewrite SRC into DST with ``operation`` (of subcommand ``command``) on the selected layers; exit status 0.

    Before anything is written, every ``--layer`` must exist in each selected manifest, and when
    ``operation`` applies to none of the selected layers (``no_layer`` says why), the command fails
    (``refuse_no_layer``) or notes it on stderr and writes an unchanged copy. With ``--json``, what
    was written is printed (see :mod:`ctd_decoder.tools.record`).
    """
    source_ref, target_ref = parse_reference(args.source), parse_reference(args.destination)
    selection = Selection([Platform.parse(text) for text in args.platform], list(args.layer))
    with open_image(source_ref) as image:
        if not selection.count_applicable(image.select(list(selection.platforms)), operation.applies):
            message = f"{source_ref}: {no_layer}"
            if refuse_no_layer:
                raise ImageError(f"{message}; nothing written")
            sys.stderr.write(f"ocicrypt: note: {message}; {target_ref} is an unchanged copy\n")
        with LayoutWriter(target_ref) as writer:
            record = rewrite_image(image, writer, selection, operation, target_ref.ref)
    if args.json:
        from ..record import render

        report = render(command, source_ref, target_ref, record, recipients)
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0
