"""A small, bounded DER reader and writer for the PKCS#7 key wrapper.

The reader only understands what PKCS#7 EnvelopedData and X.509 certificates need: single-octet
tags, definite lengths, one nesting level per call (no recursion over untrusted input). Every
malformed input raises :class:`DerError`; nothing else escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
_MAX_LENGTH_OCTETS = 4


class DerError(ValueError):
    """The bytes are not the DER structure that was expected."""


@dataclass(frozen=True)
class Element:
    """One tag-length-value element."""

    tag: int
    content: bytes
    encoded: bytes

    @property
    def constructed(self) -> bool:
        """Tell whether the constructed bit of the tag is set."""
        return bool(self.tag & 0x20)

    def children(self) -> list[Element]:
        """Parse the content as a sequence of elements (one level)."""
        return parse_all(self.content)


def _read(data: bytes, offset: int) -> tuple[Element, int]:
    """Read the element starting at ``offset``; return it and the offset after it."""
    if offset + 2 > len(data):
        raise DerError("truncated element header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError(f"multi-octet tag 0x{tag:02x} is not supported")
    first = data[offset + 1]
    position = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError("indefinite length is not allowed")
    else:
        count = first & 0x7F
        if count > _MAX_LENGTH_OCTETS:
            raise DerError(f"length of {count} octets is too long")
        if position + count > len(data):
            raise DerError("truncated length")
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    end = position + length
    if end > len(data):
        raise DerError(f"element of {length} bytes runs past the end of its container")
    return Element(tag, data[position:end], data[offset:end]), end


def parse_all(data: bytes) -> list[Element]:
    """Parse ``data`` as consecutive elements that fill it exactly."""
    elements = []
    offset = 0
    while offset < len(data):
        element, offset = _read(data, offset)
        elements.append(element)
    return elements


def parse_one(data: bytes) -> Element:
    """Parse ``data`` as exactly one element, with no trailing bytes."""
    element, end = _read(data, 0)
    if end != len(data):
        raise DerError(f"{len(data) - end} bytes of trailing data")
    return element


def expect(element: Element, tag: int, what: str) -> Element:
    """Return ``element`` if it has ``tag``; raise naming ``what`` otherwise."""
    if element.tag != tag:
        raise DerError(f"{what}: expected tag 0x{tag:02x}, found 0x{element.tag:02x}")
    return element


def decode_integer(element: Element, what: str) -> int:
    """Decode an INTEGER element (two's complement, big-endian)."""
    expect(element, INTEGER, what)
    if not element.content:
        raise DerError(f"{what}: empty INTEGER")
    return int.from_bytes(element.content, "big", signed=True)


def decode_oid(element: Element, what: str) -> str:
    """Decode an OBJECT IDENTIFIER element to dotted form."""
    content = expect(element, OID, what).content
    if not content or content[-1] & 0x80:
        raise DerError(f"{what}: malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for octet in content:
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])


def encode(tag: int, content: bytes) -> bytes:
    """Encode one element with a minimal definite length."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def sequence(*items: bytes) -> bytes:
    """Encode a SEQUENCE of already-encoded items."""
    return encode(SEQUENCE, b"".join(items))


def set_of(*items: bytes) -> bytes:
    """Encode a SET OF already-encoded items, sorted as DER requires."""
    return encode(SET, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    """Encode an INTEGER in minimal two's complement."""
    magnitude = ~value if value < 0 else value
    size = magnitude.bit_length() // 8 + 1
    return encode(INTEGER, value.to_bytes(size, "big", signed=True))


def oid(dotted: str) -> bytes:
    """Encode an OBJECT IDENTIFIER given in dotted form."""
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return encode(OID, bytes(body))
