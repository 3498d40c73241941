"""Key directories laid out the way Kubernetes mounts a Secret volume."""

from __future__ import annotations

import os
import shutil
import time
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


def update_secret_volume(root: Path, files: dict[str, bytes]) -> None:
    """Replace a Secret volume's contents the way the kubelet's atomic writer does: a new timestamped
    directory, a ``..data_tmp`` link to it renamed over ``..data``, links for new keys, links of
    removed keys deleted, then the old directory removed."""
    old = os.readlink(root / "..data")
    stamp = root / f"..2026_11_28_06_00_01.{time.time_ns() % 10**9:09d}"
    while stamp.exists():
        stamp = root / f"{stamp.name}0"
    stamp.mkdir()
    for name, content in files.items():
        (stamp / name).write_bytes(content)
    (root / "..data_tmp").symlink_to(stamp.name)
    os.rename(root / "..data_tmp", root / "..data")
    for name in files:
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")
    for link in root.iterdir():
        if not link.name.startswith("..") and link.name not in files:
            link.unlink()
    shutil.rmtree(root / old)
