"""What ``encrypt``, ``decrypt`` and ``recipients`` wrote, as ``--json`` prints it.

The shape is ``inspect --json``'s for the written image (reference, mediaType, digest, platforms with
their manifest and layers, each layer's schemes and recipients), with what the command adds: the
command, source and destination, the source's digests (``sourceDigest``, ``sourceManifest``, and per
layer ``source``: mediaType, size, digest), what was done to each layer (``action``), whether
anything changed, and the ``--recipient`` arguments with their key fingerprints (as ``doctor`` prints
them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .image.layout import to_descriptor
from .image.reference import ImageReference
from .image.rewrite import LayerRecord, ManifestRecord, RewriteRecord
from .inspect import layer_report


def _descriptor_summary(descriptor: dict[str, Any]) -> dict[str, Any]:
    return {"mediaType": descriptor.get("mediaType", ""), "size": descriptor["size"], "digest": descriptor["digest"]}


def _layer(record: LayerRecord) -> dict[str, Any]:
    report = layer_report(record.index, to_descriptor(record.after), None)
    report["action"] = record.action
    report["source"] = _descriptor_summary(record.before)
    return report


def _platform(record: ManifestRecord) -> dict[str, Any]:
    return {
        "platform": str(record.platform) if record.platform else None,
        "manifest": record.after["digest"],
        "mediaType": record.after.get("mediaType", ""),
        "sourceManifest": record.before["digest"],
        "layers": [_layer(layer) for layer in record.layers],
    }


def render(
    command: str,
    source: ImageReference,
    destination: ImageReference,
    record: RewriteRecord,
    recipients: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Return the JSON-ready report of one rewrite."""
    platforms = [_platform(manifest) for manifest in record.manifests]
    changed = any(layer["action"] != "unchanged" for platform in platforms for layer in platform["layers"])
    report: dict[str, Any] = {
        "command": command,
        "source": str(source),
        "destination": str(destination),
        "reference": str(destination),
        "mediaType": record.entry.get("mediaType", ""),
        "digest": record.entry["digest"],
        "sourceDigest": record.source_entry["digest"],
        "changed": changed,
        "platforms": platforms,
    }
    if recipients:
        report["recipients"] = list(recipients)
    return report
