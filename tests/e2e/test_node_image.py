"""The node image (build.sh --node-image) run the way deploy/kubernetes/daemonset.yaml runs it, by a real
containerd 1.6.20 (``ctr run``) with the DaemonSet's hostPath mounts bound from a temporary host root
(tests/support/e2e/hostroot.py): the installer in the image puts the packaged bundle on that host, edits its
containerd's config, restarts it through the hook standing in for ``nsenter ... systemctl``, runs the
installed ``ocicrypt doctor`` there, and that containerd then pulls an encrypted image through the CRI
with the keys synced from a kubelet-style Secret volume; the image's resident key syncer follows the
volume's ``..data`` swaps; a second install changes and restarts nothing; uninstall restores the host.

In a cluster the pod runs on the containerd it restarts (the shim keeps it alive, as kata-deploy
relies on); here a second containerd runs the image so the test can restart the first at will.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.e2e.daemons import Containerd, Registry, require_tool, running
from support.e2e.hostroot import (
    KEYS,
    FakeHost,
    assert_no_secret,
    jwe_recipient,
    pull,
    pull_error,
    start_fake_host,
    wait_for,
)
from support.e2e.node import push_encrypted, small_layers
from support.e2e.packaged import packaged_release
from support.oci import skopeo
from support.secrets import kubernetes_secret_volume, update_secret_volume
from support.tempdirs import short_tempdir

from ctd_decoder.tools.node import paths

IMAGE = "ctd-decoder-node"
OCICRYPT = "/opt/ctd-decoder/ocicrypt"
# The capabilities containerd gives a container by default: dropping them all is the key-sync
# container's `capabilities: drop: ["ALL"]` (ctr knows no ALL), with its readOnlyRootFilesystem.
DEFAULT_CAPABILITIES = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
]
SYNCER_SECURITY = ["--read-only", *[a for c in DEFAULT_CAPABILITIES for a in ("--cap-drop", f"CAP_{c}")]]


@pytest.fixture(scope="module")
def node_image() -> Path:
    return packaged_release("ctd-decoder-node-*.oci.tar")


@pytest.fixture
def runner(tools: None, node_image: Path) -> Iterator[tuple[Containerd, str]]:
    """The containerd that runs the node image (the kubelet's, in a cluster), with the image imported."""
    base = short_tempdir("ctd-run-")
    with running(Containerd(base / "cd", []), base) as containerd:
        out = containerd.ctr("default", "images", "import", str(node_image)).stdout.decode()
        assert f"{IMAGE}:" in out, out
        listed = containerd.ctr("default", "images", "ls", "-q").stdout.decode().split()
        (name,) = [n for n in listed if n.startswith(f"{IMAGE}:")]
        yield containerd, name


@pytest.fixture
def host(tools: None, registry: Registry) -> Iterator[FakeHost]:
    fake = start_fake_host(registry)
    (fake.root / "usr/local").mkdir(parents=True)  # a node has /usr/local (hostPath type Directory)
    yield fake
    fake.stop()


def mounts(host: FakeHost, secret: Path) -> list[str]:
    """The DaemonSet's volumes as ``ctr run --mount`` options: the hostPaths, the Secret, and the hook."""
    options = []
    for host_path in paths.host_mounts(paths.Flavour.CONTAINERD):
        source = host.root / host_path.lstrip("/")
        options += ["--mount", f"type=bind,src={source},dst={paths.HostLayout().local(host_path)},options=rbind:rw"]
    options += ["--mount", f"type=bind,src={secret},dst={paths.SECRET_DIR},options=rbind:ro"]
    options += ["--mount", f"type=bind,src={host.hooks},dst=/hooks,options=rbind:rw"]
    return options


def mounts_of_syncer(host: FakeHost, secret: Path) -> list[str]:
    """The key-sync container's volumes: its hostPaths and the Secret, nothing else."""
    options = []
    for host_path in paths.keysync_mounts():
        source = host.root / host_path.lstrip("/")
        options += ["--mount", f"type=bind,src={source},dst={paths.HostLayout().local(host_path)},options=rbind:rw"]
    return [*options, "--mount", f"type=bind,src={secret},dst={paths.SECRET_DIR},options=rbind:ro"]


def ctr_run(
    runner: tuple[Containerd, str], host: FakeHost, secret: Path, *command: str
) -> subprocess.CompletedProcess[str]:
    containerd, image = runner
    ctr = require_tool("ctr", "containerd")
    argv = [ctr, "-a", containerd.socket, "-n", "default", "run", "--rm", *mounts(host, secret), image]
    return subprocess.run(
        [*argv, f"node-{uuid.uuid4().hex[:8]}", *command], capture_output=True, text=True, timeout=600
    )


def node_command(action: str, host: FakeHost) -> list[str]:
    return [OCICRYPT, "node", action, "--host-prefix", str(host.root), "--host-exec", "/hooks/host-exec"]


def test_node_image_installs_syncs_and_uninstalls(
    runner: tuple[Containerd, str], host: FakeHost, registry: Registry, node_image: Path, tmp_path: Path
) -> None:
    # The image is an oci-archive skopeo pushes as it is.
    pushed = f"{registry.host}/{IMAGE}:{uuid.uuid4().hex[:8]}"
    skopeo("copy", "-q", "--dest-tls-verify=false", f"oci-archive:{node_image}", f"docker://{pushed}")
    inspected = skopeo("inspect", "--tls-verify=false", f"docker://{pushed}").stdout
    assert '"Architecture"' in inspected

    alpha, _ = jwe_recipient(tmp_path / "alpha", "alpha.pem")
    beta, _ = jwe_recipient(tmp_path / "beta", "beta.pem", password=b"beta's password")
    secret = tmp_path / "secret"
    kubernetes_secret_volume(secret, alpha.key_files)
    before = host.snapshot()
    original = host.config.read_bytes()
    image_alpha = push_encrypted(registry, tmp_path, [alpha], small_layers(2))
    image_beta = push_encrypted(registry, tmp_path, [beta], small_layers(2))
    outputs: list[str] = []

    done = ctr_run(runner, host, secret, *node_command("install", host), "--secret-dir", paths.SECRET_DIR)
    outputs.append(done.stdout + done.stderr)
    assert done.returncode == 0, outputs[-1]
    assert "strategy imports" in done.stdout and "config: updated" in done.stdout, done.stdout
    assert "doctor: exit 0" in done.stdout, done.stdout
    assert host.restarts == 1
    installed = host.root / paths.DECODER.lstrip("/")
    assert installed.resolve().parent == host.root / paths.BUNDLE_DIR.lstrip("/")
    assert (host.root / KEYS / "alpha.pem").stat().st_mode & 0o777 == 0o600
    pull(host, image_alpha)
    # containerd ran the packaged bundle the image installed (the doctor ran it too).
    assert any(argv[:2] == [str(host.root) + paths.OCICRYPT_TOOL, "doctor"] for argv in host.commands), host.commands

    mid = host.snapshot()
    again = ctr_run(runner, host, secret, *node_command("install", host), "--secret-dir", paths.SECRET_DIR)
    outputs.append(again.stdout + again.stderr)
    assert again.returncode == 0, outputs[-1]
    assert "config: unchanged" in again.stdout and "bundle: unchanged" in again.stdout and "no restart" in again.stdout
    assert host.restarts == 1
    assert host.snapshot() == mid

    # The DaemonSet's resident container, without capabilities and with a read-only root: the image's
    # key syncer follows the kubelet's ..data swap.
    containerd, image = runner
    syncer = f"key-sync-{uuid.uuid4().hex[:8]}"
    sync = [OCICRYPT, "node", "sync-keys", "--watch", "--interval", "0.2", "--secret-dir", paths.SECRET_DIR]
    containerd.ctr("default", "run", "-d", *SYNCER_SECURITY, *mounts_of_syncer(host, secret), image, syncer, *sync)
    try:
        assert "is not a recipient" in pull_error(host, image_beta)
        update_secret_volume(secret, {**alpha.key_files, **beta.key_files})
        wait_for(lambda: (host.root / KEYS / "beta.pem.password").exists(), "the syncer in the image wrote beta's key")
        pull(host, image_beta)
    finally:
        containerd.ctr("default", "task", "kill", "-s", "SIGKILL", syncer)
        wait_for(lambda: "STOPPED" in containerd.ctr("default", "task", "ls").stdout.decode(), "the syncer stopped")
        containerd.ctr("default", "task", "delete", syncer)
        containerd.ctr("default", "container", "delete", syncer)

    removed = ctr_run(runner, host, secret, *node_command("uninstall", host))
    outputs.append(removed.stdout + removed.stderr)
    assert removed.returncode == 0, outputs[-1]
    assert host.restarts == 2
    assert host.config.read_bytes() == original
    assert host.snapshot() == before
    assert_no_secret("\n".join(outputs), [*alpha.key_files.values(), *beta.key_files.values()])
