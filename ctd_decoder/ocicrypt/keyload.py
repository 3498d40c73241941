"""cryptography's key loaders, without importing ``cryptography.hazmat.primitives.serialization``.

That package imports its SSH support, and with it ``dataclasses`` and ``inspect``: about 30 ms of
every layer's start-up on a small node, a quarter of a small layer's cold run. Its four loaders are
aliases of these functions of the Rust bindings in every cryptography release this project allows
(tests/ocicrypt/test_keyload.py checks the installed one), so they are taken from there directly.
"""

from __future__ import annotations

from cryptography.hazmat.bindings._rust import openssl as _rust_openssl
from cryptography.hazmat.primitives._serialization import Encoding, PublicFormat

__all__ = [
    "Encoding",
    "PublicFormat",
    "load_der_private_key",
    "load_der_public_key",
    "load_pem_private_key",
    "load_pem_public_key",
]

load_pem_private_key = _rust_openssl.keys.load_pem_private_key
load_der_private_key = _rust_openssl.keys.load_der_private_key
load_pem_public_key = _rust_openssl.keys.load_pem_public_key
load_der_public_key = _rust_openssl.keys.load_der_public_key
