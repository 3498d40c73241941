"""The interface every key-wrapping scheme implements, and helpers for their diagnostics."""

from __future__ import annotations

from typing import Protocol

from ..config import DecryptConfig, EncryptConfig


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
        :class:`~ctd_decoder.errors.UnwrapError` (or another DecoderError) whose text explains,
        per candidate key, why it could not be used.
        """

    def wrap_keys(self, ec: EncryptConfig, opts: bytes) -> bytes | None:
        """Wrap ``opts`` for this scheme's recipients in ``ec``; None if ``ec`` names none."""


def explain_attempts(summary: str, attempts: list[str]) -> str:
    """Join a scheme's summary with one ``; ``-separated reason per candidate key."""
    if not attempts:
        return summary
    return f"{summary} ({'; '.join(attempts)})"
