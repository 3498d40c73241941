"""The layer cipher's public and private options, as ocicrypt marshals them with Go's encoding/json.

Private options are what every key wrapper protects; public options travel base64'd in the
``org.opencontainers.image.enc.pubopts`` annotation.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import LayerError
from ..gojson import BYTES, STRING, MapOf, Struct, b64encode, unmarshal

# ocicrypt's PrivateLayerBlockCipherOptions and PublicLayerBlockCipherOptions.
_PRIVATE = Struct({"symkey": BYTES, "digest": STRING, "cipheroptions": MapOf(BYTES)})
_PUBLIC = Struct({"cipher": STRING, "hmac": BYTES, "cipheroptions": MapOf(BYTES)})


def _unmarshal(data: bytes, go_type: Struct, what: str) -> dict[str, Any]:
    try:
        return unmarshal(data, go_type)
    except ValueError as err:
        raise LayerError(f"could not JSON unmarshal {what}: {err}") from None


def _options(value: dict[str, bytes | None] | None) -> dict[str, bytes]:
    return {name: item or b"" for name, item in (value or {}).items()}


class PrivateOptions:
    """The secret half: the symmetric key, the plaintext digest and private cipher options.

    Plain classes, not dataclasses (see :mod:`ctd_decoder.ocicrypt.descriptor`); no ``__repr__``
    that could show the key.
    """

    __slots__ = ("cipher_options", "digest", "symkey")

    def __init__(self, symkey: bytes, digest: str = "", cipher_options: dict[str, bytes] | None = None) -> None:
        self.symkey = symkey
        self.digest = digest
        self.cipher_options: dict[str, bytes] = {} if cipher_options is None else cipher_options

    @classmethod
    def from_json(cls, data: bytes) -> PrivateOptions:
        """Parse the JSON a key wrapper returned."""
        obj = _unmarshal(data, _PRIVATE, "privOptsData")
        return cls(obj["symkey"] or b"", obj["digest"], _options(obj["cipheroptions"]))

    def to_json(self) -> bytes:
        """Serialize exactly as Go does (member order, padded standard base64)."""
        options = {name: b64encode(value) for name, value in self.cipher_options.items()}
        value = {"symkey": b64encode(self.symkey), "digest": self.digest, "cipheroptions": options}
        return json.dumps(value, separators=(",", ":")).encode()


class PublicOptions:
    """The public half: the cipher name, the expected HMAC and public cipher options."""

    __slots__ = ("cipher", "cipher_options", "hmac")

    def __init__(self, cipher: str = "", hmac: bytes = b"", cipher_options: dict[str, bytes] | None = None) -> None:
        self.cipher = cipher
        self.hmac = hmac
        self.cipher_options: dict[str, bytes] = {} if cipher_options is None else cipher_options

    @classmethod
    def from_json(cls, data: bytes) -> PublicOptions:
        """Parse the decoded ``pubopts`` annotation."""
        obj = _unmarshal(data, _PUBLIC, "pubOptsData")
        return cls(obj["cipher"], obj["hmac"] or b"", _options(obj["cipheroptions"]))

    def to_json(self) -> bytes:
        """Serialize exactly as Go does (member order, padded standard base64)."""
        options = {name: b64encode(value) for name, value in self.cipher_options.items()}
        value = {"cipher": self.cipher, "hmac": b64encode(self.hmac), "cipheroptions": options}
        return json.dumps(value, separators=(",", ":")).encode()

    def option(self, name: str, private: PrivateOptions) -> bytes | None:
        """Look a cipher option up in the public options first, then in the private ones."""
        if name in self.cipher_options:
            return self.cipher_options[name]
        return private.cipher_options.get(name)
