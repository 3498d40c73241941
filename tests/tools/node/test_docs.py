"""docs/cluster-rollout.md names the paths of ctd_decoder/tools/node/paths.py (the one source the installer
and the manifests use) and the files of deploy/kubernetes/ that exist."""

from __future__ import annotations

import re

from support.docs import CLUSTER_ROLLOUT, README, REPO, doc_text, relative_links

from ctd_decoder.tools.node import paths
from ctd_decoder.tools.node.detect import STRATEGIES


def section() -> str:
    return doc_text(CLUSTER_ROLLOUT)


def test_rollout_doc_names_the_installers_paths() -> None:
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


def test_rollout_doc_names_only_manifests_that_exist() -> None:
    named = set(re.findall(r"deploy/kubernetes/[\w/.-]+\.yaml", section()))
    assert named
    for name in named:
        assert (REPO / name).is_file(), name


def test_readme_points_to_the_rollout_doc() -> None:
    assert CLUSTER_ROLLOUT in relative_links(README)
