"""``ocicrypt doctor`` against running private containerd daemons (both lines): it reads the real
process (``/proc/<pid>/environ`` for the PATH check, ``/proc/<pid>/exe`` for the version), and its
verdict agrees with what a CRI pull then does: right key, wrong key, the decoder missing from
containerd's PATH, and containerd 2.x pulling through the transfer service.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.doctor import Doctor, run_doctor
from support.e2e.client import rpc_error
from support.e2e.daemons import (
    CONTAINERD_2_LINE,
    PROCESSOR_TAR,
    PROCESSOR_TAR_GZIP,
    Containerd,
    Registry,
    decoder_processors,
    remove_tree,
)
from support.e2e.node import DEFAULT_LAYERS, Image, Node, encrypt_image, push_layout
from support.e2e.schemes import Recipient
from support.tempdirs import short_tempdir

Make = Callable[[str], Recipient]
LAYERS = DEFAULT_LAYERS[:1]


def doctor_node(config: Path, image: Path | None = None) -> Doctor:
    args: list[str | Path] = ["--containerd-config", config]
    if image is not None:
        args += ["--image", f"oci:{image}:v1"]
    return run_doctor(*args)


def encrypted_image(registry: Registry, tmp_path: Path, recipient: Recipient) -> tuple[Image, Path]:
    plain, encrypted = encrypt_image(tmp_path, [recipient], LAYERS)
    return Image(push_layout(registry, encrypted), plain, LAYERS), encrypted


def test_doctor_and_cri_pull_agree_on_the_right_key(
    pip_decoder: str, registry: Registry, nodes: Callable[..., Node], recipients: Make, tmp_path: Path
) -> None:
    recipient = recipients("jwe-rsa2048")
    image, layout = encrypted_image(registry, tmp_path, recipient)
    node = nodes(pip_decoder, registry, recipient.key_files)
    result = doctor_node(node.containerd.directory / "config.toml", layout)
    assert node.containerd.process is not None
    assert f"pid {node.containerd.process.pid}" in result.one("containerd.process", "ok")["message"]
    expected = "1.6.20" if node.version == "1.6" else "2.3.4"
    assert expected in result.one("containerd.version", "ok")["message"]
    assert result.one("image.summary", "ok")
    assert result.returncode == 0, result.errors()
    node.pull_and_verify(image)


def test_doctor_and_cri_pull_agree_on_a_wrong_key(
    pip_decoder: str, registry: Registry, nodes: Callable[..., Node], recipients: Make, tmp_path: Path
) -> None:
    right, wrong = recipients("jwe-p256"), recipients("jwe-p256")
    image, layout = encrypted_image(registry, tmp_path, right)
    node = nodes(pip_decoder, registry, wrong.key_files)
    result = doctor_node(node.containerd.directory / "config.toml", layout)
    layer = result.one("image.layer", "error")
    assert result.returncode == 1
    text = rpc_error(lambda: node.client("k8s.io").pull_image(image.ref))
    assert "none of the private keys could be used" in layer["message"]
    assert "none of the private keys could be used" in text, text


@pytest.mark.parametrize("recovery", ["on", "off"])
@pytest.mark.parametrize("containerd_version", [CONTAINERD_2_LINE], ids=lambda v: f"containerd-{v}")
def test_doctor_and_cri_pull_agree_on_the_transfer_service(
    recovery: str, pip_decoder: str, registry: Registry, nodes: Callable[..., Node], recipients: Make, tmp_path: Path
) -> None:
    """The transfer service sends no payload: with descriptor recovery the doctor says so as information and
    the pull decrypts; with recovery off the doctor fails and so does the pull."""
    from ctd_decoder.decoder.recovery.switch import RECOVERY_ENV

    recipient = recipients("jwe-rsa2048")
    image, layout = encrypted_image(registry, tmp_path, recipient)
    env = {RECOVERY_ENV: "off"} if recovery == "off" else {}
    node = nodes(pip_decoder, registry, recipient.key_files, env, local_pull=False)
    result = doctor_node(node.containerd.directory / "config.toml", layout)
    if recovery == "on":
        assert "descriptor recovery" in result.one("cri.use_local_image_pull", "ok")["message"]
        node.client("k8s.io").pull_image(image.ref)
        node.assert_decoded_once_per_layer(image, payload=False)
        return
    finding = result.one("cri.use_local_image_pull", "error")
    assert "use_local_image_pull = true" in finding["fix"] and RECOVERY_ENV in finding["fix"]
    assert result.returncode == 1
    text = rpc_error(lambda: node.client("k8s.io").pull_image(image.ref))
    assert "read payload" in text and "descriptor recovery is turned off" in text, text


@pytest.fixture
def bare_name_node(
    registry: Registry, containerd_version: str, pip_decoder: str
) -> Iterator[Callable[[bool, dict[str, bytes]], Containerd]]:
    """A containerd whose processors name the decoder as plain ``ctd-decoder``, with or without its
    directory on containerd's own PATH."""
    started: list[tuple[Containerd, Path]] = []

    def start(decoder_on_path: bool, key_files: dict[str, bytes]) -> Containerd:
        base = short_tempdir("ctd-doctor-")
        keys = base / "keys"
        keys.mkdir(mode=0o700)
        for name, data in key_files.items():
            (keys / name).write_bytes(data)
            (keys / name).chmod(0o600)
        directories = ["/usr/local/sbin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        if decoder_on_path:
            directories.insert(0, os.path.dirname(pip_decoder))
        processors = decoder_processors("ctd-decoder", keys, ids=(PROCESSOR_TAR_GZIP, PROCESSOR_TAR))
        daemon = Containerd(
            base / "cd", processors, [registry.host], env={"PATH": ":".join(directories)}, version=containerd_version
        )
        try:
            daemon.start()
        except BaseException:  # also pytest.skip (a 2.3 node without its binary)
            remove_tree(base)
            raise
        started.append((daemon, base))
        return daemon

    yield start
    for daemon, base in started:
        daemon.stop()
        remove_tree(base)


@pytest.mark.parametrize("containerd_version", ["1.6", CONTAINERD_2_LINE], ids=lambda v: f"containerd-{v}")
@pytest.mark.parametrize("decoder_on_path", [True, False], ids=["on-path", "not-on-path"])
def test_path_check_reads_the_running_containerd_and_agrees_with_a_pull(
    decoder_on_path: bool,
    bare_name_node: Callable[[bool, dict[str, bytes]], Containerd],
    registry: Registry,
    recipients: Make,
    tmp_path: Path,
) -> None:
    recipient = recipients("jwe-rsa2048")
    image, _ = encrypted_image(registry, tmp_path, recipient)
    daemon = bare_name_node(decoder_on_path, recipient.key_files)
    assert daemon.process is not None
    result = doctor_node(daemon.directory / "config.toml")
    paths = result.of("containerd.processor.path")
    assert len(paths) == 2, result.findings  # one per processor entry
    assert all(f"/proc/{daemon.process.pid}/environ" in f["message"] for f in paths), paths
    from support.e2e.client import ContainerdClient

    with ContainerdClient(daemon.socket, "k8s.io") as client:
        if decoder_on_path:
            assert all(f["status"] == "ok" for f in paths), paths
            client.pull_image(image.ref)
        else:
            assert all(f["status"] == "error" and "absolute path" in f["fix"] for f in paths), paths
            text = rpc_error(lambda: client.pull_image(image.ref))
            # 1.6.20 says "ctd-decoder resolves to executable in current directory", 2.3.4 "executable file
            # not found in $PATH": either way containerd could not start the processor.
            assert "failed to get stream processor" in text and "ctd-decoder" in text, text


@pytest.mark.parametrize("containerd_version", ["1.6"], ids=lambda v: f"containerd-{v}")
@pytest.mark.parametrize("scheme", ["jwe-rsa2048", "pkcs7-rsa"])
def test_doctor_on_a_go_encrypted_archive_agrees_with_a_pull(
    scheme: str, pip_decoder: str, registry: Registry, nodes: Callable[..., Node], recipients: Make, tmp_path: Path
) -> None:
    """An oci-archive encrypted by the Go toolchain (skopeo 1.9.3, ocicrypt 1.0.3): the doctor checks it
    against a node with the right key (which then pulls it) and one with a wrong key."""
    from support.oci import make_layout, skopeo

    right, wrong = recipients(scheme), recipients(scheme)
    plain = tmp_path / "plain"
    make_layout(plain, LAYERS)
    exported = tmp_path / "enc.tar"
    keys = [arg for key in right.encryption_keys for arg in ("--encryption-key", key)]
    skopeo("copy", "-q", *keys, f"oci:{plain}:v1", f"oci-archive:{exported}:v1")

    good = nodes(pip_decoder, registry, right.key_files)
    verdict = run_doctor(
        "--containerd-config", good.containerd.directory / "config.toml", "--image", f"oci-archive:{exported}"
    )
    assert verdict.one("image.summary", "ok") and verdict.returncode == 0, verdict.errors()
    ref = f"{registry.host}/e2e/go-{scheme}:v1"
    skopeo("copy", "-q", "--dest-tls-verify=false", f"oci-archive:{exported}", f"docker://{ref}")
    good.pull_and_verify(Image(ref, plain, LAYERS))

    bad = nodes(pip_decoder, registry, wrong.key_files)
    verdict = run_doctor(
        "--containerd-config", bad.containerd.directory / "config.toml", "--image", f"oci-archive:{exported}"
    )
    assert verdict.one("image.summary", "error") and verdict.returncode == 1
