"""Descriptor recovery on real pulls that send no fd-3 payload: a plain ``ctr images pull`` and the CRI
with ``key_model = ""`` on Debian's containerd 1.6.20 (and the CRI's transfer-service pull of 2.x when
a 2.x is given). The decoder decrypts with the node's keys and the descriptor it finds in containerd's
content store; the layers must unpack to the image config's diff IDs.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import grpc
import pytest
from support.e2e.daemons import (
    CONTAINERD_1,
    PROCESSOR_TAR,
    PROCESSOR_TAR_GZIP,
    PROCESSOR_TAR_ZSTD,
    Registry,
    remove_tree,
)
from support.e2e.fixtures import ON_CONTAINERD_1
from support.e2e.node import Image, Node, chain_ids, encrypt_image, push_encrypted, small_layers, verify_pulled
from support.e2e.recovery import (
    assert_nothing_left,
    assert_nothing_secret,
    blobs_dir,
    ctr_pull,
    registry_blob,
    registry_layers,
)
from support.e2e.schemes import Recipient
from support.forged import forged_annotations
from support.keygen import new_key, private_pem, public_pem
from support.oci import skopeo
from support.tempdirs import short_tempdir
from support.warm import COLD_ENV, WarmServer

from ctd_decoder.decoder.recovery.switch import RECOVERY_ENV

NODE_KEY_SCHEMES = ("jwe-rsa2048", "pkcs7-rsa", "pgp-rsa", "pkcs11-softhsm")
KEY_DIAGNOSTIC = "call to DecryptLayer failed"
NO_PAYLOAD = "read payload: read configFd: bad file descriptor"


def _pulled_without_payload(node: Node, image: Image) -> None:
    verify_pulled(node.client("k8s.io"), image)
    node.assert_decoded_once_per_layer(image, payload=False)
    assert_nothing_left(node)


def _ctr_pull_ok(node: Node, image: Image) -> None:
    result = ctr_pull(node, image.ref)
    assert result.returncode == 0, result.stderr[-2000:]
    _pulled_without_payload(node, image)


def _ctr_pull_fails(node: Node, image: Image) -> subprocess.CompletedProcess[str]:
    result = ctr_pull(node, image.ref)
    assert result.returncode != 0
    return result


def _assert_not_unpacked(node: Node, image: Image) -> None:
    with pytest.raises(grpc.RpcError):
        node.client("k8s.io").stat("overlayfs", chain_ids(image.diff_ids)[0])


class Pushed(NamedTuple):
    """An image in the registry and the recipient it is encrypted for."""

    recipient: Recipient
    image: Image


@pytest.fixture
def one_layer(registry: Registry, recipients: Callable[[str], Recipient], tmp_path: Path) -> Pushed:
    """A one-layer image encrypted for ``jwe-rsa2048``, pushed to the registry."""
    recipient = recipients("jwe-rsa2048")
    return Pushed(recipient, push_encrypted(registry, tmp_path, [recipient], small_layers(1)))


@ON_CONTAINERD_1
@pytest.mark.parametrize("scheme", NODE_KEY_SCHEMES)
def test_ctr_pull_decrypts_with_node_keys_and_a_recovered_descriptor(
    scheme: str,
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    recipient = recipients(scheme)
    image = push_encrypted(registry, tmp_path, [recipient])
    node = nodes(pip_decoder, registry, recipient.key_files, recipient.decoder_env)
    _ctr_pull_ok(node, image)


@pytest.mark.parametrize("scheme", NODE_KEY_SCHEMES)
def test_cri_pull_without_payload_decrypts_with_node_keys(
    scheme: str,
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    containerd_version: str,
    tmp_path: Path,
) -> None:
    """1.6: the CRI with key_model = ""; 2.x: the transfer service (use_local_image_pull = false)."""
    recipient = recipients(scheme)
    image = push_encrypted(registry, tmp_path, [recipient])
    if containerd_version == CONTAINERD_1:
        node = nodes(pip_decoder, registry, recipient.key_files, recipient.decoder_env, key_model="")
    else:
        node = nodes(pip_decoder, registry, recipient.key_files, recipient.decoder_env, local_pull=False)
    node.client("k8s.io").pull_image(image.ref)
    _pulled_without_payload(node, image)


@ON_CONTAINERD_1
def test_warm_server_recovers_for_the_clients_parent(
    pip_decoder: str,
    small_client: Path,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    warm: WarmServer,
    tmp_path: Path,
) -> None:
    """``ctd-decoder`` itself and the small C client hand the layer to the server; its child finds the blob
    among those the client's parent (containerd) holds open."""
    recipient = recipients("jwe-rsa2048")
    first = push_encrypted(registry, tmp_path / "a", [recipient], small_layers(3))
    node = nodes(pip_decoder, registry, recipient.key_files, warm.env)
    _ctr_pull_ok(node, first)
    warm.wait_for_ok_layers(3)
    second = push_encrypted(registry, tmp_path / "b", [recipient], small_layers(3))
    node = nodes(str(small_client), registry, recipient.key_files, {**warm.env, COLD_ENV: pip_decoder})
    _ctr_pull_ok(node, second)
    lines = warm.wait_for_ok_layers(6)
    assert {line.split()[2] for line in lines[3:]} == {layer["digest"] for layer in registry_layers(second)}


@ON_CONTAINERD_1
def test_packaged_bundle_recovers_cold_and_through_its_small_client_and_warm_server(
    packaged_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    """The PyInstaller bundle on a plain ctr pull: run directly, then its small client handing the layers to
    the bundle running as ``ctd-decoder-warm`` (socket-activated, as its unit starts it)."""
    recipient = recipients("pgp-rsa")
    image = push_encrypted(registry, tmp_path / "cold", [recipient])
    node = nodes(packaged_decoder, registry, recipient.key_files, recipient.decoder_env)
    _ctr_pull_ok(node, image)
    base = short_tempdir("ctd-warm-pkg-")
    try:
        server_exe = base / "ctd-decoder-warm"
        server_exe.symlink_to(packaged_decoder)
        server = WarmServer(base / "run", command=[str(server_exe)])
        try:
            warm_image = push_encrypted(registry, tmp_path / "warm", [recipient], small_layers(3))
            client = str(Path(packaged_decoder).parent / "ctd-decoder-client")
            node = nodes(client, registry, recipient.key_files, {**recipient.decoder_env, **server.env})
            _ctr_pull_ok(node, warm_image)
            server.wait_for_ok_layers(3)
        finally:
            server.stop()
    finally:
        remove_tree(base)


@ON_CONTAINERD_1
def test_image_for_a_key_the_node_lacks_fails_with_the_key_diagnostic(
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    recipient, node_key = recipients("jwe-rsa2048"), recipients("jwe-p256")
    image = push_encrypted(registry, tmp_path, [recipient])
    node = nodes(pip_decoder, registry, node_key.key_files)
    result = _ctr_pull_fails(node, image)
    assert KEY_DIAGNOSTIC in result.stderr and "no suitable key unwrapper found" in result.stderr, result.stderr
    assert NO_PAYLOAD not in result.stderr, "the descriptor was recovered: the failure is the key's"
    assert_nothing_secret(
        result.stderr + node.containerd.log.read_text(), {**recipient.key_files, **node_key.key_files}
    )
    assert_nothing_left(node)


@ON_CONTAINERD_1
@pytest.mark.parametrize("how", ["environment", "flag"])
def test_recovery_turned_off_fails_with_the_no_payload_diagnostic(
    how: str, pip_decoder: str, registry: Registry, nodes: Callable[..., Node], one_layer: Pushed, tmp_path: Path
) -> None:
    recipient, image = one_layer
    node = nodes(pip_decoder, registry, recipient.key_files, {RECOVERY_ENV: "off"} if how == "environment" else {})
    if how == "flag":  # the processors' args, as an operator writes them in config.toml
        node.close()
        node = _node_with_args(nodes, pip_decoder, registry, recipient, ["--descriptor-recovery", "off"], tmp_path)
    result = _ctr_pull_fails(node, image)
    assert NO_PAYLOAD in result.stderr and "descriptor recovery is turned off" in result.stderr, result.stderr
    for names in ("transfer service", "2.0.0-2.0.11, 2.1.0-2.1.6 and 2.2.0-2.2.1", "`ctr images pull`", "key_model"):
        assert names in result.stderr, names
    assert "ctr-enc images pull --key" in result.stderr and "use_local_image_pull = true" in result.stderr
    assert_nothing_secret(result.stderr, recipient.key_files)
    assert_nothing_left(node)


def _node_with_args(
    nodes: Callable[..., Node], decoder: str, registry: Registry, recipient: Recipient, args: list[str], directory: Path
) -> Node:
    """A node whose processor entries pass ``args`` after the keys path (through a wrapper in ``directory``)."""
    wrapper = directory / "decoder-with-args"
    wrapper.write_text(f"#!/bin/sh\nexec '{decoder}' \"$@\" {' '.join(args)}\n")
    wrapper.chmod(0o755)
    return nodes(str(wrapper), registry, recipient.key_files, recipient.decoder_env)


@ON_CONTAINERD_1
def test_manifest_removed_from_the_content_store_mid_pull_fails_cleanly(
    pip_decoder: str, registry: Registry, nodes: Callable[..., Node], one_layer: Pushed, tmp_path: Path
) -> None:
    """Between containerd's fetch of the manifest and the decoder's start, the manifest blob goes away."""
    recipient, image = one_layer
    remover = tmp_path / "decoder-removing-manifests"
    node = nodes(str(remover), registry, recipient.key_files)
    remover.write_text(
        "#!/bin/sh\n"
        f"for blob in '{blobs_dir(node)}'/*; do\n"
        '  if grep -q -F "image.manifest.v1+json" "$blob"; then rm -f "$blob"; fi\n'
        "done\n"
        f"exec '{pip_decoder}' \"$@\"\n"
    )
    remover.chmod(0o755)
    result = _ctr_pull_fails(node, image)
    assert NO_PAYLOAD in result.stderr and "no image manifest there lists it" in result.stderr, result.stderr
    assert result.stderr.count("Traceback") == 0
    _assert_not_unpacked(node, image)
    assert_nothing_left(node)


def _attacker_manifest(node: Node, image: Image, public_key_pem: bytes) -> str:
    """Put into the node's content store a manifest that lists ``image``'s first layer with annotations forged
    for ``public_key_pem`` (support.forged), dated after every other blob (the newest, which recovery tries
    first); return its digest."""
    from support.oci import sha256_digest

    layer = registry_layers(image)[0]
    annotations = forged_annotations(registry_blob(image, layer["digest"]), public_key_pem)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "0" * 64, "size": 2},
        "layers": [{**layer, "annotations": annotations}],
    }
    data = json.dumps(manifest).encode()
    digest = sha256_digest(data)
    client = node.client("default")
    client.use_new_lease(f"attacker-{digest[7:19]}")
    client.write_content(f"attacker-{digest}", data, digest)
    future = time.time() + 3600
    os.utime(blobs_dir(node) / digest.removeprefix("sha256:"), (future, future))
    return digest


@ON_CONTAINERD_1
def test_attackers_manifest_with_a_key_for_the_node_never_yields_wrong_content(
    pip_decoder: str, registry: Registry, nodes: Callable[..., Node], tmp_path: Path
) -> None:
    """An attacker wraps a key of their own for the node's public key and forges the HMAC over the victim's
    ciphertext; their manifest is the newest. The pull fails (the noise is no gzip stream, and containerd
    checks the diff ID); it never succeeds with other content."""
    key = new_key("rsa2048")
    pub = tmp_path / "node.pub.pem"
    pub.write_bytes(public_pem(key))
    victim = Recipient("jwe", {"node.pem": private_pem(key)}, {}, encryption_keys=[f"jwe:{pub}"])
    image = push_encrypted(registry, tmp_path, [victim], small_layers(1))
    node = nodes(pip_decoder, registry, victim.key_files)
    _attacker_manifest(node, image, public_pem(key))
    result = ctr_pull(node, image.ref)
    if result.returncode == 0:  # only acceptable if the content is the victim's own
        verify_pulled(node.client("k8s.io"), image)
        raise AssertionError("recovery used the victim's manifest although the attacker's was newer")
    assert "wrong diff id" in result.stderr or "gzip" in result.stderr or "invalid" in result.stderr, result.stderr
    _assert_not_unpacked(node, image)
    assert_nothing_secret(result.stderr, victim.key_files)


@ON_CONTAINERD_1
def test_attackers_manifest_with_a_key_the_node_cannot_open_is_passed_over(
    pip_decoder: str, registry: Registry, nodes: Callable[..., Node], one_layer: Pushed
) -> None:
    """The newest manifest's wrapped key is for someone else: the next (the image's own) is used."""
    recipient, image = one_layer
    node = nodes(pip_decoder, registry, recipient.key_files)
    _attacker_manifest(node, image, public_pem(new_key("p256")))
    _ctr_pull_ok(node, image)


@ON_CONTAINERD_1
def test_four_images_pulled_concurrently_all_decrypt(
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    recipient = recipients("jwe-p256")
    images = [push_encrypted(registry, tmp_path / str(n), [recipient], small_layers(3)) for n in range(4)]
    node = nodes(pip_decoder, registry, recipient.key_files)
    results: dict[str, object] = {}

    def pull(image: Image) -> None:
        results[image.ref] = ctr_pull(node, image.ref)

    threads = [threading.Thread(target=pull, args=(image,)) for image in images]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for image in images:
        result = results[image.ref]
        assert result.returncode == 0, result.stderr[-2000:]  # type: ignore[attr-defined]
        verify_pulled(node.client("k8s.io"), image)
    calls = node.decoder_calls()
    assert len(calls) == 12 and not any(call.payload for call in calls), calls
    assert_nothing_left(node)


@ON_CONTAINERD_1
def test_plain_ctr_import_decrypts_through_recovery(
    pip_decoder: str, nodes: Callable[..., Node], recipients: Callable[[str], Recipient], tmp_path: Path
) -> None:
    """``ctr images import`` unpacks through containerd's Diff service without a payload, like ``ctr images pull``."""
    recipient = recipients("jwe-p256")
    _, encrypted = encrypt_image(tmp_path, [recipient], small_layers(2))
    archive = tmp_path / "enc.tar"
    skopeo("copy", "-q", f"oci:{encrypted}:v1", f"oci-archive:{archive}:example.test/enc:v1")
    node = nodes(pip_decoder, None, recipient.key_files)
    node.containerd.ctr("k8s.io", "images", "import", str(archive))
    assert [call.payload for call in node.decoder_calls()] == [False, False]
    manifest = node.client("k8s.io").read_json(str(node.client("k8s.io").image_target("example.test/enc:v1")["digest"]))
    assert len(manifest["layers"]) == 2
    assert_nothing_left(node)


@ON_CONTAINERD_1
def test_tar_zstd_processor_id_without_payload_decrypts_through_recovery(
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    """imgcrypt's README's ``...v1.tar.zstd`` entry gets no payload; the zstd layers decrypt all the same."""
    recipient = recipients("jwe-p256")
    zstd = ("--dest-compress", "--dest-compress-format", "zstd")
    image = push_encrypted(registry, tmp_path, [recipient], small_layers(2), zstd)
    node = nodes(
        pip_decoder,
        registry,
        recipient.key_files,
        processor_ids=(PROCESSOR_TAR_GZIP, PROCESSOR_TAR, PROCESSOR_TAR_ZSTD),
    )
    node.client("k8s.io").pull_image(image.ref)
    _pulled_without_payload(node, image)
