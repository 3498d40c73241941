"""The node-ready package: install.sh stages the packaged executable, and the shipped containerd
config snippet, pointed at that staged tree, decrypts a CRI pull; the release tarball holds what a node
needs; the Debian package installs with apt-get, decrypts through containerd's built-in entries and
removes cleanly."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support.snippets import (
    INSTALLED_DECODER,
    PACKAGING,
    REPO,
    SNIPPETS,
    check_processors,
    load_snippet,
    snippet_for_node,
)
from support.tempdirs import short_tempdir

from .client import ContainerdClient
from .daemons import Containerd, Registry, remove_tree
from .node import ZSTD, push_encrypted, verify_pulled
from .packaged import packaged_release
from .schemes import Recipient


def run_install(
    *args: str, env: dict[str, str] | None = None, script: Path = PACKAGING / "install.sh"
) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash, "bash is needed for packaging/install.sh"
    return subprocess.run(
        [bash, str(script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_config_snippets_register_both_payload_ids_and_the_node_key_model() -> None:
    for name in SNIPPETS:
        config = load_snippet(name)
        check_processors(config)
        for processor in config["stream_processors"].values():
            assert processor["path"] == INSTALLED_DECODER
        plugins = config["plugins"]
        if name.endswith("v3"):
            assert plugins["io.containerd.cri.v1.images"]["image_decryption"]["key_model"] == "node"
        else:
            assert plugins["io.containerd.grpc.v1.cri"]["image_decryption"]["key_model"] == "node"
    v3 = load_snippet("containerd-v3")
    assert v3["plugins"]["io.containerd.cri.v1.images"]["use_local_image_pull"] is True


def test_install_script_then_shipped_config_decrypts_a_cri_pull(
    packaged_decoder: str, registry: Registry, recipients: Callable[[str], Recipient], tmp_path: Path
) -> None:
    recipient = recipients("jwe-rsa2048")
    stage = short_tempdir("ctd-stage-")
    containerd: Containerd | None = None
    try:
        kp_config = tmp_path / "ocicrypt_keyprovider.conf"
        kp_config.write_text('{"key-providers": {}}\n')
        result = run_install(
            "--from",
            str(Path(packaged_decoder).parent),
            "--keyprovider-config",
            str(kp_config),
            env={"DESTDIR": str(stage)},
        )
        assert result.returncode == 0, result.stderr
        exe = stage / "usr/local/bin/ctd-decoder"
        assert exe.is_symlink() and os.readlink(exe) == "../lib/ctd-decoder/ctd-decoder"
        keys = stage / "etc/containerd/ocicrypt/keys"
        assert stat.S_IMODE(keys.stat().st_mode) == 0o700
        assert (stage / "etc/containerd/ocicrypt/ocicrypt_keyprovider.conf").read_text() == kp_config.read_text()
        # Installing again replaces the bundle and keeps the keys.
        (keys / "node.pem").write_bytes(recipient.key_files["jwe-rsa2048.pem"])
        again = run_install("--from", str(Path(packaged_decoder).parent), "--destdir", str(stage))
        assert again.returncode == 0, again.stderr
        assert (keys / "node.pem").exists()

        snippet = snippet_for_node("containerd-v2", str(exe), stage / "etc/containerd/ocicrypt")
        image = push_encrypted(registry, tmp_path, [recipient])
        containerd = Containerd(
            stage / "containerd", [], [registry.host], extra_toml="\n" + snippet, image_decryption=False
        )
        containerd.start()
        with ContainerdClient(containerd.socket, "k8s.io") as client:
            client.pull_image(image.ref)
            verify_pulled(client, image)
    finally:
        if containerd is not None:
            print(containerd.log_tail())
            containerd.stop()
        remove_tree(stage)


def test_install_script_refuses_a_missing_bundle(tmp_path: Path) -> None:
    result = run_install("--from", str(tmp_path / "nothing"), "--destdir", str(tmp_path / "stage"))
    assert result.returncode == 1
    assert "run packaging/build.sh first" in result.stderr
    assert not (tmp_path / "stage" / "usr").exists()


# Every component the bundle redistributes whose licence must travel with it (see packaging/licenses.py).
LICENSED = [
    "cryptography",
    "grpcio",
    "protobuf",
    "pyyaml",
    "python-gnupg",
    "python-pkcs11",
    "pyinstaller",
    "debian-libpython3.11",
    "debian-libssl3",
    "debian-libstdc++6",
]
KEYS_DIR = Path("/etc/containerd/ocicrypt/keys")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # systemd's default


def check_licences(directory: Path) -> None:
    index = (directory / "README").read_text()
    for name in LICENSED:
        assert any((directory / name).iterdir()), f"no licence text for {name}"
        assert f"\n{name.removeprefix('debian-')} " in index, name
    assert "PYTHON SOFTWARE FOUNDATION LICENSE" in (directory / "debian-libpython3.11" / "copyright").read_text()
    assert "OpenSSL" in (directory / "debian-libssl3" / "copyright").read_text()


def test_release_tarball_holds_the_installer_snippets_readme_and_licences(tmp_path: Path) -> None:
    archive = packaged_release("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert {m.uname for m in tar.getmembers()} == {"root"}
        tar.extractall(tmp_path, filter="data")
    assert {name.split("/")[0] for name in names} == {archive.name.removesuffix(".tar.gz")}
    root = tmp_path / archive.name.removesuffix(".tar.gz")
    assert (root / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    assert (root / "README.md").read_text() == (PACKAGING / "NODE-README.md").read_text()
    assert (root / "config.toml.example").read_text() == (REPO / "config.toml.example").read_text()
    for path in SNIPPETS.values():
        relative = path.relative_to(PACKAGING)
        assert (root / relative).read_text() == path.read_text(), relative
    check_licences(root / "ctd-decoder" / "licenses")

    # install.sh run from the unpacked tarball finds the bundle beside it.
    stage = tmp_path / "stage"
    result = run_install("--destdir", str(stage), script=root / "install.sh")
    assert result.returncode == 0, result.stderr
    assert f"{root}/containerd/config-v2.toml" in result.stdout
    exe = stage / "usr/local/bin/ctd-decoder"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("ctd-decoder version "), version
    check_licences(stage / "usr/local/lib/ctd-decoder/licenses")


def apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", "-y", *args], capture_output=True, text=True, env=env, timeout=600)


def test_deb_installs_with_apt_get_decrypts_with_containerd_defaults_and_removes_cleanly(
    registry: Registry, recipients: Callable[[str], Recipient], tmp_path: Path
) -> None:
    """On the machine itself: containerd 1.6.20 with its built-in stream processors (no configuration),
    started before the package is installed, decrypts a CRI pull once ``apt-get install`` has put
    ``/usr/bin/ctd-decoder`` on its PATH; the package's containerd snippet, as installed, decrypts a zstd
    image; ``apt-get remove`` then leaves only the keys still in use."""
    deb = packaged_release("*.deb")
    installed_before = subprocess.run(["dpkg-query", "-W", "ctd-decoder"], capture_output=True, text=True)
    if installed_before.returncode == 0 or Path("/usr/bin/ctd-decoder").exists() or KEYS_DIR.exists():
        pytest.fail("ctd-decoder or /etc/containerd/ocicrypt/keys is already on this machine: this test installs it")
    recipient = recipients("jwe-rsa2048")
    image = push_encrypted(registry, tmp_path, [recipient])
    base = short_tempdir("ctd-deb-")
    containerd = Containerd(base / "cd", [], [registry.host], env={"PATH": SYSTEM_PATH})
    key = KEYS_DIR / f"e2e-{uuid.uuid4().hex[:8]}.pem"
    installed = False
    try:
        containerd.start()
        result = apt_get("install", str(deb))
        installed = result.returncode == 0
        assert installed, result.stdout + result.stderr
        assert os.readlink("/usr/bin/ctd-decoder") == "../lib/ctd-decoder/ctd-decoder"
        assert stat.S_IMODE(KEYS_DIR.stat().st_mode) == 0o700
        docs = Path("/usr/share/doc/ctd-decoder")
        assert (docs / "copyright").is_file() and (docs / "README.md").is_file()
        for path in SNIPPETS.values():
            example = (docs / "examples" / path.relative_to(PACKAGING)).read_text()
            assert example == path.read_text().replace(INSTALLED_DECODER, "/usr/bin/ctd-decoder"), path
        check_licences(Path("/usr/lib/ctd-decoder/licenses"))

        key.write_bytes(recipient.key_files["jwe-rsa2048.pem"])
        key.chmod(0o600)
        with ContainerdClient(containerd.socket, "k8s.io") as client:
            client.pull_image(image.ref)
            verify_pulled(client, image)
        # zstd layers need the shipped snippet: the package's copy, as it is, on a second containerd.
        snippet = (docs / "examples/containerd/config-v2.toml").read_text().replace("version = 2\n", "")
        zstd_node = Containerd(base / "cd-zstd", [], [registry.host], extra_toml="\n" + snippet, image_decryption=False)
        zstd_image = push_encrypted(registry, tmp_path, [recipient], None, ZSTD)
        zstd_node.start()
        try:
            with ContainerdClient(zstd_node.socket, "k8s.io") as client:
                client.pull_image(zstd_image.ref)
                verify_pulled(client, zstd_image)
        finally:
            zstd_node.stop()

        removed = apt_get("remove", "ctd-decoder")
        installed = removed.returncode != 0
        assert not installed, removed.stdout + removed.stderr
        assert f"directory '{KEYS_DIR}' not empty so not removed" in removed.stdout + removed.stderr
        assert key.is_file(), "removing the package must keep the node's keys"
        for path in ("/usr/bin/ctd-decoder", "/usr/lib/ctd-decoder", "/usr/share/doc/ctd-decoder"):
            assert not os.path.lexists(path), path
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "ctd-decoder"], capture_output=True, text=True)
        assert "installed" not in status.stdout.replace("not-installed", ""), status.stdout
    finally:
        if installed:
            apt_get("remove", "ctd-decoder")
        key.unlink(missing_ok=True)
        for directory in (KEYS_DIR, KEYS_DIR.parent):  # what the package created, if it is empty now
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        print(containerd.log_tail())
        containerd.stop()
        remove_tree(base)
