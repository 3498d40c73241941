"""The OCI content descriptor of an encrypted layer.

The value classes on the decoder's path are plain classes, not dataclasses: the decorator costs
about a millisecond of start-up per class, and containerd starts the decoder once per layer.
"""

from __future__ import annotations


class Descriptor:
    """The OCI descriptor of the encrypted layer, as listed in the image manifest."""

    __slots__ = ("annotations", "digest", "media_type", "size")

    def __init__(
        self, media_type: str = "", digest: str = "", size: int = 0, annotations: dict[str, str] | None = None
    ) -> None:
        self.media_type = media_type
        self.digest = digest
        self.size = size
        self.annotations: dict[str, str] = {} if annotations is None else annotations

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Descriptor):
            return NotImplemented
        return (self.media_type, self.digest, self.size, self.annotations) == (
            other.media_type,
            other.digest,
            other.size,
            other.annotations,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return f"Descriptor({self.media_type!r}, {self.digest!r}, {self.size!r}, {self.annotations!r})"
