"""A test "node": a private containerd wired to our decoder, plus images pushed to a local registry,
and the checks that prove the layers were decrypted and unpacked to the right diff IDs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.keywrap.pkcs11.environment import scoped_environment
from support.oci import (
    Layer,
    diff_ids,
    encrypt_layout,
    image_blobs,
    image_layers,
    make_layout,
    manifest_documents,
    skopeo,
)
from support.tempdirs import short_tempdir

from . import wire
from .client import UNCOMPRESSED_LABEL, ContainerdClient
from .daemons import (
    CONTAINERD_1,
    PROCESSOR_TAR,
    PROCESSOR_TAR_GZIP,
    Containerd,
    Processor,
    Registry,
    decoder_processors,
    remove_tree,
)
from .schemes import Recipient

DEFAULT_LAYERS: list[dict[str, bytes]] = [
    {"etc/motd": b"decrypted by ctd-decoder\n"},
    {"opt/app/data.bin": bytes(range(256)) * 1024, "opt/app/README": b"second layer\n"},
]

# skopeo copy arguments that make zstd-compressed (then encrypted) layers.
ZSTD = ("--dest-compress", "--dest-compress-format", "zstd")


def small_layers(count: int = 6) -> list[dict[str, bytes]]:
    """``count`` small layers of fresh random data (no two images share a layer)."""
    return [{f"layer-{n}/data.bin": os.urandom(512 * (n + 1))} for n in range(count)]


def next_chain_id(parent: str, diff_id: str) -> str:
    """OCI chain IDs: ChainID(1) = DiffID(1), ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))."""
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest() if parent else diff_id


def chain_ids(diffs: list[str]) -> list[str]:
    chain: list[str] = []
    for diff in diffs:
        chain.append(next_chain_id(chain[-1] if chain else "", diff))
    return chain


@dataclass
class Image:
    """An encrypted image in the registry and what its layers must unpack to."""

    ref: str
    layout: Path  # the plaintext OCI layout it was made from
    layers_files: list[dict[str, bytes]]

    @property
    def diff_ids(self) -> list[str]:
        return diff_ids(self.layout)


def encrypt_image(
    workdir: Path,
    recipients: list[Recipient],
    layers_files: list[dict[str, bytes]] | None = None,
    extra_skopeo_args: tuple[str, ...] = (),
) -> tuple[Path, Path]:
    """Build a plaintext layout and encrypt it to ``recipients``; return (plain, encrypted) layouts.

    skopeo (Go ocicrypt) encrypts unless a recipient needs our library (``encrypt_config``).
    """
    tag = uuid.uuid4().hex[:12]
    plain, encrypted = workdir / f"plain-{tag}", workdir / f"enc-{tag}"
    make_layout(plain, layers_files or DEFAULT_LAYERS)
    env: dict[str, str] = {}
    for recipient in recipients:
        env.update(recipient.encrypt_env)
    library = [r.encrypt_config for r in recipients if r.encrypt_config is not None]
    if library:
        assert len(library) == len(recipients), "mixing skopeo and library recipients is not supported"
        combined = EncryptConfig()
        for ec in library:
            for name, values in ec.parameters.items():
                combined.add(name, values)
        with scoped_environment(env):
            encrypt_layout(plain, encrypted, combined)
        return plain, encrypted
    args = ["copy", "-q", *extra_skopeo_args]
    for recipient in recipients:
        for key in recipient.encryption_keys:
            args += ["--encryption-key", key]
    skopeo(*args, f"oci:{plain}:v1", f"oci:{encrypted}:v1", env={**os.environ, **env})
    return plain, encrypted


def push_encrypted(
    registry: Registry,
    workdir: Path,
    recipients: list[Recipient],
    layers_files: list[dict[str, bytes]] | None = None,
    extra_skopeo_args: tuple[str, ...] = (),
) -> Image:
    """Encrypt an image to ``recipients`` (see :func:`encrypt_image`) and push it to the registry."""
    layers_files = layers_files or DEFAULT_LAYERS
    plain, encrypted = encrypt_image(workdir, recipients, layers_files, extra_skopeo_args)
    return Image(push_layout(registry, encrypted), plain, layers_files)


def push_layout(registry: Registry, layout: Path, ref_name: str = "v1") -> str:
    """Push a layout unchanged: one encrypted by our library, or an image's plaintext layout (:attr:`Image.layout`:
    the same gzip layers unencrypted)."""
    ref = f"{registry.host}/e2e/{uuid.uuid4().hex[:12]}:v1"
    skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:{ref_name}", f"docker://{ref}")
    return ref


@dataclass
class DecoderCall:
    """One run of the decoder by containerd, as the logging wrapper saw it."""

    pid: int
    payload: bool  # fd 3 was open
    media_type: str  # STREAM_PROCESSOR_MEDIATYPE


def write_call_logger(path: Path, decoder: str, log: Path) -> Path:
    """A wrapper that records each run (pid, whether fd 3 is open, the media type), then execs the decoder.

    ``exec`` keeps the pid and every file descriptor, so containerd sees the decoder itself.
    """
    path.write_text(
        "#!/bin/sh\n"
        'if [ -e "/proc/$$/fd/3" ]; then payload=yes; else payload=no; fi\n'
        f'printf \'%s %s %s\\n\' "$$" "$payload" "$STREAM_PROCESSOR_MEDIATYPE" >> \'{log}\'\n'
        f"exec '{decoder}' \"$@\"\n"
    )
    path.chmod(0o755)
    return path


@dataclass
class Node:
    """A containerd with our decoder registered as its ocicrypt stream processors."""

    containerd: Containerd
    keys_dir: Path
    calls_log: Path | None  # None: the decoder is registered directly, its runs are not logged
    clients: list[ContainerdClient] = field(default_factory=list)

    @property
    def version(self) -> str:
        return self.containerd.version

    def client(self, namespace: str = "k8s.io") -> ContainerdClient:
        client = ContainerdClient(self.containerd.socket, namespace)
        self.clients.append(client)
        return client

    def decoder_calls(self) -> list[DecoderCall]:
        """Every run of the decoder so far, in order (only on a node started with ``log_calls``)."""
        if self.calls_log is None:
            raise RuntimeError("this node runs the decoder directly and does not log its runs (log_calls=False)")
        if not self.calls_log.exists():
            return []
        calls = []
        for line in self.calls_log.read_text().splitlines():
            pid, payload, *media_type = line.split(" ", 2)
            calls.append(DecoderCall(int(pid), payload == "yes", "".join(media_type)))
        return calls

    def assert_decoded_once_per_layer(self, image: Image, payload: bool = True) -> None:
        """The decoder ran exactly once per layer of ``image``, each time with (or without) a payload."""
        calls = self.decoder_calls()
        assert len(calls) == len(image.diff_ids), calls
        assert all(call.payload == payload for call in calls), calls
        assert all(call.media_type.endswith("+encrypted") for call in calls), calls

    def pull_and_verify(self, image: Image) -> list[LayerReport]:
        """CRI ``PullImage``, then :func:`verify_pulled` and one decoder run with a payload per layer."""
        client = self.client("k8s.io")
        image_id = client.pull_image(image.ref)
        reports = verify_pulled(client, image)
        manifest = client.read_json(str(client.image_target(image.ref)["digest"]))
        assert image_id == manifest["config"]["digest"]
        self.assert_decoded_once_per_layer(image)
        return reports

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.containerd.stop()
        remove_tree(self.containerd.directory.parent)  # the node's temp dir: containerd and keys


def start_node(
    decoder: str,
    registry: Registry | None,
    key_files: dict[str, bytes] | None = None,
    decoder_env: dict[str, str] | None = None,
    extra_processors: list[Processor] | None = None,
    processor_ids: tuple[str, ...] = (PROCESSOR_TAR_GZIP, PROCESSOR_TAR),
    version: str = CONTAINERD_1,
    local_pull: bool = True,
    key_model: str = "node",
    log_calls: bool = True,
) -> Node:
    """Start containerd ``version`` in a fresh short temp dir; ``key_files`` fill its keys directory (mode 0700).

    containerd runs the decoder through a wrapper that logs each run (:meth:`Node.decoder_calls`); with
    ``log_calls=False`` it runs the decoder itself, as a real node does (a benchmark's timed pulls: the
    wrapper's shell costs about a millisecond per layer), and :meth:`Node.decoder_calls` refuses to answer.
    ``key_model=""`` is the CRI's model that sends the decoder no payload.
    """
    base = short_tempdir("ctd-e2e-")
    keys_dir = base / "keys"
    keys_dir.mkdir(mode=0o700)
    for name, content in (key_files or {}).items():
        (keys_dir / name).write_bytes(content)
        (keys_dir / name).chmod(0o600)
    calls_log = base / "decoder-calls.log" if log_calls else None
    registered = str(write_call_logger(base / "ctd-decoder-logged", decoder, calls_log)) if calls_log else decoder
    processors = decoder_processors(registered, keys_dir, decoder_env, processor_ids) + list(extra_processors or [])
    registry_hosts = [registry.host] if registry else []
    containerd = Containerd(
        base / "cd",
        processors,
        registry_hosts,
        version=version,
        local_pull=local_pull,
        key_model=key_model,
    )
    try:
        containerd.start()
    except BaseException:  # also pytest.skip (a 2.3 node without its binary)
        remove_tree(base)
        raise
    return Node(containerd, keys_dir, calls_log)


@dataclass
class LayerReport:
    digest: str
    media_type: str
    diff_id: str


def verify_pulled(client: ContainerdClient, image: Image, snapshotter: str = "overlayfs") -> list[LayerReport]:
    """Check, from containerd's own records, that every encrypted layer unpacked to its diff ID.

    - the stored image config's ``rootfs.diff_ids`` are the plaintext diff IDs of our layout;
    - every manifest layer is encrypted and labelled ``containerd.io/uncompressed`` = its diff ID
      (set by the unpacker after the stream processor and the decompressor ran);
    - every chain ID is a committed snapshot whose parent is the previous chain ID;
    - the files in the unpacked root file system are the plaintext ones.
    """
    target = client.image_target(image.ref)
    manifest = client.read_json(str(target["digest"]))
    config = client.read_json(manifest["config"]["digest"])
    expected = image.diff_ids
    assert config["rootfs"]["diff_ids"] == expected
    assert len(manifest["layers"]) == len(expected)
    reports = []
    for layer, diff_id in zip(manifest["layers"], expected, strict=True):
        assert layer["mediaType"].endswith("+encrypted"), layer["mediaType"]
        labels = client.content_labels(layer["digest"])
        assert labels.get(UNCOMPRESSED_LABEL) == diff_id, (layer["digest"], labels)
        reports.append(LayerReport(layer["digest"], layer["mediaType"], diff_id))
    verify_snapshots(client, expected, image.layers_files, snapshotter)
    return reports


def verify_snapshots(
    client: ContainerdClient, diffs: list[str], layers_files: list[dict[str, bytes]], snapshotter: str
) -> None:
    """Every chain ID is committed on top of the previous one and the union holds the plaintext files."""
    chain = chain_ids(diffs)
    for index, chain_id in enumerate(chain):
        info = client.stat(snapshotter, chain_id)
        assert info.kind == "committed", info
        assert info.parent == (chain[index - 1] if index else ""), info
    if not client.lease:
        client.use_new_lease(f"e2e-{uuid.uuid4().hex[:8]}")
    view_key = f"e2e-view-{uuid.uuid4().hex[:8]}"
    mounts = client.view(snapshotter, view_key, chain[-1])
    try:
        directories = _lower_directories(mounts)
        for files in layers_files:
            for name, content in files.items():
                found = [d / name for d in directories if (d / name).is_file()]
                assert found, f"{name} is not in the unpacked snapshot"
                assert found[0].read_bytes() == content, f"{name} differs from the plaintext"
    finally:
        client.remove(snapshotter, view_key)


def _lower_directories(mounts: list[dict[str, object]]) -> list[Path]:
    """The read-only directories of a view mount, topmost first, read without mounting anything."""
    assert len(mounts) == 1, mounts
    mount = mounts[0]
    options = [str(o) for o in mount["options"]]  # type: ignore[attr-defined]
    if mount["type"] == "bind":
        return [Path(str(mount["source"]))]
    for option in options:
        if option.startswith("lowerdir="):
            return [Path(p) for p in option[len("lowerdir=") :].split(":")]
    raise AssertionError(f"unexpected view mount {mount}")


def apply_with_payload(
    client: ContainerdClient,
    layers: list[Layer],
    payload_for: dict[str, bytes] | None = None,
    decrypt_config: DecryptConfig | None = None,
    snapshotter: str = "overlayfs",
    processor_ids: tuple[str, ...] = (PROCESSOR_TAR_GZIP, PROCESSOR_TAR),
) -> list[str]:
    """Unpack encrypted layers (:func:`support.oci.read_layers`) the way ``ctr-enc ... --key`` does
    (imgcrypt's ``WithDecryptedUnpack``: one payload, under every ocicrypt processor ID), under a lease:
    content Write, snapshot Prepare, Diff ``Apply`` with the payload under each processor ID, Commit
    under the chain ID, the layer's ``containerd.io/uncompressed`` label. Returns the applied digests
    (the diff IDs). ``payload_for`` overrides the payload bytes per layer digest.
    """
    if not client.lease:
        client.use_new_lease(f"e2e-{uuid.uuid4().hex[:8]}")
    applied: list[str] = []
    parent = ""
    for index, layer in enumerate(layers):
        d = layer.descriptor
        client.write_content(f"e2e-{d['digest']}", layer.blob, d["digest"])
        key = f"e2e-apply-{uuid.uuid4().hex[:8]}-{index}"
        mounts = client.prepare(snapshotter, key, parent)
        if payload_for is not None and d["digest"] in payload_for:
            payload = payload_for[d["digest"]]
        else:
            descriptor = Descriptor(d["mediaType"], d["digest"], d["size"], dict(d.get("annotations", {})))
            payload = encode_payload(Payload(decrypt_config or DecryptConfig(), descriptor))
        diff = wire.descriptor(d["mediaType"], d["digest"], d["size"], d.get("annotations"))
        try:
            result = client.apply(diff, mounts, dict.fromkeys(processor_ids, payload))
        except grpc.RpcError:
            with contextlib.suppress(grpc.RpcError):
                client.remove(snapshotter, key)
            raise
        applied.append(str(result["digest"]))
        parent = next_chain_id(parent, applied[-1])
        client.commit(snapshotter, parent, key)
        client.set_content_labels(d["digest"], {UNCOMPRESSED_LABEL: applied[-1]})
    return applied


def import_with_payload(
    client: ContainerdClient,
    layout: Path,
    name: str,
    decrypt_config: DecryptConfig,
    ref: str = "v1",
    platform: str = "linux/amd64",
    snapshotter: str = "overlayfs",
) -> list[str]:
    """What ``ctr-enc images import --key`` (and ``run --key`` on an image not yet unpacked) does to
    containerd: content Write of every blob of image ``ref`` of ``layout`` (all platforms), image
    ``name`` created on its top descriptor, and ``platform``'s layers unpacked with the keys in the
    payload (:func:`apply_with_payload`), the config labelled with the top snapshot for the garbage
    collector as containerd's unpacker does. Returns the applied diff IDs.
    """
    entry, blobs = image_blobs(layout, ref)
    layers = image_layers(layout, ref)
    platform_layers = layers["-"] if "-" in layers else layers[platform]
    layer_digests = {layer["digest"] for layer in platform_layers}
    if not client.lease:
        client.use_new_lease(f"e2e-{uuid.uuid4().hex[:8]}")
    for digest, blob in blobs.items():
        if digest not in layer_digests:  # apply_with_payload writes the layers it unpacks
            client.write_content(f"e2e-{digest}", blob, digest)
    applied = apply_with_payload(
        client, [Layer(d, blobs[d["digest"]]) for d in platform_layers], decrypt_config=decrypt_config,
        snapshotter=snapshotter,
    )  # fmt: skip
    documents = manifest_documents(layout, ref)
    config = documents["-" if "-" in documents else platform]["config"]["digest"]
    snapshot_label = f"containerd.io/gc.ref.snapshot.{snapshotter}"
    client.set_content_labels(config, {snapshot_label: chain_ids(applied)[-1]})
    client.create_image(name, wire.descriptor(entry["mediaType"], entry["digest"], entry["size"]))
    return applied
