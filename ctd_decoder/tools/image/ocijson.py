"""OCI image JSON (descriptors, manifests, indexes) read and written as Go's encoding/json writes it.

The Go toolchain (skopeo, ctr-enc) marshals the image-spec structs: members in struct order, empty
optional members left out, map keys sorted, compact, and ``<``, ``>``, ``&`` escaped. Members the
structs do not know are kept (after the known ones) rather than silently dropped.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ImageError

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (INDEX, DOCKER_MANIFEST_LIST)
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
DOCKER_LAYER_TO_OCI = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
}

_DESCRIPTOR = ("mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType")
_PLATFORM = ("architecture", "os", "os.version", "os.features", "variant", "features")
_MANIFEST = ("schemaVersion", "mediaType", "artifactType", "config", "layers", "subject", "annotations")
_INDEX = ("schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations")
# Members without ``omitempty`` in the Go structs.
_ALWAYS = {"schemaVersion", "config", "layers", "manifests"}
_ALWAYS_DESCRIPTOR = {"mediaType", "digest", "size"}
_ALWAYS_PLATFORM = {"architecture", "os"}


def _ordered(obj: dict[str, Any], order: tuple[str, ...], always: set[str] = _ALWAYS) -> dict[str, Any]:
    out = {name: obj[name] for name in order if name in obj and (obj[name] or name in always)}
    out.update((name, value) for name, value in obj.items() if name not in order)
    return out


def _descriptor(obj: dict[str, Any]) -> dict[str, Any]:
    out = _ordered(obj, _DESCRIPTOR, _ALWAYS_DESCRIPTOR)
    if "annotations" in out:
        out["annotations"] = dict(sorted(out["annotations"].items()))
    if "platform" in out:
        out["platform"] = _ordered(out["platform"], _PLATFORM, _ALWAYS_PLATFORM)
    return out


def _go_bytes(obj: dict[str, Any]) -> bytes:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028")):
        text = text.replace(char, escape)
    return text.replace("\u2029", "\\u2029").encode("utf-8")


def marshal_manifest(manifest: dict[str, Any]) -> bytes:
    """Return an image manifest's bytes as Go writes them."""
    out = _ordered(manifest, _MANIFEST)
    out["config"] = _descriptor(out["config"])
    out["layers"] = [_descriptor(layer) for layer in out["layers"]]
    if "subject" in out:
        out["subject"] = _descriptor(out["subject"])
    if "annotations" in out:
        out["annotations"] = dict(sorted(out["annotations"].items()))
    return _go_bytes(out)


def marshal_index(index: dict[str, Any]) -> bytes:
    """Return an image index's (or index.json's) bytes as Go writes them."""
    out = _ordered(index, _INDEX)
    out["manifests"] = [_descriptor(entry) for entry in out.get("manifests") or []]
    if "subject" in out:
        out["subject"] = _descriptor(out["subject"])
    if "annotations" in out:
        out["annotations"] = dict(sorted(out["annotations"].items()))
    return _go_bytes(out)


def parse_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object, raising :class:`ImageError` naming ``what`` if it is not one."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ImageError(f"{what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ImageError(f"{what} is not a JSON object")
    return obj


def check_descriptor(obj: Any, what: str) -> dict[str, Any]:
    """Return ``obj`` if it is a descriptor with a string media type and digest and an integer size."""
    if not isinstance(obj, dict):
        raise ImageError(f"{what} is not a descriptor object")
    if not isinstance(obj.get("mediaType", ""), str) or not isinstance(obj.get("digest"), str):
        raise ImageError(f"{what} has no valid mediaType/digest")
    size = obj.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageError(f"{what} ({obj['digest']}) has no valid size")
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise ImageError(f"{what} ({obj['digest']}) has annotations that are not strings")
    return obj
