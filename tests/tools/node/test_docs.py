"""The README's "Roll out to a cluster" names the paths of ctd_decoder/tools/node/paths.py (the one
source the installer and the manifests use) and the files of deploy/kubernetes/ that exist."""

from __future__ import annotations

import re
from pathlib import Path

from ctd_decoder.tools.node import paths
from ctd_decoder.tools.node.detect import STRATEGIES

REPO = Path(__file__).resolve().parents[3]


def section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Roll out to a cluster")
    return " ".join(text[start : text.index("\n## ", start + 1)].split())


def test_readme_names_the_installers_paths() -> None:
    text = section()
    for path in (
        paths.BUNDLE_DIR,
        paths.DECODER,
        paths.OCICRYPT_TOOL,
        paths.KEYS_DIR,
        paths.KEYPROVIDER_CONFIG,
        paths.SECRET_DIR,
        paths.INSTALL_LEDGER,
        f"/etc/containerd/conf.d/{paths.DROPIN_NAME}",
        paths.FLAVOURS[paths.Flavour.RKE2].config_dir,
    ):
        assert path in text, path
    assert paths.KEYPROVIDER_SECRET_KEY in text
    for flavour in paths.FLAVOURS.values():
        assert " ".join(flavour.units) in text
    assert len(STRATEGIES) == 4


def test_readme_names_only_manifests_that_exist() -> None:
    named = set(re.findall(r"deploy/kubernetes/[\w/.-]+\.yaml", section()))
    assert named
    for name in named:
        assert (REPO / name).is_file(), name
