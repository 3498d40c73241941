"""The installer's record of what it wrote on a host, so that ``uninstall`` removes exactly that.

It holds host paths, SHA-256 digests of the configuration and bundle files it wrote, the directories
it created and the text it inserted into the host's own containerd config; never a key or a copy
of the host's configuration.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .fsops import write_if_changed

FORMAT = 1


@dataclass
class Insertion:
    """Text inserted into a host file at an offset of the file as it was before."""

    offset: int
    text: str


@dataclass
class ConfigEdit:
    """The installer's edit of the host's own containerd config (its ``imports``)."""

    path: str  # host path
    insertions: list[Insertion]
    written_sha256: str


@dataclass
class InstallLedger:
    """Everything one ``install`` wrote (host paths)."""

    flavour: str
    strategy: str
    config_version: int
    config: str  # host path of the main config.toml
    target: str  # host path of the drop-in or template
    files: dict[str, str] = field(default_factory=dict)  # host path -> sha256 of the bytes written
    links: dict[str, str] = field(default_factory=dict)  # host path -> symlink target
    dirs: list[str] = field(default_factory=list)  # created, parents first
    config_edit: ConfigEdit | None = None

    def to_json(self) -> bytes:
        """The ledger as JSON bytes."""
        return (json.dumps({"format": FORMAT, **asdict(self)}, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> InstallLedger:
        """Parse a ledger written by :meth:`to_json`; ValueError if it is not one."""
        raw: Any = json.loads(data)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError("not an install ledger of this version")
        edit = raw.get("config_edit")
        return cls(
            flavour=str(raw["flavour"]),
            strategy=str(raw["strategy"]),
            config_version=int(raw["config_version"]),
            config=str(raw["config"]),
            target=str(raw["target"]),
            files={str(k): str(v) for k, v in raw.get("files", {}).items()},
            links={str(k): str(v) for k, v in raw.get("links", {}).items()},
            dirs=[str(d) for d in raw.get("dirs", [])],
            config_edit=None
            if edit is None
            else ConfigEdit(
                str(edit["path"]),
                [Insertion(int(i["offset"]), str(i["text"])) for i in edit["insertions"]],
                str(edit["written_sha256"]),
            ),
        )


def read_ledger(local_path: str) -> InstallLedger | None:
    """The ledger at ``local_path``, None if there is none; ValueError if it is unreadable as one."""
    try:
        with open(local_path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    try:
        return InstallLedger.from_json(data)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{local_path} is not a ledger of ocicrypt node install ({err})") from None


def write_ledger(local_path: str, ledger: InstallLedger) -> None:
    """Write the ledger atomically, readable by root only (not at all when it is unchanged)."""
    write_if_changed(local_path, ledger.to_json(), 0o600)


def remove_ledger(local_path: str) -> None:
    """Remove the ledger (uninstall's last step)."""
    if os.path.exists(local_path):
        os.unlink(local_path)
