"""The fd-3 payload: a protobuf ``Any`` whose value is imgcrypt's Payload as Go JSON.

Go decodes the JSON with ``encoding/json``: member names match case-insensitively, unknown members
are ignored, ``[]byte`` values are standard base64 with padding (CR and LF inside are ignored) and
``null`` is allowed for every list and list item.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from typing import Any

from ..ocicrypt.config import DecryptConfig, Parameters
from ..ocicrypt.descriptor import Descriptor
from ..ocicrypt.errors import PayloadError
from ..ocicrypt.gojson import b64decode, b64encode, member

PAYLOAD_TYPE_URL = "io.containerd.ocicrypt.v1.Payload"
PAYLOAD_FD = 3
MAX_PAYLOAD_SIZE = 16 * 1024 * 1024

MISSING_PAYLOAD_HELP = (
    "read payload: read configFd: bad file descriptor (containerd started ctd-decoder without a "
    "decryption payload on fd 3; known causes: the stream processor ID is not "
    "io.containerd.ocicrypt.decoder.v1.tar or io.containerd.ocicrypt.decoder.v1.tar.gzip, for example a "
    '...decoder.v1.tar.zstd entry; the CRI image_decryption key_model is not "node"; or containerd 2.x '
    "pulled through the transfer service, which needs use_local_image_pull = true)"
)


@dataclass
class Payload:
    """What containerd hands the decoder: the decrypt config and the layer descriptor."""

    decrypt_config: DecryptConfig
    descriptor: Descriptor


def read_payload_bytes(fd: int = PAYLOAD_FD, limit: int = MAX_PAYLOAD_SIZE) -> bytes:
    """Read ``fd`` to end of file, refusing more than ``limit`` bytes."""
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError as err:
            if err.errno == errno.EBADF:
                raise PayloadError(MISSING_PAYLOAD_HELP) from None
            raise PayloadError(f"read payload: read configFd: {err.strerror}") from None
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise PayloadError(f"read payload: the payload on fd {fd} is larger than {limit} bytes")
        chunks.append(chunk)


def parse_payload(data: bytes) -> Payload:
    """Decode the protobuf ``Any`` and the Go JSON inside it."""
    from google.protobuf import any_pb2
    from google.protobuf.message import DecodeError

    envelope = any_pb2.Any()
    try:
        envelope.ParseFromString(data)
    except DecodeError as err:
        raise PayloadError(f"could not proto.Unmarshal() decrypt data: {err or 'invalid protobuf'}") from None
    if envelope.type_url != PAYLOAD_TYPE_URL:
        raise PayloadError(
            f"could not UnmarshalAny() the decrypt data: type with url {envelope.type_url}: not found "
            f"(expected {PAYLOAD_TYPE_URL})"
        )
    try:
        document = json.loads(envelope.value)
    except (ValueError, UnicodeDecodeError) as err:
        raise PayloadError(f"could not UnmarshalAny() the decrypt data: invalid JSON: {err}") from None
    except RecursionError:
        raise PayloadError("could not UnmarshalAny() the decrypt data: invalid JSON: nested too deeply") from None
    try:
        return _payload_from_json(document)
    except (TypeError, ValueError) as err:
        raise PayloadError(f"could not UnmarshalAny() the decrypt data: {err}") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{what} is not a JSON object")
    return value


def _parameters(value: Any) -> Parameters:
    parameters: Parameters = {}
    for name, items in _object(value, "DecryptConfig.Parameters").items():
        if items is None:
            parameters[name] = []
            continue
        if not isinstance(items, list):
            raise TypeError(f"DecryptConfig.Parameters[{name!r}] is not a JSON array")
        decoded: list[bytes | None] = []
        for item in items:
            if item is None:
                decoded.append(None)
            elif isinstance(item, str):
                decoded.append(b64decode(item, f"an entry of DecryptConfig.Parameters[{name!r}]"))
            else:
                raise TypeError(f"an entry of DecryptConfig.Parameters[{name!r}] is not a string")
        parameters[name] = decoded
    return parameters


def _descriptor(value: Any) -> Descriptor:
    obj = _object(value, "Descriptor")
    media_type = member(obj, "mediaType") or ""
    digest = member(obj, "digest") or ""
    size = member(obj, "size") or 0
    annotations = _object(member(obj, "annotations"), "Descriptor.annotations")
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise TypeError("Descriptor.mediaType and Descriptor.digest must be strings")
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError("Descriptor.size is not an integer")
    if not all(isinstance(v, str) for v in annotations.values()):
        raise TypeError("Descriptor.annotations values must be strings")
    return Descriptor(media_type, digest, size, dict(annotations))


def _payload_from_json(document: Any) -> Payload:
    obj = _object(document, "the payload")
    decrypt_config = _object(member(obj, "DecryptConfig"), "DecryptConfig")
    parameters = _parameters(member(decrypt_config, "Parameters"))
    return Payload(DecryptConfig(parameters), _descriptor(member(obj, "Descriptor")))


def encode_payload(payload: Payload) -> bytes:
    """Serialize a payload exactly as containerd does (for tests and tooling)."""
    from google.protobuf import any_pb2

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
    envelope = any_pb2.Any(type_url=PAYLOAD_TYPE_URL, value=json.dumps(value, separators=(",", ":")).encode())
    serialized: bytes = envelope.SerializeToString()
    return serialized
