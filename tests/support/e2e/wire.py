"""A tiny protobuf wire-format encoder/decoder for the few containerd and CRI messages the tests send.

Written from the protobuf encoding rules (varints, length-delimited fields) and the public field
numbers of the messages involved; no generated code, so no protoc/runtime version coupling.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

VARINT = 0
I64 = 1
LEN = 2
I32 = 5


def varint(value: int) -> bytes:
    """Encode a non-negative integer as a base-128 varint."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(number: int, data: bytes) -> bytes:
    """A length-delimited field (string, bytes or embedded message)."""
    return varint(number << 3 | LEN) + varint(len(data)) + data


def field_str(number: int, text: str) -> bytes:
    """A string field; empty strings are omitted as proto3 does."""
    return field_bytes(number, text.encode()) if text else b""


def field_int(number: int, value: int) -> bytes:
    """A varint field; zero is omitted as proto3 does."""
    return varint(number << 3 | VARINT) + varint(value) if value else b""


def map_entries(number: int, entries: dict[str, bytes]) -> bytes:
    """A ``map<string, T>`` field (T a string or a message): one {key = 1, value = 2} entry each."""
    out = b""
    for key, value in entries.items():
        out += field_bytes(number, field_str(1, key) + field_bytes(2, value))
    return out


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; return (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def iter_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for every field of a message."""
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == VARINT:
            value, pos = read_varint(data, pos)
        elif wire_type == LEN:
            length, pos = read_varint(data, pos)
            value = data[pos : pos + length]
            if len(value) != length:
                raise ValueError("truncated field")
            pos += length
        elif wire_type == I64:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire_type == I32:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        yield number, wire_type, value


def fields(data: bytes) -> dict[int, list[int | bytes]]:
    """Group a message's fields by number (repeated fields keep their order)."""
    grouped: dict[int, list[int | bytes]] = {}
    for number, _, value in iter_fields(data):
        grouped.setdefault(number, []).append(value)
    return grouped


def get_bytes(data: bytes, number: int) -> bytes:
    """The last value of a length-delimited field, or b''."""
    values = fields(data).get(number, [])
    value = values[-1] if values else b""
    assert isinstance(value, bytes)
    return value


def get_str(data: bytes, number: int) -> str:
    return get_bytes(data, number).decode()


def get_int(data: bytes, number: int) -> int:
    values = fields(data).get(number, [])
    value = values[-1] if values else 0
    assert isinstance(value, int)
    return value


def get_repeated(data: bytes, number: int) -> list[bytes]:
    return [v for v in fields(data).get(number, []) if isinstance(v, bytes)]


def get_str_map(data: bytes, number: int) -> dict[str, str]:
    """Decode a ``map<string, string>`` field."""
    return {get_str(entry, 1): get_str(entry, 2) for entry in get_repeated(data, number)}


# --- containerd.types ------------------------------------------------------------------------------


def descriptor(media_type: str, digest: str, size: int, annotations: dict[str, str] | None = None) -> bytes:
    """containerd.types.Descriptor{media_type = 1, digest = 2, size = 3, annotations = 5}."""
    encoded_annotations = {k: v.encode() for k, v in (annotations or {}).items()}
    return field_str(1, media_type) + field_str(2, digest) + field_int(3, size) + map_entries(5, encoded_annotations)


def parse_descriptor(data: bytes) -> dict[str, object]:
    return {"mediaType": get_str(data, 1), "digest": get_str(data, 2), "size": get_int(data, 3)}


def parse_mount(data: bytes) -> dict[str, object]:
    """containerd.types.Mount{type = 1, source = 2, options = 4}."""
    return {
        "type": get_str(data, 1),
        "source": get_str(data, 2),
        "options": [v.decode() for v in get_repeated(data, 4)],
    }


# --- requests ---------------------------------------------------------------------------------------


def pull_image_request(image: str) -> bytes:
    """runtime.v1.PullImageRequest{image = 1: ImageSpec{image = 1}}."""
    return field_bytes(1, field_str(1, image))


def snapshot_request(snapshotter: str, key: str, parent: str = "") -> bytes:
    """Prepare/View request {snapshotter = 1, key = 2, parent = 3}; Stat/Remove use the first two."""
    return field_str(1, snapshotter) + field_str(2, key) + field_str(3, parent)


def commit_request(snapshotter: str, name: str, key: str) -> bytes:
    """CommitSnapshotRequest{snapshotter = 1, name = 2, key = 3}."""
    return field_str(1, snapshotter) + field_str(2, name) + field_str(3, key)


def apply_request(diff: bytes, mounts: Iterable[bytes], payloads: dict[str, bytes]) -> bytes:
    """diff.v1.ApplyRequest{diff = 1, mounts = 2, payloads = 3 (map<string, google.protobuf.Any>)}.

    ``payloads`` values are serialized ``Any`` messages, forwarded by containerd byte for byte.
    """
    return field_bytes(1, diff) + b"".join(field_bytes(2, m) for m in mounts) + map_entries(3, payloads)


WRITE_ACTION_COMMIT = 2


def write_content_request(ref: str, data: bytes, digest: str) -> bytes:
    """content.v1.WriteContentRequest{action = 1, ref = 2, total = 3, expected = 4, offset = 5, data = 6}:
    one COMMIT message carrying the whole blob (fine for the small test blobs)."""
    return (
        field_int(1, WRITE_ACTION_COMMIT)
        + field_str(2, ref)
        + field_int(3, len(data))
        + field_str(4, digest)
        + field_bytes(6, data)
    )


def lease_create_request(lease_id: str) -> bytes:
    """leases.v1.CreateRequest{id = 1}."""
    return field_str(1, lease_id)


def update_content_labels_request(digest: str, labels: dict[str, str]) -> bytes:
    """content.v1.UpdateContentRequest{info = 1: Info{digest = 1, labels = 5}, update_mask = 2: FieldMask{paths = 1}}:
    sets (only) the named labels."""
    info = field_str(1, digest) + map_entries(5, {k: v.encode() for k, v in labels.items()})
    mask = b"".join(field_str(1, f"labels.{name}") for name in labels)
    return field_bytes(1, info) + field_bytes(2, mask)


def create_image_request(name: str, target: bytes) -> bytes:
    """images.v1.CreateImageRequest{image = 1: Image{name = 1, target = 3 (containerd.types.Descriptor)}}."""
    return field_bytes(1, field_str(1, name) + field_bytes(3, target))


def content_request(digest: str) -> bytes:
    """content.v1 InfoRequest / ReadContentRequest{digest = 1}."""
    return field_str(1, digest)


def image_get_request(name: str) -> bytes:
    """images.v1.GetImageRequest{name = 1}."""
    return field_str(1, name)
