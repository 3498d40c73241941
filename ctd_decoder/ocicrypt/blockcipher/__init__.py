"""Layer ciphers, registered by their ocicrypt name."""

from __future__ import annotations

from ..errors import LayerError
from .aes_ctr_hmac import AesCtrHmac
from .base import LayerBlockCipher, LayerDecryptor, LayerEncryptor
from .options import PrivateOptions, PublicOptions

DEFAULT_CIPHER = AesCtrHmac.name

_CIPHERS: dict[str, LayerBlockCipher] = {AesCtrHmac.name: AesCtrHmac()}


def get_cipher(name: str) -> LayerBlockCipher:
    """Return the cipher registered under ``name``; raise LayerError for unknown or empty names."""
    if not name:
        raise LayerError("no cipher type provided")
    try:
        return _CIPHERS[name]
    except KeyError:
        raise LayerError(f"unsupported cipher type: {name}") from None


__all__ = [
    "DEFAULT_CIPHER",
    "LayerBlockCipher",
    "LayerDecryptor",
    "LayerEncryptor",
    "PrivateOptions",
    "PublicOptions",
    "get_cipher",
]
