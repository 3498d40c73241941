"""deploy/kubernetes/: valid against the Kubernetes API schemas (kubernetes-validate, strict: no
unknown field), and mounting exactly the host paths of ctd_decoder.tools.node.paths, no more."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ctd_decoder.tools.node import paths

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes"
MANIFESTS = sorted(DEPLOY.rglob("*.yaml"))
K8S_VERSION = "1.30.0"  # the oldest Kubernetes the manifests are written for; also checked on the newest


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_manifest_is_there() -> None:
    names = {str(p.relative_to(DEPLOY)) for p in MANIFESTS}
    assert {"namespace.yaml", "serviceaccount.yaml", "secret-example.yaml", "daemonset.yaml", "uninstall.yaml"} <= names
    assert {"k3s/daemonset.yaml", "k3s/uninstall.yaml"} <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(DEPLOY)))
@pytest.mark.parametrize("version", [K8S_VERSION, kubernetes_validate.utils.latest_version()])
def test_manifest_is_valid_against_the_api_schema(path: Path, version: str) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_can_fail() -> None:
    (doc,) = documents(DEPLOY / "daemonset.yaml")
    broken = copy.deepcopy(doc)
    broken["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []  # a typo of volumeMounts
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def host_paths(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """hostPath -> mountPath of one container."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    found = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "hostPath" in volume:
            found[volume["hostPath"]["path"]] = mount["mountPath"]
    return found


def secret_mount(pod: dict[str, Any], container: dict[str, Any]) -> str | None:
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = [m for m in container.get("volumeMounts", []) if "secret" in volumes[m["name"]]]
    assert len(mounts) <= 1
    if mounts:
        assert mounts[0].get("readOnly") is True
        return str(mounts[0]["mountPath"])
    return None


def expected(mounts: tuple[str, ...]) -> dict[str, str]:
    return {host: paths.HostLayout().local(host) for host in mounts}


@pytest.mark.parametrize(
    ("name", "flavour"),
    [
        ("daemonset.yaml", paths.Flavour.CONTAINERD),
        ("uninstall.yaml", paths.Flavour.CONTAINERD),
        ("k3s/daemonset.yaml", paths.Flavour.K3S),
        ("k3s/uninstall.yaml", paths.Flavour.K3S),
    ],
)
def test_pods_mount_exactly_the_installers_paths(name: str, flavour: paths.Flavour) -> None:
    (doc,) = documents(DEPLOY / name)
    pod = doc["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] and pod["tolerations"]
    assert pod["hostPID"] is True  # nsenter --target 1
    (init,) = pod["initContainers"]
    action = "install" if name.endswith("daemonset.yaml") else "uninstall"
    assert init["command"][:3] == ["/opt/ctd-decoder/ocicrypt", "node", action]
    if flavour is not paths.Flavour.CONTAINERD:
        assert init["command"][3:5] == ["--flavour", flavour.value]
    assert host_paths(pod, init) == expected(paths.host_mounts(flavour))
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
        assert not security.get("privileged")
    if action == "install":
        assert secret_mount(pod, init) == paths.SECRET_DIR
        (sync,) = pod["containers"]
        assert sync["command"][:4] == ["/opt/ctd-decoder/ocicrypt", "node", "sync-keys", "--watch"]
        assert host_paths(pod, sync) == expected(paths.keysync_mounts())
        assert secret_mount(pod, sync) == paths.SECRET_DIR
        assert "--secret-dir" in sync["command"] and paths.SECRET_DIR in sync["command"]
    else:
        (done,) = pod["containers"]
        assert host_paths(pod, done) == {} and secret_mount(pod, done) is None


def test_service_account_has_no_token() -> None:
    (account,) = documents(DEPLOY / "serviceaccount.yaml")
    assert account["automountServiceAccountToken"] is False


def test_no_label_or_annotation_carries_a_key() -> None:
    for path in MANIFESTS:
        for doc in documents(path):
            text = yaml.safe_dump(doc)
            assert "PRIVATE KEY" not in text, path
