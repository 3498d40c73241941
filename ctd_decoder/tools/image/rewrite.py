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
from .errors import ImageError
from .layout import Image, ImageManifest, Platform, to_descriptor
from .writer import LayoutWriter

# Called with the source image, the writer and the layer's JSON descriptor; returns the new
# descriptor (its blob already written) or None to keep the layer as it is.
LayerTransform = Callable[[Image, LayoutWriter, dict[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True)
class LayerOperation:
    """What a subcommand does to a layer: ``applies`` tells (from the descriptor alone, before anything is
    written) whether ``transform`` changes it; ``action`` names what was done to one it changed."""

    transform: LayerTransform
    applies: Callable[[dict[str, Any]], bool]
    action: Callable[[dict[str, Any]], str]


@dataclass
class LayerRecord:
    """One layer as it was and as it was written (the same object when it was kept)."""

    index: int
    before: dict[str, Any]
    after: dict[str, Any]
    action: str

    @property
    def changed(self) -> bool:
        """Tell whether the layer was rewritten."""
        return self.after is not self.before


@dataclass
class ManifestRecord:
    """One platform's manifest as it was and as it was written, with its layers."""

    platform: Platform | None
    before: dict[str, Any]
    after: dict[str, Any]
    layers: list[LayerRecord]


@dataclass
class RewriteRecord:
    """What a rewrite wrote: the index.json entry of the new image (its digest: the manifest's or the
    index's), the source's entry, and every manifest."""

    entry: dict[str, Any]
    source_entry: dict[str, Any]
    manifests: list[ManifestRecord]


@dataclass
class Selection:
    """Which platforms (all if empty) and layers (all if empty; negative from the top, as ctr-enc) to touch."""

    platforms: Sequence[Platform] = ()
    layers: Sequence[int] = field(default_factory=list)

    def layer_selected(self, index: int, total: int) -> bool:
        """Tell whether layer ``index`` (0 is the base layer) of ``total`` is selected."""
        return not self.layers or any(wanted in (index, index - total) for wanted in self.layers)

    def check_layers(self, manifest: ImageManifest) -> None:
        """Refuse a ``--layer`` the manifest does not have (it would select nothing there)."""
        total = len(manifest.document["layers"])
        for wanted in self.layers:
            if not -total <= wanted < total:
                where = f"the {manifest.platform} image" if manifest.platform else "the image"
                valid = f"0..{total - 1} or -{total}..-1" if total else "none"
                layers = f"{total} layer" + ("" if total == 1 else "s")
                raise ImageError(f"--layer {wanted}: {where} has {layers} (valid: {valid}); nothing written")

    def count_applicable(self, manifests: Sequence[ImageManifest], applies: Callable[[dict[str, Any]], bool]) -> int:
        """Check every ``--layer`` against ``manifests``; return how many selected layers ``applies`` to."""
        count = 0
        for manifest in manifests:
            self.check_layers(manifest)
            layers = manifest.document["layers"]
            count += sum(
                1 for number, layer in enumerate(layers) if self.layer_selected(number, len(layers)) and applies(layer)
            )
        return count


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
    source: Image, writer: LayoutWriter, manifest: ImageManifest, selection: Selection, operation: LayerOperation
) -> ManifestRecord:
    """Transform the selected layers of ``manifest``; return what was written."""
    layers: list[dict[str, Any]] = manifest.document["layers"]
    records: list[LayerRecord] = []
    for number, layer in enumerate(layers):
        new = operation.transform(source, writer, layer) if selection.layer_selected(number, len(layers)) else None
        if new is None:
            _copy(source, writer, layer)
            records.append(LayerRecord(number, layer, layer, "unchanged"))
        else:
            records.append(LayerRecord(number, layer, new, operation.action(layer)))
    _copy(source, writer, manifest.document["config"])
    if not any(record.changed for record in records):
        _copy(source, writer, manifest.raw_descriptor)
        return ManifestRecord(manifest.platform, manifest.raw_descriptor, manifest.raw_descriptor, records)
    document = _to_oci(dict(manifest.document, layers=[record.after for record in records]))
    digest, size = writer.add_bytes(ocijson.marshal_manifest(document))
    after = dict(
        manifest.raw_descriptor, mediaType=document.get("mediaType", ocijson.MANIFEST), digest=digest, size=size
    )
    return ManifestRecord(manifest.platform, manifest.raw_descriptor, after, records)


def _kept(manifest: ImageManifest) -> ManifestRecord:
    layers = manifest.document["layers"]
    records = [LayerRecord(number, layer, layer, "unchanged") for number, layer in enumerate(layers)]
    return ManifestRecord(manifest.platform, manifest.raw_descriptor, manifest.raw_descriptor, records)


def rewrite_image(
    source: Image, writer: LayoutWriter, selection: Selection, operation: LayerOperation, ref: str | None
) -> RewriteRecord:
    """Write ``source`` into ``writer`` with ``operation`` applied, commit it under ``ref``; return the record."""
    chosen = source.select(list(selection.platforms))
    manifests: list[ManifestRecord] = []
    for manifest in source.manifests:
        if manifest in chosen:
            manifests.append(_rewrite_manifest(source, writer, manifest, selection, operation))
        else:
            for descriptor in (*manifest.document["layers"], manifest.document["config"], manifest.raw_descriptor):
                _copy(source, writer, descriptor)
            manifests.append(_kept(manifest))
    entry = dict(source.entry)
    if source.index is None:
        entry.update(manifests[0].after)
    elif all(record.after is record.before for record in manifests):
        _copy(source, writer, source.entry)
    else:
        index = dict(source.index, manifests=[record.after for record in manifests])
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
    return RewriteRecord(entry, source.entry, manifests)
