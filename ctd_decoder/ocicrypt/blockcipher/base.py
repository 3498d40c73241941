"""The interfaces every layer cipher implements."""

from __future__ import annotations

from typing import Protocol

from .options import PrivateOptions, PublicOptions


class LayerDecryptor(Protocol):
    """Decrypts one layer stream; authentication and decryption may run on different threads."""

    def authenticate(self, ciphertext: memoryview) -> None:
        """Feed the next ciphertext chunk to the authenticator (thread-safe against decrypt_into)."""

    def decrypt_into(self, ciphertext: memoryview, out: bytearray) -> int:
        """Decrypt the next ciphertext chunk into ``out``; return the number of bytes written."""

    def verify(self) -> None:
        """Raise IntegrityError unless everything authenticated matches the expected tag."""


class LayerEncryptor(Protocol):
    """Encrypts one layer stream and yields the public options (with the tag) at the end."""

    def update(self, plaintext: bytes) -> bytes:
        """Encrypt the next plaintext chunk."""

    def finalize(self) -> PublicOptions:
        """Return the public options including the authentication tag."""


class LayerBlockCipher(Protocol):
    """A layer cipher registered under its ocicrypt name."""

    name: str

    def new_private_options(self, digest: str) -> PrivateOptions:
        """Make fresh random key material for encrypting a layer with plaintext ``digest``."""

    def decryptor(self, public: PublicOptions, private: PrivateOptions) -> LayerDecryptor:
        """Return a decryptor; raise LayerError for unusable options (before any output)."""

    def encryptor(self, private: PrivateOptions) -> LayerEncryptor:
        """Return an encryptor for the given private options."""
