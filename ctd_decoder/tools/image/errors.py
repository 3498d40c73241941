"""The error of an unusable image reference, layout or archive."""

from __future__ import annotations

from ...ocicrypt import OcicryptError


class ImageError(OcicryptError):
    """An image reference, layout, archive or blob cannot be used; the text says which and why."""
