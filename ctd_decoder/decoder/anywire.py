"""The protobuf wire format of ``google.protobuf.Any``, read and written by hand.

An ``Any`` is two length-delimited fields: 1 ``type_url`` (a string) and 2 ``value`` (bytes). The
protobuf runtime costs more to import than a small layer costs to decrypt, so the decoder reads
those two fields itself, with Go's ``proto.Unmarshal`` rules: the last occurrence of a field wins,
unknown fields (and known fields of another wire type) are skipped, groups must be balanced, and every
occurrence of the string must be valid UTF-8.
"""

from __future__ import annotations

_TYPE_URL = 1
_VALUE = 2
_VARINT, _FIXED64, _BYTES, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5
_MAX_FIELD_NUMBER = (1 << 29) - 1
_MAX_GROUP_DEPTH = 100


class WireError(ValueError):
    """The bytes are not a valid protobuf message."""


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(offset, min(offset + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if index - offset == 9 and byte > 1:
                raise WireError("variable-length integer overflows 64 bits")
            return value, index + 1
        shift += 7
    if len(data) - offset >= 10:
        raise WireError("variable-length integer overflows 64 bits")
    raise WireError("unexpected end of data in a variable-length integer")


def _skip(data: bytes, offset: int, wire_type: int, field_number: int) -> int:
    """Return the offset after the value of an unknown field whose tag ended at ``offset``."""
    groups = [field_number] if wire_type == _START_GROUP else []
    while True:
        if wire_type == _VARINT:
            _, offset = _varint(data, offset)
        elif wire_type in (_FIXED64, _FIXED32):
            offset += 8 if wire_type == _FIXED64 else 4
        elif wire_type == _BYTES:
            length, offset = _varint(data, offset)
            offset += length
        elif wire_type == _END_GROUP:
            if not groups or groups.pop() != field_number:
                raise WireError("mismatched end of group")
        elif wire_type != _START_GROUP:
            raise WireError(f"invalid wire type {wire_type}")
        if offset > len(data):
            raise WireError("unexpected end of data in a field")
        if not groups:
            return offset
        field_number, wire_type, offset = _tag(data, offset)
        if wire_type == _START_GROUP:
            if len(groups) >= _MAX_GROUP_DEPTH:
                raise WireError("groups nested too deeply")
            groups.append(field_number)


def _tag(data: bytes, offset: int) -> tuple[int, int, int]:
    if offset >= len(data):
        raise WireError("unexpected end of data inside a group")
    tag, offset = _varint(data, offset)
    field_number, wire_type = tag >> 3, tag & 7
    if not 0 < field_number <= _MAX_FIELD_NUMBER:
        raise WireError(f"invalid field number {field_number}")
    return field_number, wire_type, offset


def read_any(data: bytes) -> tuple[str, bytes]:
    """Return the ``type_url`` and ``value`` of a serialized ``Any``; raise :class:`WireError`."""
    type_url = ""
    value = b""
    offset = 0
    while offset < len(data):
        field_number, wire_type, offset = _tag(data, offset)
        if field_number in (_TYPE_URL, _VALUE) and wire_type == _BYTES:
            length, offset = _varint(data, offset)
            end = offset + length
            if end > len(data):
                raise WireError("unexpected end of data in a length-delimited field")
            if field_number == _TYPE_URL:
                try:
                    type_url = data[offset:end].decode("utf-8")
                except UnicodeDecodeError:
                    raise WireError("field google.protobuf.Any.type_url contains invalid UTF-8") from None
            else:
                value = data[offset:end]
            offset = end
        else:
            offset = _skip(data, offset, wire_type, field_number)
    return type_url, value


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def write_any(type_url: str, value: bytes) -> bytes:
    """Serialize an ``Any`` as protobuf does (empty fields omitted)."""
    out = b""
    for field_number, content in ((_TYPE_URL, type_url.encode("utf-8")), (_VALUE, value)):
        if content:
            out += _encode_varint(field_number << 3 | _BYTES) + _encode_varint(len(content)) + content
    return out
