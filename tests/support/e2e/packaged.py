"""The packaged (PyInstaller one-folder) ctd-decoder for the e2e tests, built once and cached, with the
release tarball, the Debian package and the node image made from it (``build.sh --tarball --deb
--node-image``).

The cache key is a hash of everything that goes into the bundle (the package sources, pyproject.toml
and the packaging scripts), so a rebuild happens only when one of them changed. Set
``CTD_DECODER_PACKAGED_EXE`` to test a prebuilt executable instead, and ``CTD_DECODER_PACKAGE_CACHE``
to move the cache (default: ``build/packaged-cache`` in the checkout).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from support.repo import REPO

RELEASES = ["--tarball", "--deb", "--node-image"]  # built with the bundle: packaged_release() finds them
BUILD_INPUTS = [
    "pyproject.toml",
    "LICENSE",
    "config.toml.example",
    "packaging/build.sh",
    "packaging/entry.py",
    "packaging/licenses.py",
    "packaging/deb.sh",
    "packaging/install.sh",
    "packaging/NODE-README.md",
    "packaging/node-image.py",
    "packaging/warm-client/ctd-decoder-client.c",
]


def build_key() -> str:
    digest = hashlib.sha256()
    files = [REPO / name for name in BUILD_INPUTS]
    for tree in ("ctd_decoder", "packaging/containerd", "packaging/k3s", "packaging/systemd", "packaging/debian"):
        files += sorted(p for p in (REPO / tree).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def packaged_decoder_path() -> Path:
    """Return the packaged executable, building it with packaging/build.sh if the cache has none."""
    prebuilt = os.environ.get("CTD_DECODER_PACKAGED_EXE")
    if prebuilt:
        path = Path(prebuilt)
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"CTD_DECODER_PACKAGED_EXE={prebuilt} is not an executable")
        return path
    cache = Path(os.environ.get("CTD_DECODER_PACKAGE_CACHE") or REPO / "build" / "packaged-cache")
    cache.mkdir(parents=True, exist_ok=True)
    key = build_key()
    out = cache / key / "bundle"
    exe = out / "ctd-decoder"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        complete = out.parent / ".complete"  # written once the bundle, tarball and .deb are all built
        if exe.is_file() and complete.exists():
            return exe
        bash = shutil.which("bash")
        if not bash:
            raise RuntimeError("bash is needed to run packaging/build.sh")
        started = time.monotonic()
        result = subprocess.run(
            [bash, str(REPO / "packaging/build.sh"), "--out", str(out), "--work", str(cache / "work"), *RELEASES],
            capture_output=True,
            text=True,
            timeout=1200,
            env={**os.environ, "PYTHON": os.environ.get("PYTHON") or sys.executable},
        )
        if result.returncode != 0 or not exe.is_file():
            raise RuntimeError(
                f"packaging/build.sh failed ({result.returncode}) after {time.monotonic() - started:.0f} s:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        complete.touch()
        for stale in cache.iterdir():  # keep only the current build (and the build venv)
            if stale.is_dir() and stale.name not in (key, "work"):
                shutil.rmtree(stale, ignore_errors=True)
        return exe


def packaged_release(pattern: str) -> Path:
    """The release file (``*.tar.gz``, ``*.deb``) built beside the packaged bundle."""
    bundle = packaged_decoder_path().parent
    found = sorted(bundle.parent.glob(pattern))
    if len(found) != 1:
        raise RuntimeError(
            f"expected one {pattern} beside {bundle} (packaging/build.sh {' '.join(RELEASES)}), found {found}"
        )
    return found[0]
