"""The hand-written ``Any`` reader agrees with the protobuf runtime on every input."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from ctd_decoder.decoder.anywire import WireError, read_any, write_any


def _reference(data: bytes) -> tuple[str, bytes] | None:
    envelope = any_pb2.Any()
    try:
        envelope.ParseFromString(data)
    except DecodeError:
        return None
    return envelope.type_url, envelope.value


def _ours(data: bytes) -> tuple[str, bytes] | None:
    try:
        return read_any(data)
    except WireError:
        return None


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, wire_type: int, body: bytes) -> bytes:
    return _varint(number << 3 | wire_type) + body


_fields = st.one_of(
    st.builds(lambda n, b: _field(n, 2, _varint(len(b)) + b), st.integers(1, 5), st.binary(max_size=20)),
    st.builds(lambda n, v: _field(n, 0, _varint(v)), st.integers(1, 5), st.integers(0, 2**64 - 1)),
    st.builds(lambda n, b: _field(n, 1, b), st.integers(1, 5), st.binary(min_size=8, max_size=8)),
    st.builds(lambda n, b: _field(n, 5, b), st.integers(1, 5), st.binary(min_size=4, max_size=4)),
    st.builds(lambda n: _field(n, 3, b"") + _field(n, 4, b""), st.integers(1, 5)),
    st.binary(max_size=4),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_fields, max_size=6))
def test_reader_matches_protobuf_on_mixed_fields(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert _ours(data) == _reference(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40))
def test_reader_matches_protobuf_on_random_bytes(data: bytes) -> None:
    assert _ours(data) == _reference(data)


@given(st.text(max_size=40), st.binary(max_size=100))
def test_writer_matches_protobuf(type_url: str, value: bytes) -> None:
    assert write_any(type_url, value) == any_pb2.Any(type_url=type_url, value=value).SerializeToString()
    assert read_any(write_any(type_url, value)) == (type_url, value)


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\xff\xff\x01garbage",  # length beyond the end
        b"\x0a\x02\xff\xfe",  # type_url not UTF-8
        b"\x00\x00",  # field number 0
        b"\x0b\x0a\x00",  # group never closed
        b"\x0c",  # end of a group never opened
        b"\x08" + b"\xff" * 10 + b"\x01",  # varint longer than 64 bits
        b"\x0f",  # wire type 7
    ],
)
def test_malformed_any_is_refused_like_protobuf(data: bytes) -> None:
    assert _reference(data) is None
    with pytest.raises(WireError):
        read_any(data)
