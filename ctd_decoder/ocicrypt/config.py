"""Decrypt and encrypt configurations: ocicrypt's parameter maps.

A parameter map takes a parameter name (``privkeys``, ``x509s``, a key provider's name ...) to a
list of byte strings. Password lists hold ``None`` for "no password", which differs from ``b""``
(an empty password), exactly as Go's ``[][]byte`` with nil versus empty entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# The parameter names are the spec's; re-exported here for the library's ``params.NAME``.
from .spec import GPG_PRIVATEKEYS as GPG_PRIVATEKEYS
from .spec import GPG_PRIVATEKEYS_PASSWORDS as GPG_PRIVATEKEYS_PASSWORDS
from .spec import GPG_PUBKEYRINGFILE as GPG_PUBKEYRINGFILE
from .spec import GPG_RECIPIENTS as GPG_RECIPIENTS
from .spec import PKCS11_CONFIG as PKCS11_CONFIG
from .spec import PKCS11_PUBKEYS as PKCS11_PUBKEYS
from .spec import PKCS11_YAMLS as PKCS11_YAMLS
from .spec import PRIVKEYS as PRIVKEYS
from .spec import PRIVKEYS_PASSWORDS as PRIVKEYS_PASSWORDS
from .spec import PUBKEYS as PUBKEYS
from .spec import X509S as X509S

Parameters = dict[str, list[bytes | None]]


def _merged(first: Mapping[str, list[bytes | None]], second: Mapping[str, list[bytes | None]]) -> Parameters:
    merged: Parameters = {name: list(values) for name, values in first.items()}
    for name, values in second.items():
        merged.setdefault(name, []).extend(values)
    return merged


class _ParameterMap:
    """A parameter map; a plain class, not a dataclass (see :mod:`ctd_decoder.ocicrypt.descriptor`).

    No ``__repr__`` beyond the class name: the parameters hold private keys and passwords.
    """

    __slots__ = ("parameters",)

    def __init__(self, parameters: Parameters | None = None) -> None:
        self.parameters: Parameters = {} if parameters is None else parameters

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _ParameterMap) or type(other) is not type(self):
            return NotImplemented
        return self.parameters == other.parameters

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(parameters: {', '.join(sorted(self.parameters))})"


class DecryptConfig(_ParameterMap):
    """What a decryption may use: private keys, certificates, passwords, provider parameters."""

    def get(self, name: str) -> list[bytes | None]:
        """Return the list stored under ``name`` (empty if absent)."""
        return self.parameters.get(name, [])

    def keys_of(self, name: str) -> list[bytes]:
        """Return the non-empty byte strings stored under ``name``."""
        return [value for value in self.get(name) if value]

    def combined_with(self, other: DecryptConfig) -> DecryptConfig:
        """Return a config with this config's lists first, then ``other``'s, per parameter."""
        return DecryptConfig(_merged(self.parameters, other.parameters))

    def add(self, name: str, values: Iterable[bytes | None]) -> None:
        """Append ``values`` to the list stored under ``name``."""
        self.parameters.setdefault(name, []).extend(values)


class EncryptConfig(_ParameterMap):
    """Recipients to wrap a layer key for (public keys, certificates, gpg recipients ...)."""

    def get(self, name: str) -> list[bytes]:
        """Return the non-empty byte strings stored under ``name``."""
        return [value for value in self.parameters.get(name, []) if value]

    def add(self, name: str, values: Iterable[bytes | None]) -> None:
        """Append ``values`` to the list stored under ``name``."""
        self.parameters.setdefault(name, []).extend(values)
