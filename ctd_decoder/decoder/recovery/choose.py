"""Which recovered descriptor to decrypt with: the newest whose wrapped key the node's keys open.

Several manifests can list the same blob with different annotations (an image re-encrypted to more
recipients, or a manifest made by someone else). Each candidate's key is unwrapped with the node's
keys, newest manifest first; nothing is read from the layer until one opens. A wrong choice (a
wrapped key made for the node's public key by someone who is not the image's author) cannot yield a
layer: its HMAC, or containerd's diff-ID check against the image's config, ends the pull with an error.
"""

from __future__ import annotations

from ...ocicrypt.config import DecryptConfig
from ...ocicrypt.errors import OcicryptError
from ...ocicrypt.layer import LayerDecryption, decrypt_layer
from .manifests import Found


def first_usable(dc: DecryptConfig, candidates: list[Found]) -> tuple[LayerDecryption, Found]:
    """The first candidate whose key unwraps; if none does, raise the newest one's error."""
    first_error: OcicryptError | None = None
    for candidate in candidates:
        try:
            return decrypt_layer(dc, candidate.descriptor), candidate
        except OcicryptError as err:
            if first_error is None:
                first_error = err
    assert first_error is not None, "first_usable needs at least one candidate"
    raise first_error
