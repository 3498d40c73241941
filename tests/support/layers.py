"""Encrypted layers made by our own library, with the payload that decrypts them."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.layer import encrypt_layer

from .keygen import new_key, private_pem, public_pem

GZIP_ENCRYPTED = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"


@dataclass
class EncryptedLayer:
    """A layer encrypted to one JWE key, and the payload carrying that key."""

    plaintext: bytes
    blob: bytes
    descriptor: Descriptor
    private_key_pem: bytes

    def payload(self, dc: DecryptConfig | None = None, descriptor: Descriptor | None = None) -> bytes:
        """The fd-3 bytes; by default carrying the right key."""
        if dc is None:
            dc = DecryptConfig({params.PRIVKEYS: [self.private_key_pem], params.PRIVKEYS_PASSWORDS: [None]})
        return encode_payload(Payload(dc, descriptor or self.descriptor))


def jwe_layer(plaintext: bytes, kind: str = "rsa2048", media_type: str = GZIP_ENCRYPTED) -> EncryptedLayer:
    """Encrypt ``plaintext`` to a fresh key of ``kind``."""
    key = new_key(kind)
    return encrypted_layer(EncryptConfig({params.PUBKEYS: [public_pem(key)]}), plaintext, private_pem(key), media_type)


def encrypted_layer(
    ec: EncryptConfig, plaintext: bytes, private_key_pem: bytes = b"", media_type: str = GZIP_ENCRYPTED
) -> EncryptedLayer:
    """Encrypt ``plaintext`` for the recipients in ``ec``; ``private_key_pem`` is what the default payload carries."""
    out = io.BytesIO()
    annotations = encrypt_layer(ec, io.BytesIO(plaintext), out)
    blob = out.getvalue()
    descriptor = Descriptor(media_type, "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob), annotations)
    return EncryptedLayer(plaintext, blob, descriptor, private_key_pem)
