"""The OCI content descriptor of an encrypted layer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Descriptor:
    """The OCI descriptor of the encrypted layer, as listed in the image manifest."""

    media_type: str = ""
    digest: str = ""
    size: int = 0
    annotations: dict[str, str] = field(default_factory=dict)
