"""``ocicrypt node`` on a temporary host root with Debian's containerd 1.6.20: install edits that
containerd's config and restarts it through the init-system hook, the CRI then pulls encrypted images
with the keys synced from a Secret volume the kubelet way, a second install changes nothing, and
uninstall restores the host byte for byte. (The node image runs the same in test_node_image.py.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.e2e.daemons import Registry, stop_process
from support.e2e.hostroot import (
    KEYS,
    FakeHost,
    assert_no_secret,
    fake_bundle,
    jwe_recipient,
    pull,
    pull_error,
    start_fake_host,
    wait_for,
)
from support.e2e.node import push_encrypted, small_layers
from support.keygen import private_pem
from support.secrets import kubernetes_secret_volume, update_secret_volume

from ctd_decoder.tools.node.paths import DROPIN_NAME, FLAVOURS, Flavour

DROPIN = "etc/containerd/conf.d/90-ctd-decoder.toml"


@pytest.fixture
def host(tools: None, registry: Registry) -> Iterator[FakeHost]:
    fake = start_fake_host(registry)
    yield fake
    fake.stop()


@pytest.fixture
def ocicrypt(pip_decoder: str) -> str:
    return str(Path(pip_decoder).with_name("ocicrypt"))


def node_cli(ocicrypt: str, host: FakeHost, action: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``ocicrypt node ACTION`` with the host root and hook of ``host``."""
    args = ["--host-root", str(host.root), "--host-prefix", str(host.root)]
    if action != "status" and action != "sync-keys":
        args += ["--host-exec", str(host.hook)]
    return subprocess.run([ocicrypt, "node", action, *args, *extra], capture_output=True, text=True, timeout=300)


def test_install_sync_rotate_revoke_uninstall(
    ocicrypt: str, host: FakeHost, registry: Registry, pip_decoder: str, tmp_path: Path
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

    done = node_cli(ocicrypt, host, "install", "--bundle", str(bundle), "--secret-dir", str(secret))
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
    again = node_cli(ocicrypt, host, "install", "--bundle", str(bundle), "--secret-dir", str(secret))
    outputs.append(again.stdout + again.stderr)
    assert again.returncode == 0, outputs[-1]
    assert "config: unchanged" in again.stdout and "bundle: unchanged" in again.stdout, again.stdout
    assert "no restart" in again.stdout
    assert host.restarts == 1
    assert host.snapshot() == mid
    status = node_cli(ocicrypt, host, "status")
    assert status.returncode == 0 and "strategy imports" in status.stdout, status.stdout

    # The resident syncer follows the kubelet's ..data swaps.
    root = str(host.root)
    watch = ["--secret-dir", str(secret), "--watch", "--interval", "0.2"]
    syncer = subprocess.Popen(
        [ocicrypt, "node", "sync-keys", "--host-root", root, "--host-prefix", root, *watch],
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

    removed = node_cli(ocicrypt, host, "uninstall")
    outputs.append(removed.stdout + removed.stderr)
    assert removed.returncode == 0, outputs[-1]
    assert host.restarts == 2
    assert host.config.read_bytes() == original
    assert host.snapshot() == before
    secrets = [*alpha.key_files.values(), *beta.key_files.values(), *second.values(), admin.key_files["admin.pem"]]
    assert_no_secret("\n".join(outputs), secrets)
    assert not any("password" in arg for argv in host.commands for arg in argv)


@pytest.mark.parametrize("flavour", [Flavour.K3S, Flavour.RKE2])
def test_k3s_drop_in_directory_install_pull_uninstall(
    flavour: Flavour, ocicrypt: str, tools: None, registry: Registry, pip_decoder: str, tmp_path: Path
) -> None:
    """k3s/RKE2 whose rendered config imports ``config.toml.d/*.toml`` (k3s#13680), with containerd
    1.6.20 reading that config as k3s's containerd would: the installer only adds a drop-in there,
    restarts the flavour's units, the CRI pulls with the synced key, and uninstall leaves no trace."""
    where = FLAVOURS[flavour]
    host = start_fake_host(registry, flavour=flavour, imports=f"{where.dropin_dir(2)}/*.toml")
    try:
        alpha, _ = jwe_recipient(tmp_path / "alpha", "alpha.pem")
        secret = tmp_path / "secret"
        kubernetes_secret_volume(secret, alpha.key_files)
        image = push_encrypted(registry, tmp_path, [alpha], small_layers(2))
        before = host.snapshot()
        bundle = fake_bundle(tmp_path / "bundle", pip_decoder)
        done = node_cli(ocicrypt, host, "install", "--bundle", str(bundle), "--secret-dir", str(secret))
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{flavour.value}: config version 2, strategy dropin" in done.stdout, done.stdout
        assert "doctor: exit 0" in done.stdout, done.stdout
        assert host.restarts == 1
        assert (host.root / where.dropin_dir(2).lstrip("/") / DROPIN_NAME).is_file()
        assert host.config.read_bytes() == before[str(host.config.relative_to(host.root))][1]
        pull(host, image)
        removed = node_cli(ocicrypt, host, "uninstall")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert host.restarts == 2
        assert host.snapshot() == before
    finally:
        host.stop()
