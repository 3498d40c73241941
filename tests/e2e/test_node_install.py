"""``ocicrypt node`` on a temporary host root with Debian's containerd 1.6.20: install edits that
containerd's config and restarts it through the init-system hook, the CRI then pulls encrypted images
with the keys synced from a Secret volume the kubelet way, a second install changes nothing, and
uninstall restores the host byte for byte. (The node image runs the same in test_node_image.py.)
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from support.keygen import new_key, private_pem, public_pem
from support.secrets import kubernetes_secret_volume, update_secret_volume

from .client import ContainerdClient
from .daemons import Registry, stop_process
from .hostroot import FakeHost, fake_bundle, start_fake_host
from .node import Image, push_encrypted, small_layers, verify_pulled
from .schemes import Recipient

KEYS = "etc/containerd/ocicrypt/keys"
DROPIN = "etc/containerd/conf.d/90-ctd-decoder.toml"


@pytest.fixture
def host(tools: None, registry: Registry) -> Iterator[FakeHost]:
    fake = start_fake_host(registry)
    yield fake
    fake.stop()


def jwe_recipient(directory: Path, name: str, password: bytes | None = None) -> tuple[Recipient, object]:
    """A JWE recipient whose private key file is ``name`` (encrypted with ``password`` if given)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = new_key("p256")
    public = directory / f"{name}.pub"
    public.write_bytes(public_pem(key))
    files = {name: private_pem(key, password=password)}
    if password:
        files[f"{name}.password"] = password + b"\n"
    return Recipient("jwe", files, {}, encryption_keys=[f"jwe:{public}"]), key


def node_cli(host: FakeHost, action: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``ocicrypt node ACTION`` with the host root and hook of ``host``."""
    args = ["--host-root", str(host.root), "--host-prefix", str(host.root)]
    if action != "status" and action != "sync-keys":
        args += ["--host-exec", str(host.hook)]
    return subprocess.run([OCICRYPT, "node", action, *args, *extra], capture_output=True, text=True, timeout=300)


OCICRYPT = ""


@pytest.fixture(autouse=True)
def _ocicrypt(pip_decoder: str) -> None:
    global OCICRYPT
    OCICRYPT = str(Path(pip_decoder).with_name("ocicrypt"))


def pull(host: FakeHost, image: Image) -> None:
    with ContainerdClient(host.containerd.socket, "k8s.io") as client:
        client.pull_image(image.ref)
        verify_pulled(client, image)


def pull_error(host: FakeHost, image: Image) -> str:
    with ContainerdClient(host.containerd.socket, "k8s.io") as client, pytest.raises(grpc.RpcError) as info:
        client.pull_image(image.ref)
    error = info.value
    return str(error.details()) if isinstance(error, grpc.Call) else str(error)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


def assert_no_secret(text: str, secrets: list[bytes]) -> None:
    for secret in secrets:
        for line in secret.decode().strip().splitlines()[1:-1] or [secret.decode().strip()]:
            assert line not in text, "key material in the output"


def test_install_sync_rotate_revoke_uninstall(
    host: FakeHost, registry: Registry, pip_decoder: str, tmp_path: Path
) -> None:
    alpha, _ = jwe_recipient(tmp_path / "alpha", "alpha.pem")
    beta, beta_key = jwe_recipient(tmp_path / "beta", "beta.pem", password=b"first password")
    admin, _ = jwe_recipient(tmp_path / "admin", "admin.pem")
    (host.root / KEYS).mkdir(parents=True, mode=0o700)
    (host.root / KEYS / "admin.pem").write_bytes(admin.key_files["admin.pem"])  # the operator's own key
    before = host.snapshot()
    original = host.config.read_bytes()
    bundle = fake_bundle(tmp_path / "bundle", pip_decoder)
    secret = tmp_path / "secret"
    kubernetes_secret_volume(secret, alpha.key_files)
    image_alpha = push_encrypted(registry, tmp_path, [alpha], small_layers(2))
    image_beta = push_encrypted(registry, tmp_path, [beta], small_layers(2))
    outputs: list[str] = []

    done = node_cli(host, "install", "--bundle", str(bundle), "--secret-dir", str(secret))
    outputs.append(done.stdout + done.stderr)
    assert done.returncode == 0, outputs[-1]
    assert "strategy imports" in done.stdout and "config: updated" in done.stdout, done.stdout
    assert "doctor: exit 0" in done.stdout, done.stdout
    assert host.restarts == 1
    assert host.config.read_bytes() != original
    assert (host.root / DROPIN).is_file()
    assert (host.root / KEYS / "alpha.pem").stat().st_mode & 0o777 == 0o600
    assert (host.root / KEYS).stat().st_mode & 0o777 == 0o700
    pull(host, image_alpha)

    # A second install: nothing written, nothing restarted.
    mid = host.snapshot()
    again = node_cli(host, "install", "--bundle", str(bundle), "--secret-dir", str(secret))
    outputs.append(again.stdout + again.stderr)
    assert again.returncode == 0, outputs[-1]
    assert "config: unchanged" in again.stdout and "bundle: unchanged" in again.stdout, again.stdout
    assert "no restart" in again.stdout
    assert host.restarts == 1
    assert host.snapshot() == mid
    status = node_cli(host, "status")
    assert status.returncode == 0 and "strategy imports" in status.stdout, status.stdout

    # The resident syncer follows the kubelet's ..data swaps.
    root = str(host.root)
    watch = ["--secret-dir", str(secret), "--watch", "--interval", "0.2"]
    syncer = subprocess.Popen(
        [OCICRYPT, "node", "sync-keys", "--host-root", root, "--host-prefix", root, *watch],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # A key added to the Secret is used by the next pull.
        assert "is not a recipient" in pull_error(host, image_beta)
        update_secret_volume(secret, {**alpha.key_files, **beta.key_files})
        wait_for(lambda: (host.root / KEYS / "beta.pem.password").exists(), "beta's key is synced")
        pull(host, image_beta)

        # A password change (the key re-encrypted, its .password replaced) is picked up.
        second = {
            "beta.pem": private_pem(beta_key, password=b"second password"),  # type: ignore[arg-type]
            "beta.pem.password": b"second password\n",
        }
        update_secret_volume(secret, {**alpha.key_files, **second})
        wait_for(
            lambda: (host.root / KEYS / "beta.pem.password").read_bytes() == second["beta.pem.password"], "rotation"
        )
        image_beta2 = push_encrypted(registry, tmp_path, [beta], small_layers(2))
        pull(host, image_beta2)

        # A key removed from the Secret is removed from the host: the next pull fails with the key diagnostic.
        update_secret_volume(secret, second)
        wait_for(lambda: not (host.root / KEYS / "alpha.pem").exists(), "alpha's key is revoked")
        image_alpha2 = push_encrypted(registry, tmp_path, [alpha], small_layers(2))
        text = pull_error(host, image_alpha2)
        assert "call to DecryptLayer failed" in text and "is not a recipient" in text, text
        assert (host.root / KEYS / "admin.pem").read_bytes() == admin.key_files["admin.pem"]
    finally:
        stop_process(syncer)  # type: ignore[arg-type]
    assert syncer.stdout is not None
    outputs.append(syncer.stdout.read().decode())
    assert "key removed (no longer in the Secret)" in outputs[-1], outputs[-1]

    removed = node_cli(host, "uninstall")
    outputs.append(removed.stdout + removed.stderr)
    assert removed.returncode == 0, outputs[-1]
    assert host.restarts == 2
    assert host.config.read_bytes() == original
    assert host.snapshot() == before
    secrets = [*alpha.key_files.values(), *beta.key_files.values(), *second.values(), admin.key_files["admin.pem"]]
    assert_no_secret("\n".join(outputs), secrets)
    assert not any("password" in arg for argv in host.commands for arg in argv)
