"""The wheel's one build step beyond pyproject.toml: the warm path's small C client.

A wheel built where a C compiler is found is a platform wheel whose ``ctd-decoder`` is the small
client (``packaging/warm-client``, compiled here into ``bin/``): it hands each layer to the warm
server when one is configured and otherwise execs ``ctd-decoder-python``, the Python entry point.
Without a compiler, or with ``CTD_DECODER_PURE_WHEEL=1``, the wheel is pure Python and
``ctd-decoder`` is the Python entry point itself (the fallback: it hands layers over too, after
the interpreter's start).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
CLIENT_SOURCE = Path("packaging", "warm-client", "ctd-decoder-client.c")
CLIENT_COMPILE = Path("packaging", "warm-client", "compile.sh")
CLIENT_BUILT = Path("build", "warm-client", "ctd-decoder")
PYTHON_ENTRY = "ctd-decoder-python"
PURE_ENV = "CTD_DECODER_PURE_WHEEL"


def _compiler() -> str | None:
    if os.environ.get(PURE_ENV) == "1" or not (HERE / CLIENT_SOURCE).exists():
        return None
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


COMPILER = _compiler()


class BuildWithClient(build_py):
    """build_py, then the small client (its binary is a data file installed into the scripts' bin/)."""

    def run(self) -> None:
        super().run()
        if COMPILER is not None:
            (HERE / CLIENT_BUILT).parent.mkdir(parents=True, exist_ok=True)
            command = ["sh", str(HERE / CLIENT_COMPILE), str(HERE / CLIENT_BUILT), f'-DCOLD_NAME="{PYTHON_ENTRY}"']
            subprocess.run(command, check=True, env={**os.environ, "CC": COMPILER})


class PlatformWheel(bdist_wheel):
    """With the client, the wheel holds machine code: tag it for this platform, any Python 3."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = COMPILER is None

    def get_tag(self) -> tuple[str, str, str]:
        if COMPILER is None:
            return super().get_tag()
        return "py3", "none", sysconfig.get_platform().replace("-", "_").replace(".", "_")


decoder = f"{'ctd-decoder' if COMPILER is None else PYTHON_ENTRY} = ctd_decoder.decoder:main"
setup(
    cmdclass={"build_py": BuildWithClient, "bdist_wheel": PlatformWheel},
    entry_points={
        "console_scripts": [
            decoder,
            "ctd-decoder-warm = ctd_decoder.decoder.warm.server:main",
            "ocicrypt = ctd_decoder.tools.cli:main",
        ]
    },
    data_files=[("bin", [str(CLIENT_BUILT)])] if COMPILER is not None else [],
)
