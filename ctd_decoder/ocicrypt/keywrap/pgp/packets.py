"""OpenPGP packet framing (RFC 4880 / RFC 9580): packet headers, ASCII armor, key rings, messages.

No cryptography here: only enough structure to recognise a key ring, to check a message's shape
before gpg runs and to tell an operator that a secret key needs its passphrase. Every key-directory
file is classified with it, so it imports nothing costly at the top (``re`` only for armor).
"""

from __future__ import annotations

import base64
import binascii

PKESK_TAG, SKESK_TAG = 1, 3  # public-key and symmetric-key encrypted session key packets
SECRET_KEY_TAG = 5
PUBLIC_KEY_TAG = 6
SECRET_SUBKEY_TAG = 7
SED_TAG, SEIPD_TAG, AEAD_TAG = 9, 18, 20  # encrypted data, integrity-protected, AEAD-protected
ENCRYPTED_DATA_TAGS = {SED_TAG, SEIPD_TAG, AEAD_TAG}
_ARMOR = rb"-----BEGIN PGP [A-Z ]+-----\r?\n(.*?)-----END PGP [A-Z ]+-----"
# Public-key algorithms (RFC 9580 9.1) and the number of MPIs in their v4 public key material.
_MPI_COUNTS = {1: 2, 2: 2, 3: 2, 16: 3, 17: 4}
_ECDH, _ECDSA, _EDDSA_LEGACY = 18, 19, 22
_S2K_GNU_EXTENSION = 101  # gpg's stubs: mode 1 = no secret part (primary of --export-secret-subkeys), 2 = on a card


class PacketError(ValueError):
    """The bytes are not the OpenPGP packets that were expected."""


def packet_header(data: bytes, offset: int) -> tuple[int, int, int | None]:
    """Return (tag, body offset, body length) of the packet at ``offset``; None length = to the end/partial."""
    if offset >= len(data) or not data[offset] & 0x80:
        raise PacketError(f"no OpenPGP packet header at byte {offset}")
    first = data[offset]
    if first & 0x40:
        return _new_format_header(data, offset, first & 0x3F)
    tag, length_type = (first >> 2) & 0x0F, first & 0x03
    if length_type == 3:
        return tag, offset + 1, None
    size = (1, 2, 4)[length_type]
    if offset + 1 + size > len(data):
        raise PacketError("truncated packet length")
    return tag, offset + 1 + size, int.from_bytes(data[offset + 1 : offset + 1 + size], "big")


def _new_format_header(data: bytes, offset: int, tag: int) -> tuple[int, int, int | None]:
    if offset + 2 > len(data):
        raise PacketError("truncated packet length")
    octet = data[offset + 1]
    if octet < 192:
        return tag, offset + 2, octet
    if octet < 224:
        if offset + 3 > len(data):
            raise PacketError("truncated packet length")
        return tag, offset + 3, ((octet - 192) << 8) + data[offset + 2] + 192
    if octet == 255:
        if offset + 6 > len(data):
            raise PacketError("truncated packet length")
        return tag, offset + 6, int.from_bytes(data[offset + 2 : offset + 6], "big")
    return tag, offset + 2, None  # partial body length: only data packets may use it


def dearmor(data: bytes) -> bytes:
    """Return the binary packets of ASCII-armored ``data`` (``data`` itself if it is not armored)."""
    import re  # here, not at the top: classifying a key file must not compile it

    match = re.search(_ARMOR, data, re.S)
    if match is None:
        return data
    lines = match.group(1).replace(b"\r", b"").split(b"\n")
    if b"" not in lines:
        raise PacketError("ASCII armor without the blank line after its headers")
    body = lines[lines.index(b"") + 1 :]
    try:
        return base64.b64decode(b"".join(line for line in body if not line.startswith(b"=")), validate=True)
    except (binascii.Error, ValueError):
        raise PacketError("ASCII armor body is not base64") from None


def _skip_mpis(body: bytes, offset: int, count: int) -> int:
    for _ in range(count):
        if offset + 2 > len(body):
            raise PacketError("truncated MPI")
        offset += 2 + (int.from_bytes(body[offset : offset + 2], "big") + 7) // 8
    return offset


def _s2k_usage_offset(body: bytes) -> int:
    """Return the offset of the S2K usage octet in a secret-key packet body."""
    if len(body) < 6:
        raise PacketError("truncated secret key packet")
    version, algorithm, offset = body[0], body[5], 6
    if version in (5, 6):  # a four-octet count of the public key material follows the algorithm
        if len(body) < 10:
            raise PacketError("truncated secret key packet")
        return 10 + int.from_bytes(body[6:10], "big")
    if version != 4:
        raise PacketError(f"secret key packet version {version} is not supported")
    if algorithm in _MPI_COUNTS:
        return _skip_mpis(body, offset, _MPI_COUNTS[algorithm])
    if algorithm in (_ECDH, _ECDSA, _EDDSA_LEGACY):
        if offset >= len(body):
            raise PacketError("truncated curve OID")
        offset = _skip_mpis(body, offset + 1 + body[offset], 1)
        if algorithm == _ECDH:  # KDF parameters: a length octet and that many octets
            if offset >= len(body):
                raise PacketError("truncated KDF parameters")
            offset += 1 + body[offset]
        return offset
    raise PacketError(f"public-key algorithm {algorithm} is not supported")


def _secret_is_protected(body: bytes) -> bool | None:
    """True if the packet's secret needs a passphrase, False if not, None if it holds no secret (a stub)."""
    offset = _s2k_usage_offset(body)
    if offset >= len(body):
        raise PacketError("truncated secret key packet")
    usage = body[offset]
    if usage == 0:
        return False
    if usage in (254, 255) and body[offset + 2 : offset + 3] == bytes([_S2K_GNU_EXTENSION]):
        return None
    return True


def secret_keys_need_passphrase(ring: bytes) -> bool:
    """Tell whether every secret key in ``ring`` (binary or armored) is passphrase-protected.

    False when any secret key or subkey is stored in the clear, or when ``ring`` cannot be read
    (then gpg itself has the last word).
    """
    try:
        data = dearmor(ring)
        found: list[bool] = []
        offset = 0
        while offset < len(data):
            tag, body, length = packet_header(data, offset)
            if length is None or body + length > len(data):
                raise PacketError("truncated packet")
            if tag in (SECRET_KEY_TAG, SECRET_SUBKEY_TAG):
                protected = _secret_is_protected(data[body : body + length])
                if protected is not None:
                    found.append(protected)
            offset = body + length
    except PacketError:
        return False
    return bool(found) and all(found)


def session_key_packets(message: bytes) -> tuple[list[int], int, int]:
    """Walk the session-key packets; return (recipient key IDs, data packet tag, data body offset).

    Raises :class:`PacketError` unless ``message`` is session-key packets followed by encrypted
    data, the only shape ocicrypt writes and reads.
    """
    recipients: list[int] = []
    offset = 0
    while True:
        tag, body, length = packet_header(message, offset)
        if tag in ENCRYPTED_DATA_TAGS:
            if body >= len(message):
                raise PacketError("the encrypted data packet is empty")
            return recipients, tag, body
        if tag not in (PKESK_TAG, SKESK_TAG):
            raise PacketError(f"unexpected OpenPGP packet (tag {tag}) before the encrypted data")
        if length is None or body + length > len(message):
            raise PacketError(f"truncated session key packet (tag {tag})")
        if tag == PKESK_TAG and length >= 10 and message[body] == 3:
            recipients.append(int.from_bytes(message[body + 1 : body + 9], "big"))
        offset = body + length


def message_recipients(message: bytes) -> list[int]:
    """Return the key IDs of the public-key recipients of an encrypted OpenPGP message."""
    recipients, _, _ = session_key_packets(message)
    if not recipients:
        raise PacketError("the message has no public-key recipients")
    return recipients


def _first_packet_tag(data: bytes) -> int | None:
    if not data or not data[0] & 0x80:
        return None
    if data[0] & 0x40:
        return data[0] & 0x3F
    return (data[0] >> 2) & 0x0F


def is_pgp_secret_keyring(data: bytes) -> bool:
    """Tell whether ``data`` starts an OpenPGP secret key ring, binary or ASCII-armored."""
    if data.lstrip().startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----"):
        return True
    return _first_packet_tag(data) == SECRET_KEY_TAG


def is_pgp_public_keyring(data: bytes) -> bool:
    """Tell whether ``data`` is an OpenPGP public key ring (useless for decryption)."""
    if data.lstrip().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"):
        return True
    return _first_packet_tag(data) == PUBLIC_KEY_TAG
