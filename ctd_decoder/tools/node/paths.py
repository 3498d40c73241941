"""Every host path the node installer reads or writes: the one source of truth for the installer,
the Kubernetes manifests (deploy/kubernetes/, checked against :func:`host_mounts`) and the docs.

Paths are host paths as the host itself names them. Inside the installer's pod the host's
directories are mounted below ``HOST_ROOT`` at the same relative place (``/host/etc/containerd``
for ``/etc/containerd``), so :meth:`HostLayout.local` is where a host path is read and written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum

HOST_ROOT = "/host"  # where the pod mounts the host's directories
SECRET_DIR = "/etc/ctd-decoder/secret"  # where the pod mounts the keys Secret (a kubelet Secret volume)

OCICRYPT_DIR = "/etc/containerd/ocicrypt"
KEYS_DIR = f"{OCICRYPT_DIR}/keys"
KEYPROVIDER_CONFIG = f"{OCICRYPT_DIR}/ocicrypt_keyprovider.conf"
# The installer's records of what it wrote (config edits, bundle files; synced keys).
INSTALL_LEDGER = f"{OCICRYPT_DIR}/node-install.json"
KEYS_LEDGER = f"{OCICRYPT_DIR}/node-keys.json"

LOCAL_DIR = "/usr/local"
BUNDLE_DIR = f"{LOCAL_DIR}/lib/ctd-decoder"
BIN_DIR = f"{LOCAL_DIR}/bin"
DECODER = f"{BIN_DIR}/ctd-decoder"
OCICRYPT_TOOL = f"{BIN_DIR}/ocicrypt"

DROPIN_NAME = "90-ctd-decoder.toml"
# The Secret key whose file becomes KEYPROVIDER_CONFIG instead of a key in KEYS_DIR.
KEYPROVIDER_SECRET_KEY = "ocicrypt_keyprovider.conf"


class Flavour(Enum):
    """Who runs containerd on the node."""

    CONTAINERD = "containerd"
    K3S = "k3s"
    RKE2 = "rke2"


@dataclass(frozen=True)
class FlavourPaths:
    """Where one flavour keeps containerd's configuration, and the init-system units that run it."""

    config_dir: str  # holds config.toml (containerd's own, or the one k3s/RKE2 render)
    units: tuple[str, ...]  # restarted with `systemctl try-restart` (only the running ones restart)

    @property
    def config(self) -> str:
        return f"{self.config_dir}/config.toml"

    def dropin_dir(self, version: int) -> str:
        """containerd 2.2+'s conf.d, or the k3s/RKE2 drop-in directory of a config version."""
        if self.config_dir == "/etc/containerd":
            return "/etc/containerd/conf.d"
        return f"{self.config_dir}/config-v3.toml.d" if version == 3 else f"{self.config_dir}/config.toml.d"

    def template(self, version: int) -> str:
        """The k3s/RKE2 template built on their base template (``{{ template "base" . }}``)."""
        return f"{self.config_dir}/config-v3.toml.tmpl" if version == 3 else f"{self.config_dir}/config.toml.tmpl"


FLAVOURS: dict[Flavour, FlavourPaths] = {
    Flavour.CONTAINERD: FlavourPaths("/etc/containerd", ("containerd.service",)),
    Flavour.K3S: FlavourPaths("/var/lib/rancher/k3s/agent/etc/containerd", ("k3s.service", "k3s-agent.service")),
    Flavour.RKE2: FlavourPaths(
        "/var/lib/rancher/rke2/agent/etc/containerd", ("rke2-server.service", "rke2-agent.service")
    ),
}


def host_mounts(flavour: Flavour) -> tuple[str, ...]:
    """The host directories the installer's pod mounts (below HOST_ROOT) for ``flavour``, and no others."""
    if flavour is Flavour.CONTAINERD:
        return ("/etc/containerd", LOCAL_DIR)
    return (FLAVOURS[flavour].config_dir, "/etc/containerd", LOCAL_DIR)


def keysync_mounts() -> tuple[str, ...]:
    """The host directories the resident key syncer mounts: /etc/containerd, which holds the keys
    directory (a hostPath of the ocicrypt directory itself would be created by the kubelet before the
    installer runs, so uninstall could not tell that it was never the operator's)."""
    return ("/etc/containerd",)


@dataclass(frozen=True)
class HostLayout:
    """How this process reaches the host: ``root`` is where the host's files are mounted here, ``prefix``
    what the host calls its own root ('' on a real node; a temp dir when a test stands in for a host).
    """

    root: str = HOST_ROOT
    prefix: str = ""

    def local(self, host_path: str) -> str:
        """Where ``host_path`` is read and written from this process."""
        return os.path.join(self.root, host_path.lstrip("/"))

    def on_host(self, host_path: str) -> str:
        """``host_path`` as the host's own processes (containerd, the init system) must name it."""
        return self.prefix.rstrip("/") + host_path if self.prefix else host_path
