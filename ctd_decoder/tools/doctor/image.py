"""The ``--image`` check: for each encrypted layer, whether this node's decoder can unwrap its key.

The layer key is unwrapped exactly as a pull would (the decoder's keys directory, its key-provider and
PKCS#11 environment); no layer data is read or decrypted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ...ocicrypt import (
    DecryptConfig,
    Descriptor,
    KeysDir,
    OcicryptError,
    decrypt_layer,
    schemes_in,
    scoped_environment,
)
from ...ocicrypt.spec import ENCRYPTED_MEDIA_TYPES, UNWRAP_ENVIRONMENT
from ..image import ImageError, ImageReference, ocijson, open_image, parse_reference
from ..image.layout import MAX_JSON_BLOB, to_descriptor
from .containerd import Node, short_media_type
from .report import Report

STDIN = "-"
CHECK = "image.layer"


class ImageSpecError(ValueError):
    """``--image`` is neither ``-`` nor an oci:/oci-archive: reference (a usage error)."""


def parse_image_spec(text: str) -> ImageReference | None:
    """Parse ``--image``: None for a manifest on stdin, else the image reference."""
    if text == STDIN:
        return None
    try:
        return parse_reference(text)
    except ImageError as err:
        raise ImageSpecError(f"{err}, or - for a manifest on stdin") from None


def _stdin_manifest() -> list[Descriptor]:
    data = sys.stdin.buffer.read(MAX_JSON_BLOB + 1)
    if len(data) > MAX_JSON_BLOB:
        raise ImageError(f"the manifest on stdin is larger than {MAX_JSON_BLOB} bytes")
    document = ocijson.parse_object(data, "the manifest on stdin")
    if document.get("mediaType") in ocijson.INDEX_TYPES or "manifests" in document:
        raise ImageError(
            "stdin holds an image index, not a manifest; pass one platform's manifest "
            "(skopeo inspect --raw docker://IMAGE@DIGEST, a digest from the index)"
        )
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise ImageError("the manifest on stdin has no layers list")
    return [
        to_descriptor(ocijson.check_descriptor(layer, f"the manifest on stdin: layer {n}"))
        for n, layer in enumerate(layers)
    ]


@contextmanager
def _manifests(reference: ImageReference | None) -> Iterator[list[tuple[str, list[Descriptor]]]]:
    if reference is None:
        yield [("the manifest on stdin", _stdin_manifest())]
        return
    with open_image(reference) as image:
        yield [(f"{reference} {m.platform or m.descriptor.digest}", m.layers) for m in image.manifests]


def _check_layer(
    report: Report, node: Node, layer: Descriptor, keys_override: str | None, keys_dirs: dict[str, KeysDir | None]
) -> bool:
    schemes = ", ".join(schemes_in(layer.annotations)) or "none"
    what = f"layer {layer.digest} ({short_media_type(layer.media_type)}, wrapped for {schemes})"
    decoder = node.decoders.get(layer.media_type)
    if decoder is None:
        report.error(
            CHECK,
            f"{what}: no stream processor on this node decrypts {layer.media_type}",
            f"register it as the containerd.processor.{short_media_type(layer.media_type)} check says",
        )
        return False
    root = keys_override or decoder.keys_path
    keys = keys_dirs.get(root) if root else None
    dc = keys.config if keys is not None else DecryptConfig()
    env = decoder.env()
    try:
        with scoped_environment({name: env.get(name) for name in UNWRAP_ENVIRONMENT}):
            scheme = decrypt_layer(dc, layer).scheme
    except OcicryptError as err:
        where = f"in {root}" if root else "on this node (no keys directory)"
        report.error(
            CHECK,
            f"{what}: {err}",
            f"put the private key of one of the image's recipients {where}, or configure the key provider it names",
        )
        return False
    report.ok(CHECK, f"{what}: unwrapped with {scheme}")
    return True


def check_image(
    report: Report,
    reference: ImageReference | None,
    node: Node,
    keys_override: str | None,
    keys_dirs: dict[str, KeysDir | None],
) -> None:
    """Unwrap the key of every encrypted layer of the image with this node's decoder setup."""
    try:
        with _manifests(reference) as manifests:
            for name, layers in manifests:
                encrypted = [layer for layer in layers if layer.media_type in ENCRYPTED_MEDIA_TYPES]
                if not encrypted:
                    report.ok(
                        "image.summary", f"{name}: no encrypted layers ({len(layers)} layers), nothing to decrypt"
                    )
                    continue
                results = [_check_layer(report, node, layer, keys_override, keys_dirs) for layer in encrypted]
                done = sum(results)
                summary = f"{name}: {done} of {len(encrypted)} encrypted layers unwrap on this node"
                if done == len(encrypted):
                    report.ok("image.summary", summary)
                else:
                    report.error(
                        "image.summary", summary, "fix the image.layer errors above before deploying it to this node"
                    )
    except ImageError as err:
        report.error(
            "image.read",
            str(err),
            "pass an OCI layout (oci:DIR[:REF]), an oci-archive:FILE[:REF], or a manifest on stdin",
        )
