"""The node-ready package: install.sh stages the packaged executable, and the shipped containerd
config snippet, pointed at that staged tree, decrypts a CRI pull."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

from .client import ContainerdClient
from .daemons import Containerd, Registry, remove_tree, short_tempdir
from .node import push_encrypted, verify_pulled
from .packaged import REPO
from .schemes import Recipient

PACKAGING = REPO / "packaging"
SNIPPETS = {
    "containerd-v2": PACKAGING / "containerd" / "config-v2.toml",
    "containerd-v3": PACKAGING / "containerd" / "config-v3.toml",
    "k3s-v2": PACKAGING / "k3s" / "config.toml.tmpl",
    "k3s-v3": PACKAGING / "k3s" / "config-v3.toml.tmpl",
}
BASE_TEMPLATE_LINE = '{{ template "base" . }}'
DECODER_IDS = {"io.containerd.ocicrypt.decoder.v1.tar.gzip", "io.containerd.ocicrypt.decoder.v1.tar"}


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


def load_snippet(name: str) -> dict[str, object]:
    text = SNIPPETS[name].read_text()
    if name.startswith("k3s"):
        first, _, rest = text.partition("\n")
        assert first == BASE_TEMPLATE_LINE
        assert "{{" not in rest, "Go template syntax in the rest would be executed by k3s (comments too)"
        text = rest
    return tomllib.loads(text)


def test_config_snippets_register_both_payload_ids_and_the_node_key_model() -> None:
    for name in SNIPPETS:
        config = load_snippet(name)
        processors = config["stream_processors"]
        assert isinstance(processors, dict)
        assert set(processors) == DECODER_IDS, name
        for processor in processors.values():
            assert processor["path"] == "/usr/local/bin/ctd-decoder"
            assert processor["args"] == ["--decryption-keys-path", "/etc/containerd/ocicrypt/keys"]
            assert processor["returns"] + "+encrypted" == processor["accepts"][0]
        plugins = config["plugins"]
        assert isinstance(plugins, dict)
        if name.endswith("v3"):
            assert plugins["io.containerd.cri.v1.images"]["image_decryption"]["key_model"] == "node"
        else:
            assert plugins["io.containerd.grpc.v1.cri"]["image_decryption"]["key_model"] == "node"
    v3 = load_snippet("containerd-v3")
    assert v3["plugins"]["io.containerd.cri.v1.images"]["use_local_image_pull"] is True  # type: ignore[index]


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

        snippet = SNIPPETS["containerd-v2"].read_text()
        snippet = snippet.replace("/usr/local/bin/ctd-decoder", str(exe))
        snippet = snippet.replace("/etc/containerd/ocicrypt", str(stage / "etc/containerd/ocicrypt"))
        snippet = snippet.replace("version = 2\n", "")
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
