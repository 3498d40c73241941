"""The fd-3 payload: a protobuf ``Any`` whose value is imgcrypt's Payload as Go JSON.

Go decodes the JSON with ``encoding/json`` into imgcrypt's ``Payload`` struct (ocicrypt's
``DecryptConfig`` and image-spec 1.1's ``Descriptor``); :func:`~ctd_decoder.ocicrypt.gojson.unmarshal`
applies the same rules to the same types, so a payload is accepted exactly when Go accepts it.
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any

from ..ocicrypt.config import DecryptConfig, Parameters
from ..ocicrypt.descriptor import Descriptor
from ..ocicrypt.errors import OcicryptError
from ..ocicrypt.gojson import BYTES, INT64, STRING, MapOf, SliceOf, Struct, b64encode, unmarshal
from . import MEDIA_TYPE_ENV
from .anywire import WireError, read_any, write_any

PAYLOAD_TYPE_URL = "io.containerd.ocicrypt.v1.Payload"
PAYLOAD_FD = 3
MAX_PAYLOAD_SIZE = 16 * 1024 * 1024

# imgcrypt's Payload{DecryptConfig encconfig.DecryptConfig; Descriptor ocispec.Descriptor}.
_PLATFORM = Struct(
    {"architecture": STRING, "os": STRING, "os.version": STRING, "os.features": SliceOf(STRING), "variant": STRING},
    pointer=True,
)
_DESCRIPTOR = Struct(
    {
        "mediaType": STRING,
        "digest": STRING,
        "size": INT64,
        "urls": SliceOf(STRING),
        "annotations": MapOf(STRING),
        "data": BYTES,
        "platform": _PLATFORM,
        "artifactType": STRING,
    }
)
PAYLOAD_TYPE = Struct({"DecryptConfig": Struct({"Parameters": MapOf(SliceOf(BYTES))}), "Descriptor": _DESCRIPTOR})

PAYLOAD_PROCESSOR_IDS = ("io.containerd.ocicrypt.decoder.v1.tar", "io.containerd.ocicrypt.decoder.v1.tar.gzip")
MISSING_PAYLOAD = "read payload: read configFd: bad file descriptor"
_CTR_CAUSE = (
    "a plain `ctr images pull` or `ctr images import`, which never sends a payload: use "
    "`ctr-enc images pull --key ...` / `ctr-enc images import --key ...`, or pull through the CRI "
    "(crictl, the kubelet, k3s)"
)
_PROCESSOR_ID_CAUSE = f"the stream processor ID is not {' or '.join(PAYLOAD_PROCESSOR_IDS)}"
_CRI_CAUSES = (
    'the CRI image_decryption key_model is not "node"',
    "containerd 2.x pulled through the transfer service, which needs use_local_image_pull = true",
)


class PayloadError(OcicryptError):
    """The fd-3 payload is missing, too large or not a valid ocicrypt payload."""


class MissingPayloadError(PayloadError):
    """fd 3 is not open: containerd (or whoever ran the decoder) sent no payload."""


def explain_missing_payload(media_type: str | None) -> str:
    """The diagnostic for a missing fd 3; ``media_type`` is ``$STREAM_PROCESSOR_MEDIATYPE`` (None: unset)."""
    if media_type is None:
        return (
            f"{MISSING_PAYLOAD} ({MEDIA_TYPE_ENV} is not set, so containerd did not start ctd-decoder: it is "
            "a stream processor that containerd runs once per encrypted layer, with the decryption payload on fd 3)"
        )
    if media_type.endswith("+zstd+encrypted"):
        return (
            f"{MISSING_PAYLOAD} (containerd started ctd-decoder for a layer of type {media_type} without a decryption "
            f"payload on fd 3: containerd sends the payload only to the stream processors with ID "
            f"{' and '.join(PAYLOAD_PROCESSOR_IDS)}, so the processor entry that accepts +zstd+encrypted must "
            f"use the ID {PAYLOAD_PROCESSOR_IDS[0]} (returning application/vnd.oci.image.layer.v1.tar+zstd), "
            f"not ...decoder.v1.tar.zstd; if it already does, the other causes: "
            f"{'; '.join((_CTR_CAUSE, *_CRI_CAUSES))})"
        )
    processor_id_cause = _PROCESSOR_ID_CAUSE if media_type else f"{_PROCESSOR_ID_CAUSE}, for example a .tar.zstd entry"
    causes = (_CTR_CAUSE, *_CRI_CAUSES, processor_id_cause)
    layer = f"a layer of type {media_type}" if media_type else "a layer"
    return (
        f"{MISSING_PAYLOAD} (containerd started ctd-decoder for {layer} without a decryption payload on fd 3; "
        f"known causes: {'; '.join(causes)})"
    )


class Payload:
    """What containerd hands the decoder: the decrypt config and the layer descriptor."""

    __slots__ = ("decrypt_config", "descriptor")

    def __init__(self, decrypt_config: DecryptConfig, descriptor: Descriptor) -> None:
        self.decrypt_config = decrypt_config
        self.descriptor = descriptor


def read_payload_bytes(fd: int = PAYLOAD_FD, limit: int = MAX_PAYLOAD_SIZE) -> bytes:
    """Read ``fd`` to end of file, refusing more than ``limit`` bytes."""
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError as err:
            if err.errno == errno.EBADF:
                raise MissingPayloadError(explain_missing_payload(os.environ.get(MEDIA_TYPE_ENV))) from None
            raise PayloadError(f"read payload: read configFd: {err.strerror}") from None
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise PayloadError(f"read payload: the payload on fd {fd} is larger than {limit} bytes")
        chunks.append(chunk)


def parse_payload(data: bytes) -> Payload:
    """Decode the protobuf ``Any`` and the Go JSON inside it."""
    try:
        type_url, value = read_any(data)
    except WireError as err:
        raise PayloadError(f"could not proto.Unmarshal() decrypt data: {err}") from None
    if type_url != PAYLOAD_TYPE_URL:
        raise PayloadError(
            f"could not UnmarshalAny() the decrypt data: type with url {type_url}: not found "
            f"(expected {PAYLOAD_TYPE_URL})"
        )
    try:
        document = unmarshal(value, PAYLOAD_TYPE)
    except ValueError as err:
        raise PayloadError(f"could not UnmarshalAny() the decrypt data: {err}") from None
    descriptor = document["Descriptor"]
    parameters: Parameters = {
        name: [] if items is None else list(items)
        for name, items in (document["DecryptConfig"]["Parameters"] or {}).items()
    }
    return Payload(
        DecryptConfig(parameters),
        Descriptor(
            descriptor["mediaType"], descriptor["digest"], descriptor["size"], dict(descriptor["annotations"] or {})
        ),
    )


def encode_payload(payload: Payload) -> bytes:
    """Serialize a payload exactly as containerd does (for tests and tooling)."""
    parameters: dict[str, list[str | None]] | None = None
    if payload.decrypt_config.parameters:
        parameters = {
            name: [None if v is None else b64encode(v) for v in values]
            for name, values in payload.decrypt_config.parameters.items()
        }
    descriptor: dict[str, Any] = {
        "mediaType": payload.descriptor.media_type,
        "digest": payload.descriptor.digest,
        "size": payload.descriptor.size,
    }
    if payload.descriptor.annotations:
        descriptor["annotations"] = payload.descriptor.annotations
    value = {"DecryptConfig": {"Parameters": parameters}, "Descriptor": descriptor}
    return write_any(PAYLOAD_TYPE_URL, json.dumps(value, separators=(",", ":")).encode())
