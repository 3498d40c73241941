"""The layer cipher's public and private options, as ocicrypt marshals them with Go's encoding/json.

Private options are what every key wrapper protects; public options travel base64'd in the
``org.opencontainers.image.enc.pubopts`` annotation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import LayerError
from ..gojson import b64decode, b64encode, member


def _bytes(value: Any, what: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise LayerError(f"{what} is not a base64 string")
    try:
        return b64decode(value, what)
    except ValueError as err:
        raise LayerError(str(err)) from None


def _byte_map(value: Any, what: str) -> dict[str, bytes]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LayerError(f"{what} is not a JSON object")
    return {name: _bytes(item, f"{what}[{name!r}]") for name, item in value.items()}


def _load_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise LayerError(f"could not JSON unmarshal {what}: {err}") from None
    except RecursionError:
        raise LayerError(f"could not JSON unmarshal {what}: nested too deeply") from None
    if not isinstance(obj, dict):
        raise LayerError(f"could not JSON unmarshal {what}: not a JSON object")
    return obj


@dataclass
class PrivateOptions:
    """The secret half: the symmetric key, the plaintext digest and private cipher options."""

    symkey: bytes
    digest: str = ""
    cipher_options: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: bytes) -> PrivateOptions:
        """Parse the JSON a key wrapper returned."""
        obj = _load_object(data, "privOptsData")
        digest = member(obj, "digest") or ""
        if not isinstance(digest, str):
            raise LayerError("could not JSON unmarshal privOptsData: digest is not a string")
        return cls(
            _bytes(member(obj, "symkey"), "symkey"),
            digest,
            _byte_map(member(obj, "cipheroptions"), "private cipheroptions"),
        )

    def to_json(self) -> bytes:
        """Serialize exactly as Go does (member order, padded standard base64)."""
        options = {name: b64encode(value) for name, value in self.cipher_options.items()}
        value = {"symkey": b64encode(self.symkey), "digest": self.digest, "cipheroptions": options}
        return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class PublicOptions:
    """The public half: the cipher name, the expected HMAC and public cipher options."""

    cipher: str = ""
    hmac: bytes = b""
    cipher_options: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: bytes) -> PublicOptions:
        """Parse the decoded ``pubopts`` annotation."""
        obj = _load_object(data, "pubOptsData")
        cipher = member(obj, "cipher") or ""
        if not isinstance(cipher, str):
            raise LayerError("could not JSON unmarshal pubOptsData: cipher is not a string")
        return cls(
            cipher,
            _bytes(member(obj, "hmac"), "hmac"),
            _byte_map(member(obj, "cipheroptions"), "public cipheroptions"),
        )

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
