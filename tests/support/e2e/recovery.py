"""Helpers for the descriptor-recovery pulls: ``ctr images pull`` (no payload), the content store's files,
and the checks that nothing secret was said and nothing was left behind."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import urllib.request
from pathlib import Path

from ctd_decoder.ocicrypt.keywrap.pgp.scratch import DEFAULT_PARENT, GPG_HOME_PREFIX

from .daemons import require_tool
from .node import Image, Node

CONTENT_BLOBS = Path("root") / "io.containerd.content.v1.content" / "blobs" / "sha256"
INGEST = Path("root") / "io.containerd.content.v1.content" / "ingest"


def ctr_pull(node: Node, ref: str, namespace: str = "k8s.io") -> subprocess.CompletedProcess[str]:
    """A plain ``ctr images pull`` (which sends no payload) of ``ref``; not checked."""
    exe = require_tool("ctr", "containerd")
    return subprocess.run(
        [exe, "-a", node.containerd.socket, "-n", namespace, "images", "pull", "--plain-http", ref],
        capture_output=True,
        text=True,
        timeout=300,
    )


def blobs_dir(node: Node) -> Path:
    """The node's content-store blobs (sha256)."""
    return node.containerd.directory / CONTENT_BLOBS


def assert_nothing_secret(text: str, key_files: dict[str, bytes]) -> None:
    """No line of any private key file (nor a PEM header of one) is in ``text``."""
    assert "PRIVATE KEY" not in text
    for content in key_files.values():
        for line in content.decode("latin-1").splitlines():
            if len(line.strip()) >= 16:
                assert line.strip() not in text, "key material in a message"


def assert_nothing_left(node: Node) -> None:
    """The content store holds only content-addressed blobs (no file of ours) and no half-written ingest;
    no decoder run left a GnuPG home behind."""
    for blob in blobs_dir(node).iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, f"a foreign file in the store: {blob}"
    ingest = node.containerd.directory / INGEST
    assert not ingest.exists() or not any(ingest.iterdir()), list(ingest.iterdir())
    pids = {call.pid for call in node.decoder_calls()}
    leftovers = [
        name for name in os.listdir(DEFAULT_PARENT) if name.startswith(GPG_HOME_PREFIX) and _owner(name) in pids
    ]
    assert not leftovers, leftovers


def _owner(name: str) -> int:
    owner = name[len(GPG_HOME_PREFIX) :].split(".", 1)[0]
    return int(owner) if owner.isdigit() else -1


def registry_layers(image: Image) -> list[dict[str, object]]:
    """The layer descriptors of ``image``'s manifest as the registry serves it."""
    raw = urllib.request.urlopen(_registry_url(image, "manifests", image.ref.rsplit(":", 1)[1]), timeout=30)
    with raw:
        layers: list[dict[str, object]] = json.loads(raw.read())["layers"]
        return layers


def registry_blob(image: Image, digest: object) -> bytes:
    """One blob of ``image``'s repository, from the registry."""
    with urllib.request.urlopen(_registry_url(image, "blobs", str(digest)), timeout=30) as response:
        data: bytes = response.read()
        return data


def _registry_url(image: Image, kind: str, reference: str) -> urllib.request.Request:
    host, _, rest = image.ref.partition("/")
    name = rest.rsplit(":", 1)[0]
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    return urllib.request.Request(f"http://{host}/v2/{name}/{kind}/{reference}", headers={"Accept": accept})
