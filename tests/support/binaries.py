"""The upstream reference binaries (containerd 2.3.4, the Go decoders, ctr-enc) in ``../shared/bin``.

They are test tools, never part of the project: found in ``$CTD_SHARED_BIN`` or in ``shared/bin`` beside
the checkout. Under ``CI=true`` a missing binary fails the test; elsewhere it is a skip that names it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CONTAINERD_2 = "containerd-2.3.4"
GO_DECODER_1 = "ctd-decoder-imgcrypt-1.1.7"
GO_DECODER_2 = "ctd-decoder-imgcrypt-2.0.2"
CTR_ENC = "ctr-enc-imgcrypt-1.1.7"


def shared_bin_dir() -> Path:
    """Return where the reference binaries are looked for."""
    configured = os.environ.get("CTD_SHARED_BIN")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "shared" / "bin"


def find_binary(name: str) -> Path | None:
    """Return the reference binary ``name`` if it is present and executable."""
    path = shared_bin_dir() / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def require_binary(name: str) -> Path:
    """Return the reference binary ``name``; fail under CI=true, skip elsewhere, when it is missing."""
    path = find_binary(name)
    if path is not None:
        return path
    message = f"reference binary {name} not found in {shared_bin_dir()} (set CTD_SHARED_BIN)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
