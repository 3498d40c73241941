"""Where this installation put its files, so that the doctor's fixes name paths that exist on the node.

One set of paths per install route:

- the Debian package (``--prefix /usr``) and ``install.sh`` (``/usr/local`` by default), the bundle in
  ``PREFIX/lib/ctd-decoder``: the decoder ``PREFIX/bin/ctd-decoder``, the snippets (naming that decoder)
  in ``PREFIX/share/doc/ctd-decoder/examples/{containerd,k3s}``;
- the bundle started from an unpacked release tarball, not installed: the tarball's ``containerd/`` and
  ``k3s/`` beside the bundle, which name ``/usr/local/bin/ctd-decoder`` (where ``install.sh`` puts it);
- pip (a venv, or the system's Python): the decoder in the scripts directory next to ``ocicrypt``; the
  snippets of the source checkout pip installed from (PEP 610's ``direct_url.json``), else named as the
  source's ``packaging/`` files. Either way they name ``/usr/local/bin/ctd-decoder``, so the fix says
  which ``path`` to write instead.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

DECODER = "ctd-decoder"
SNIPPET_DECODER = "/usr/local/bin/ctd-decoder"  # what the snippets in packaging/ name
CONTAINERD_V2 = "containerd/config-v2.toml"
CONTAINERD_V3 = "containerd/config-v3.toml"
DOC_EXAMPLES = ("share", "doc", "ctd-decoder", "examples")


@dataclass(frozen=True)
class InstallPaths:
    """The decoder containerd should run and where this install keeps the containerd snippets."""

    route: str  # "bundle" (Debian package, install.sh), "release" (an unpacked tarball), "pip"
    decoder: str
    examples: str | None  # holds containerd/ and k3s/; None: not on this machine (pip from an archive)

    def snippet(self, relative: str) -> str:
        """Name the snippet ``relative`` (``containerd/config-v2.toml``) as this install has it."""
        if self.examples is None:
            return f"packaging/{relative} of the ctd-decoder source, with path = {self.decoder}"
        path = os.path.join(self.examples, relative)
        if self.route == "bundle":
            return path  # install.sh wrote the snippets with this install's decoder path
        return f"{path}, with path = {self.decoder}"

    def containerd_snippet(self, config_version: int) -> str:
        """The snippet for a containerd config of ``config_version`` (3: containerd 2.x)."""
        return self.snippet(CONTAINERD_V3 if config_version >= 3 else CONTAINERD_V2)


@functools.cache
def detect() -> InstallPaths:
    """The paths of the install this code runs from."""
    if getattr(sys, "frozen", False):
        return _bundle(os.path.dirname(os.path.realpath(sys.executable)))
    return _pip()


def _bundle(bundle: str) -> InstallPaths:
    """A PyInstaller bundle: installed as PREFIX/lib/ctd-decoder, or inside an unpacked release tarball."""
    lib = os.path.dirname(bundle)
    if os.path.basename(lib) == "lib":
        prefix = os.path.dirname(lib)
        return InstallPaths("bundle", os.path.join(prefix, "bin", DECODER), os.path.join(prefix, *DOC_EXAMPLES))
    return InstallPaths("release", os.path.join(bundle, DECODER), lib)


def _pip() -> InstallPaths:
    scripts = sysconfig.get_path("scripts")
    decoder = os.path.join(scripts, DECODER)
    if not os.path.exists(decoder):
        decoder = shutil.which(DECODER) or decoder
    return InstallPaths("pip", decoder, _source_packaging())


def _source_packaging() -> str | None:
    """The ``packaging/`` directory of the checkout pip installed this package from, if it is still there."""
    from importlib import metadata

    try:
        text = metadata.distribution(DECODER).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        origin = json.loads(text or "null")
    except ValueError:
        return None
    if not isinstance(origin, dict) or "dir_info" not in origin or not isinstance(origin.get("url"), str):
        return None  # installed from an archive or a VCS URL: no checkout to point at
    url = urlparse(origin["url"])
    if url.scheme != "file":
        return None
    packaging = os.path.join(unquote(url.path), "packaging")
    return packaging if os.path.isfile(os.path.join(packaging, CONTAINERD_V2)) else None
