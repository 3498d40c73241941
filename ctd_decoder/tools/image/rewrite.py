"""Rewriting an image layer by layer into a :class:`LayoutWriter`, keeping everything else as it was.

A subcommand supplies a :data:`LayerTransform` for the selected layers of the selected platforms; the
manifests it changes are written again (Go-style JSON, so new digests), the index around them too,
and every untouched blob, manifest and index is copied byte for byte (checked on the way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import ocijson
from .layout import Image, ImageManifest, Platform, to_descriptor
from .writer import LayoutWriter

# Called with the source image, the writer and the layer's JSON descriptor; returns the new
# descriptor (its blob already written) or None to keep the layer as it is.
LayerTransform = Callable[[Image, LayoutWriter, dict[str, Any]], dict[str, Any] | None]


@dataclass
class Selection:
    """Which platforms (all if empty) and layers (all if empty; negative from the top, as ctr-enc) to touch."""

    platforms: Sequence[Platform] = ()
    layers: Sequence[int] = field(default_factory=list)

    def layer_selected(self, index: int, total: int) -> bool:
        """Tell whether layer ``index`` (0 is the base layer) of ``total`` is selected."""
        return not self.layers or any(wanted in (index, index - total) for wanted in self.layers)


def _copy(source: Image, writer: LayoutWriter, descriptor: dict[str, Any]) -> None:
    with source.open_blob(to_descriptor(descriptor)) as blob:
        writer.copy_blob(blob)


def _to_oci(document: dict[str, Any]) -> dict[str, Any]:
    """Turn a Docker schema 2 manifest whose layers changed into an OCI one, as imgcrypt (ctr-enc) does:
    its descriptor and its ``mediaType`` member become OCI's, while the config and the untouched layers
    keep their Docker media types. The member is written (imgcrypt leaves it out) because skopeo guesses
    a manifest without one from its config's media type, and would push this one as Docker's."""
    if document.get("mediaType") != ocijson.DOCKER_MANIFEST:
        return document
    return dict(document, mediaType=ocijson.MANIFEST)


def _rewrite_manifest(
    source: Image, writer: LayoutWriter, manifest: ImageManifest, selection: Selection, transform: LayerTransform
) -> dict[str, Any]:
    """Return the new descriptor of ``manifest`` after transforming its selected layers."""
    layers: list[dict[str, Any]] = manifest.document["layers"]
    new_layers: list[dict[str, Any]] = []
    changed = False
    for number, layer in enumerate(layers):
        new = transform(source, writer, layer) if selection.layer_selected(number, len(layers)) else None
        if new is None:
            _copy(source, writer, layer)
            new_layers.append(layer)
        else:
            new_layers.append(new)
            changed = True
    _copy(source, writer, manifest.document["config"])
    if not changed:
        _copy(source, writer, manifest.raw_descriptor)
        return manifest.raw_descriptor
    document = _to_oci(dict(manifest.document, layers=new_layers))
    digest, size = writer.add_bytes(ocijson.marshal_manifest(document))
    return dict(
        manifest.raw_descriptor, mediaType=document.get("mediaType", ocijson.MANIFEST), digest=digest, size=size
    )


def rewrite_image(
    source: Image, writer: LayoutWriter, selection: Selection, transform: LayerTransform, ref: str | None
) -> None:
    """Write ``source`` into ``writer`` with ``transform`` applied, and commit it under ``ref``."""
    chosen = source.select(list(selection.platforms))
    new_descriptors = []
    for manifest in source.manifests:
        if manifest in chosen:
            new_descriptors.append(_rewrite_manifest(source, writer, manifest, selection, transform))
        else:
            for descriptor in (*manifest.document["layers"], manifest.document["config"], manifest.raw_descriptor):
                _copy(source, writer, descriptor)
            new_descriptors.append(manifest.raw_descriptor)
    entry = dict(source.entry)
    if source.index is None:
        entry.update(new_descriptors[0])
    elif all(
        new is old for new, old in zip(new_descriptors, (m.raw_descriptor for m in source.manifests), strict=True)
    ):
        _copy(source, writer, source.entry)
    else:
        index = dict(source.index, manifests=new_descriptors)
        if index.get("mediaType") == ocijson.DOCKER_MANIFEST_LIST:
            index["mediaType"] = ocijson.INDEX
        digest, size = writer.add_bytes(ocijson.marshal_index(index))
        entry.update(mediaType=index.get("mediaType", ocijson.INDEX), digest=digest, size=size)
    entry.pop("annotations", None)
    annotations = dict(source.entry.get("annotations") or {})
    if ref is not None:
        annotations[ocijson.REF_NAME_ANNOTATION] = ref
    if annotations:
        entry["annotations"] = annotations
    writer.commit(ocijson.marshal_index({"schemaVersion": 2, "manifests": [entry]}))
