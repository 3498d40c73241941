"""Key directories laid out the way Kubernetes mounts a Secret volume."""

from __future__ import annotations

from pathlib import Path


def kubernetes_secret_volume(root: Path, files: dict[str, bytes]) -> None:
    """Lay files out as the kubelet's atomic writer does: ``..data -> ..<timestamp>``, one link per file."""
    stamp = root / "..2026_11_28_06_00_00.000000001"
    stamp.mkdir(parents=True)
    for name, content in files.items():
        (stamp / name).write_bytes(content)
    (root / "..data").symlink_to(stamp.name)
    for name in files:
        (root / name).symlink_to(f"..data/{name}")
