"""A small, bounded DER reader and writer for the PKCS#7 key wrapper.

The reader only understands what PKCS#7 EnvelopedData and X.509 certificates need: single-octet
tags, definite lengths, one nesting level per call (no recursion over untrusted input), at most
:data:`MAX_CHILDREN` elements per level and :data:`MAX_DEPTH` levels. Elements are offsets into the
one input buffer. Every malformed input raises :class:`DerError`; nothing else escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
_MAX_LENGTH_OCTETS = 4
MAX_CHILDREN = 1024
MAX_DEPTH = 16


class DerError(ValueError):
    """The bytes are not the DER structure that was expected."""


@dataclass(frozen=True)
class Element:
    """One tag-length-value element: offsets into the buffer it was read from, nothing copied.

    ``content`` and ``encoded`` copy their bytes only when asked for; a reader walking millions of
    tiny elements keeps one buffer and the elements it holds on to.
    """

    tag: int
    buffer: bytes
    start: int
    content_start: int
    end: int
    depth: int = 0

    @property
    def content(self) -> bytes:
        """The value octets."""
        return self.buffer[self.content_start : self.end]

    @property
    def encoded(self) -> bytes:
        """The whole element: tag, length and value."""
        return self.buffer[self.start : self.end]

    @property
    def constructed(self) -> bool:
        """Tell whether the constructed bit of the tag is set."""
        return bool(self.tag & 0x20)

    def children(self, limit: int = MAX_CHILDREN) -> list[Element]:
        """Parse the content as a sequence of at most ``limit`` elements (one level deeper)."""
        if self.depth >= MAX_DEPTH:
            raise DerError(f"elements nested more than {MAX_DEPTH} deep")
        return _parse_range(self.buffer, self.content_start, self.end, limit, self.depth + 1)


def _read(data: bytes, offset: int, end_of_container: int, depth: int) -> Element:
    """Read the element starting at ``offset``, which must end by ``end_of_container``."""
    if offset + 2 > end_of_container:
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
        if position + count > end_of_container:
            raise DerError("truncated length")
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    end = position + length
    if end > end_of_container:
        raise DerError(f"element of {length} bytes runs past the end of its container")
    return Element(tag, data, offset, position, end, depth)


def _parse_range(data: bytes, offset: int, end: int, limit: int, depth: int) -> list[Element]:
    elements: list[Element] = []
    while offset < end:
        if len(elements) >= limit:
            raise DerError(f"more than {limit} elements in one structure")
        element = _read(data, offset, end, depth)
        elements.append(element)
        offset = element.end
    return elements


def parse_all(data: bytes, limit: int = MAX_CHILDREN) -> list[Element]:
    """Parse ``data`` as at most ``limit`` consecutive elements that fill it exactly."""
    return _parse_range(data, 0, len(data), limit, 0)


def parse_one(data: bytes) -> Element:
    """Parse ``data`` as exactly one element, with no trailing bytes."""
    element = _read(data, 0, len(data), 0)
    if element.end != len(data):
        raise DerError(f"{len(data) - element.end} bytes of trailing data")
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
