"""The interface every key-wrapping scheme implements, and helpers for their diagnostics."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from .. import config as params
from .. import keys
from ..config import DecryptConfig, EncryptConfig
from ..errors import PrivateKeyError, UnwrapError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


class KeyWrapper(Protocol):
    """Wraps and unwraps a layer's private options for one annotation scheme."""

    scheme: str

    def has_possible_keys(self, dc: DecryptConfig) -> bool:
        """Tell whether ``dc`` holds anything this scheme could unwrap with.

        Wrappers that need no private keys (key providers) always answer True.
        """

    def private_key_parameter(self) -> str | None:
        """Name the parameter holding this scheme's private keys (None for key providers)."""

    def unwrap_key(self, dc: DecryptConfig, wrapped: bytes) -> bytes | None:
        """Return the private-options JSON protected by ``wrapped``.

        None means "no result, and no error" (a key provider with nothing to say). Failures raise
        :class:`~ctd_decoder.ocicrypt.errors.UnwrapError` (or another OcicryptError) whose text explains,
        per candidate key, why it could not be used.
        """

    def wrap_keys(self, ec: EncryptConfig, opts: bytes) -> bytes | None:
        """Wrap ``opts`` for this scheme's recipients in ``ec``; None if ``ec`` names none."""


class KeyWrapperBase:
    """What every scheme's wrapper shares: its scheme name and the parameter holding its private keys.

    A subclass sets ``scheme`` and ``key_parameter``; ``key_parameter`` None is a scheme that needs no
    private keys of ours (a key provider), which is then always tried.
    """

    scheme: str
    key_parameter: str | None = None

    def has_possible_keys(self, dc: DecryptConfig) -> bool:
        """Tell whether ``dc`` holds a non-empty ``key_parameter`` entry (always True without one)."""
        return self.key_parameter is None or bool(dc.keys_of(self.key_parameter))

    def private_key_parameter(self) -> str | None:
        """Name the parameter holding this scheme's private keys (None for key providers)."""
        return self.key_parameter


def explain_attempts(summary: str, attempts: list[str]) -> str:
    """Join a scheme's summary with one ``; ``-separated reason per candidate key."""
    if not attempts:
        return summary
    return f"{summary} ({'; '.join(attempts)})"


def private_keys(
    dc: DecryptConfig, label: str, attempts: list[str]
) -> Iterator[tuple[PrivateKeyTypes, Callable[[], str]]]:
    """Check ``privkeys`` now, then yield each entry that parses with what describes it (called only for a
    key that does not fit: the description hashes the public key).

    Entries that fail to parse (or whose password is wrong) are noted in ``attempts`` and do not stop
    the later ones, unlike Go. Raises UnwrapError at once if there are no private keys or the
    password list has another length.
    """
    data_list, passwords = dc.get(params.PRIVKEYS), dc.get(params.PRIVKEYS_PASSWORDS)
    if not any(data_list):
        raise UnwrapError(f"no private keys found for {label} decryption")
    if len(passwords) != len(data_list):
        raise UnwrapError("Private key password array length must be same as that of private keys")

    def parsed() -> Iterator[tuple[PrivateKeyTypes, Callable[[], str]]]:
        for number, (data, password) in enumerate(zip(data_list, passwords, strict=True), start=1):
            try:
                key = keys.parse_private_key(data or b"", password)
            except PrivateKeyError as err:
                attempts.append(f"private key #{number}: {err}")
                continue
            yield key, functools.partial(keys.describe_private_key, key)

    return parsed()
