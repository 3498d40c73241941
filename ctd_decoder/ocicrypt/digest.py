"""Optional check of the plaintext digest that the private options carry.

ocicrypt stores ``sha256:<hex>`` of the original layer blob next to the layer key; the Go decoder
never checks it. With ``CTD_DECODER_VERIFY_DIGEST=1`` the decoder hashes what it decrypts and, like
the HMAC, withholds the final chunk unless the digest matches.
"""

from __future__ import annotations

import hashlib
import hmac

from .blockcipher import LayerDecryptor
from .errors import IntegrityError, LayerError

_ALGORITHMS = {"sha256", "sha384", "sha512"}


class DigestVerifyingDecryptor:
    """Wraps a decryptor and also checks the decrypted bytes against an OCI digest."""

    def __init__(self, inner: LayerDecryptor, digest: str) -> None:
        algorithm, _, expected = digest.partition(":")
        if algorithm not in _ALGORITHMS or not expected:
            raise LayerError(f"cannot verify the plaintext digest {digest!r}: unsupported or missing algorithm")
        self._inner = inner
        self._digest = digest
        self._hash = hashlib.new(algorithm)
        self._expected = expected

    def authenticate(self, ciphertext: memoryview) -> None:
        """Delegate to the wrapped decryptor."""
        self._inner.authenticate(ciphertext)

    def decrypt_into(self, ciphertext: memoryview, out: bytearray) -> int:
        """Decrypt, then hash the plaintext just written."""
        count = self._inner.decrypt_into(ciphertext, out)
        self._hash.update(memoryview(out)[:count])
        return count

    def verify(self) -> None:
        """Verify the wrapped decryptor's tag, then the plaintext digest."""
        self._inner.verify()
        actual = self._hash.hexdigest()
        if not hmac.compare_digest(actual, self._expected):
            raise IntegrityError(
                f"the decrypted layer's digest {self._hash.name}:{actual} differs from {self._digest} "
                "recorded when it was encrypted"
            )
