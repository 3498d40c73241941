"""Image references as skopeo spells them: ``oci:DIR[:REF]`` and ``oci-archive:FILE[:REF]``."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ImageError

OCI = "oci"
OCI_ARCHIVE = "oci-archive"
TRANSPORTS = (OCI, OCI_ARCHIVE)


@dataclass(frozen=True)
class ImageReference:
    """A parsed reference: the transport, the directory or archive path, and the optional ref name."""

    transport: str
    path: str
    ref: str | None

    def __str__(self) -> str:
        return f"{self.transport}:{self.path}" + (f":{self.ref}" if self.ref is not None else "")


def parse_reference(text: str) -> ImageReference:
    """Parse ``oci:DIR[:REF]`` or ``oci-archive:FILE[:REF]``; the path ends at the first ``:`` as in skopeo."""
    transport, colon, rest = text.partition(":")
    if not colon or transport not in TRANSPORTS:
        raise ImageError(
            f"invalid image reference {text!r}: expected oci:DIR[:REF] or oci-archive:FILE[:REF] "
            "(registries: use skopeo copy between oci:DIR:REF and docker://...)"
        )
    path, colon, ref = rest.partition(":")
    if not path:
        raise ImageError(f"invalid image reference {text!r}: the {transport} path is empty")
    if colon and not ref:
        raise ImageError(f"invalid image reference {text!r}: empty reference name after ':'")
    return ImageReference(transport, path, ref if colon else None)
