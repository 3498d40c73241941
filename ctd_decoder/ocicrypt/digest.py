"""Optional check of the plaintext digest that the private options carry.

ocicrypt stores the digest of the layer descriptor its caller encrypted, next to the layer key; the Go
decoder never checks it. With ``CTD_DECODER_VERIFY_DIGEST=1`` the decoder hashes what it decrypts and,
like the HMAC, withholds the final chunk unless the digest matches.

What that digest covers depends on the encrypting tool. ctr-enc and our tools record the digest of the
blob as stored (the decrypted stream). skopeo, when it gzips an uncompressed layer while encrypting it,
records the digest of the layer *before* compression, i.e. of the uncompressed tar (the image's
``diff_id``). So a gzip layer also passes when its decompressed content matches the recorded digest.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib

from .blockcipher import LayerDecryptor
from .errors import IntegrityError, LayerError

_ALGORITHMS = {"sha256", "sha384", "sha512"}
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_INFLATE_STEP = 1 << 20  # bounds the memory one call of the inflater may use for its output


class _UncompressedDigest:
    """Hashes the decompressed content of a gzip stream (all members) as it arrives."""

    def __init__(self, algorithm: str) -> None:
        self._hash = hashlib.new(algorithm)
        self._inflater: zlib._Decompress | None = zlib.decompressobj(_GZIP_WBITS)
        self._complete = False
        self._broken = False

    def update(self, data: bytes | memoryview) -> None:
        """Feed the next bytes of the gzip stream; bytes that are not gzip end the computation."""
        while data and not self._broken:
            if self._inflater is None:
                self._inflater, self._complete = zlib.decompressobj(_GZIP_WBITS), False
            try:
                out = self._inflater.decompress(data, _INFLATE_STEP)
                while self._inflater.unconsumed_tail or len(out) == _INFLATE_STEP:
                    self._hash.update(out)
                    out = self._inflater.decompress(self._inflater.unconsumed_tail, _INFLATE_STEP)
            except zlib.error:
                self._broken = True
                return
            self._hash.update(out)
            data = b""
            if self._inflater.eof:
                data, self._inflater, self._complete = self._inflater.unused_data, None, True

    def hexdigest(self) -> str | None:
        """Return the digest of the content, or None unless the stream was complete, valid gzip."""
        return self._hash.hexdigest() if self._complete and not self._broken else None


class DigestVerifyingDecryptor:
    """Wraps a decryptor and also checks the decrypted bytes against an OCI digest."""

    def __init__(self, inner: LayerDecryptor, digest: str, media_type: str = "") -> None:
        """Check against ``digest``; a gzip ``media_type`` also accepts the digest of the decompressed content."""
        algorithm, _, expected = digest.partition(":")
        if algorithm not in _ALGORITHMS or not expected:
            raise LayerError(f"cannot verify the plaintext digest {digest!r}: unsupported or missing algorithm")
        self._inner = inner
        self._digest = digest
        self._hash = hashlib.new(algorithm)
        self._expected = expected
        self._uncompressed = _UncompressedDigest(algorithm) if "gzip" in media_type else None

    def authenticate(self, ciphertext: memoryview) -> None:
        """Delegate to the wrapped decryptor."""
        self._inner.authenticate(ciphertext)

    def decrypt_into(self, ciphertext: memoryview, out: bytearray) -> int:
        """Decrypt, then hash the plaintext just written."""
        count = self._inner.decrypt_into(ciphertext, out)
        self._hash.update(memoryview(out)[:count])
        if self._uncompressed is not None:
            self._uncompressed.update(memoryview(out)[:count])
        return count

    def verify(self) -> None:
        """Verify the wrapped decryptor's tag, then the plaintext digest (of the blob or its content)."""
        self._inner.verify()
        actual = self._hash.hexdigest()
        if hmac.compare_digest(actual, self._expected):
            return
        message = (
            f"the decrypted layer's digest {self._hash.name}:{actual} differs from {self._digest} "
            "recorded when it was encrypted"
        )
        if self._uncompressed is not None:
            content = self._uncompressed.hexdigest()
            if content is not None and hmac.compare_digest(content, self._expected):
                return  # skopeo recorded the digest of the uncompressed layer it then gzipped
            shown = "unavailable: not a complete gzip stream" if content is None else f"{self._hash.name}:{content}"
            message += f", and so does the digest of its uncompressed content ({shown})"
        raise IntegrityError(message)
