"""AES_256_CTR_HMAC_SHA256: AES-256-CTR, then HMAC-SHA256 over the whole ciphertext.

The same 32-byte ``symkey`` keys both AES and HMAC (ocicrypt does not split it). The 16-byte
``nonce`` option is the complete initial counter block. The tag covers the ciphertext only.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import IntegrityError, LayerError
from .options import PrivateOptions, PublicOptions

NAME = "AES_256_CTR_HMAC_SHA256"
KEY_SIZE = 32
NONCE_SIZE = 16


def _ctr(symkey: bytes, nonce: bytes) -> Cipher[modes.CTR]:
    return Cipher(algorithms.AES(symkey), modes.CTR(nonce))


def _hmac(symkey: bytes) -> hmac.HMAC:
    return hmac.HMAC(symkey, hashes.SHA256())


class AesCtrHmacDecryptor:
    """Decrypts with AES-256-CTR and authenticates with HMAC-SHA256 (both release the GIL)."""

    def __init__(self, symkey: bytes, nonce: bytes, expected_tag: bytes) -> None:
        self._ctr = _ctr(symkey, nonce).decryptor()
        self._mac = _hmac(symkey)
        self._expected = expected_tag

    def authenticate(self, ciphertext: memoryview) -> None:
        """Feed ciphertext to the HMAC."""
        self._mac.update(ciphertext)

    def decrypt_into(self, ciphertext: memoryview, out: bytearray) -> int:
        """Decrypt with AES-CTR into ``out``."""
        return self._ctr.update_into(ciphertext, out)

    def verify(self) -> None:
        """Compare the HMAC with the expected one in constant time."""
        try:
            self._mac.copy().verify(self._expected)
        except InvalidSignature:
            actual = self._mac.finalize()
            raise IntegrityError(
                "could not properly decrypt byte stream; "
                f"exp hmac: '{self._expected.hex()}', actual hmac: '{actual.hex()}' "
                "(the layer was modified, truncated or extended, or the annotations belong to another blob)"
            ) from None


class AesCtrHmacEncryptor:
    """Encrypts with AES-256-CTR and computes the HMAC-SHA256 tag of the ciphertext."""

    def __init__(self, private: PrivateOptions) -> None:
        self._ctr = _ctr(private.symkey, private.cipher_options["nonce"]).encryptor()
        self._mac = _hmac(private.symkey)

    def update(self, plaintext: bytes) -> bytes:
        """Encrypt a chunk and feed the ciphertext to the HMAC."""
        ciphertext = self._ctr.update(plaintext)
        self._mac.update(ciphertext)
        return ciphertext

    def finalize(self) -> PublicOptions:
        """Return the public options with the HMAC tag."""
        return PublicOptions(NAME, self._mac.finalize(), {})


class AesCtrHmac:
    """The ``AES_256_CTR_HMAC_SHA256`` layer cipher."""

    name = NAME

    def new_private_options(self, digest: str) -> PrivateOptions:
        """Draw a fresh key and nonce."""
        return PrivateOptions(os.urandom(KEY_SIZE), digest, {"nonce": os.urandom(NONCE_SIZE)})

    def decryptor(self, public: PublicOptions, private: PrivateOptions) -> AesCtrHmacDecryptor:
        """Check the options and return a decryptor."""
        if len(private.symkey) != KEY_SIZE:
            raise LayerError(f"invalid key length of {len(private.symkey)} bytes; need {KEY_SIZE} bytes")
        public_nonce, private_nonce = public.cipher_options.get("nonce"), private.cipher_options.get("nonce")
        if public_nonce is not None and private_nonce is not None and public_nonce != private_nonce:
            # The public options are not authenticated, and the HMAC covers only the ciphertext: with
            # another nonce the layer would decrypt to garbage that verifies (Go takes the public one).
            raise LayerError("the public options' nonce differs from the one wrapped with the key: altered annotations")
        nonce = public.option("nonce", private)
        if nonce is None:
            raise LayerError("the layer's cipher options carry no nonce")
        if len(nonce) != NONCE_SIZE:
            raise LayerError(f"invalid nonce length of {len(nonce)} bytes; need {NONCE_SIZE} bytes")
        if not public.hmac:
            raise LayerError("HMAC is not provided for decryption process")
        if len(public.hmac) != 32:
            raise LayerError(f"invalid HMAC length of {len(public.hmac)} bytes in the public options; need 32")
        return AesCtrHmacDecryptor(private.symkey, nonce, public.hmac)

    def encryptor(self, private: PrivateOptions) -> AesCtrHmacEncryptor:
        """Return an encryptor for fresh private options."""
        return AesCtrHmacEncryptor(private)
