"""Descriptor recovery as the decoder runs it: recover, then pick the descriptor the node's keys open."""

from __future__ import annotations

import os
from collections.abc import Callable

from ...ocicrypt.config import DecryptConfig
from ...ocicrypt.descriptor import Descriptor
from ...ocicrypt.errors import OcicryptError
from ...ocicrypt.layer import LayerDecryption
from ...ocicrypt.spec import KEYPROVIDER_CONFIG_ENV
from .. import MEDIA_TYPE_ENV
from .choose import first_usable
from .find import RecoveryError, recover
from .parent import default_starter


class RecoveryFailed(Exception):
    """The layer cannot be decrypted without a payload; ``message`` is the whole diagnostic."""

    def __init__(self, message: str, keys_notes: bool) -> None:
        super().__init__(message)
        self.message = message
        self.keys_notes = keys_notes  # the keys directory's notes belong under it (a key problem)


def node_keys_configured(dc: DecryptConfig) -> bool:
    """Whether the node has keys of its own: loaded from the keys directory, or a key-provider config."""
    return any(any(values) for values in dc.parameters.values()) or bool(os.environ.get(KEYPROVIDER_CONFIG_ENV))


def recovered_layer(
    dc: DecryptConfig, flag: str | None, starter: Callable[[], int | None] | None
) -> tuple[LayerDecryption, Descriptor]:
    """The unwrapped layer and its recovered descriptor (``starter``: tells which process started the
    decoder, if not our parent); raise :class:`RecoveryFailed`."""
    media_type = os.environ.get(MEDIA_TYPE_ENV, "")
    started_by = starter() if starter is not None else None
    try:
        recovered = recover(
            media_type, node_keys_configured(dc), flag, default_starter() if started_by is None else started_by
        )
    except RecoveryError as err:
        raise RecoveryFailed(str(err), keys_notes=False) from None
    try:
        layer, chosen = first_usable(dc, recovered.candidates)
    except OcicryptError as err:
        raise RecoveryFailed(f"call to DecryptLayer failed: {err}", keys_notes=True) from None
    return layer, chosen.descriptor
