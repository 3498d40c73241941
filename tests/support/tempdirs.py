"""Temporary directories with short paths, for tests that put unix sockets (gpg-agent, containerd) in them."""

from __future__ import annotations

import tempfile
from pathlib import Path


def short_tempdir(prefix: str) -> Path:
    """A fresh temp dir directly in the system temp dir: unix socket paths are limited to 107 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix))
