"""Build the project's wheel from a copy of its sources (``python -m build``: an sdist, then the wheel from
it) and install it in a fresh venv, as a Python node without the Debian package gets it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

from support.repo import REPO

# What the sdist needs: the build files, the package, and the small client's source.
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE")
CLIENT_SOURCE = Path("packaging", "warm-client", "ctd-decoder-client.c")
PURE_ENV = "CTD_DECODER_PURE_WHEEL"


def build_wheel(workdir: Path, pure: bool = False) -> tuple[Path, str]:
    """Build in ``workdir``; return the wheel and the build's output. ``pure``: no C client (the fallback)."""
    source = workdir / "src"
    source.mkdir(parents=True)
    for name in SOURCES:
        shutil.copyfile(REPO / name, source / name)
    (source / CLIENT_SOURCE).parent.mkdir(parents=True)
    for client_file in (CLIENT_SOURCE, CLIENT_SOURCE.with_name("compile.sh")):
        shutil.copyfile(REPO / client_file, source / client_file)
    shutil.copytree(REPO / "ctd_decoder", source / "ctd_decoder", ignore=shutil.ignore_patterns("__pycache__"))
    env = {name: value for name, value in os.environ.items() if name != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(workdir / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=workdir,  # not the checkout: its build/ directory (pip's, the bundle cache) shadows the build package
        env=env,
    )
    output = built.stdout + built.stderr
    if built.returncode != 0:
        raise RuntimeError(f"python -m build failed: {output[-4000:]}")
    (wheel,) = (workdir / "dist").glob("ctd_decoder-*.whl")
    return wheel, output


def install_in_fresh_venv(wheel: Path, env_dir: Path) -> Path:
    """A new venv with ``wheel`` (and its dependencies from the package index) installed; return its bin/."""
    venv.create(env_dir, with_pip=True)
    installed = subprocess.run(
        [str(env_dir / "bin/python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if installed.returncode != 0:
        raise RuntimeError(f"pip install {wheel.name} failed: {installed.stderr[-3000:]}")
    return env_dir / "bin"


def is_small_client(path: Path) -> bool:
    """``path`` is a compiled executable (the C client), not a Python console script."""
    with path.open("rb") as executable:
        return executable.read(4) == b"\x7fELF"
