"""The node-ready package: install.sh stages the packaged executable, and the shipped containerd
config snippet, pointed at that staged tree, decrypts a CRI pull."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from support.snippets import INSTALLED_DECODER, PACKAGING, SNIPPETS, check_processors, load_snippet, snippet_for_node

from .client import ContainerdClient
from .daemons import Containerd, Registry, remove_tree, short_tempdir
from .node import push_encrypted, verify_pulled
from .schemes import Recipient


def run_install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash, "bash is needed for packaging/install.sh"
    return subprocess.run(
        [bash, str(PACKAGING / "install.sh"), *args],
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
