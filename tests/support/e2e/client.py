"""gRPC calls to a containerd daemon: CRI image pull, snapshots, diff apply, content and images.

Calls go through grpcio's generic stubs with the messages encoded by :mod:`wire`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc

from . import wire

CRI_PULL = "/runtime.v1.ImageService/PullImage"
CRI_VERSION = "/runtime.v1.RuntimeService/Version"
SNAPSHOT = "/containerd.services.snapshots.v1.Snapshots/"
DIFF_APPLY = "/containerd.services.diff.v1.Diff/Apply"
CONTENT_INFO = "/containerd.services.content.v1.Content/Info"
CONTENT_READ = "/containerd.services.content.v1.Content/Read"
CONTENT_WRITE = "/containerd.services.content.v1.Content/Write"
CONTENT_UPDATE = "/containerd.services.content.v1.Content/Update"
IMAGES_GET = "/containerd.services.images.v1.Images/Get"
IMAGES_CREATE = "/containerd.services.images.v1.Images/Create"
LEASES_CREATE = "/containerd.services.leases.v1.Leases/Create"

SNAPSHOT_KINDS = {0: "unknown", 1: "view", 2: "active", 3: "committed"}
UNCOMPRESSED_LABEL = "containerd.io/uncompressed"


def _identity(data: bytes) -> bytes:
    return data


@dataclass
class SnapshotInfo:
    name: str
    parent: str
    kind: str


class ContainerdClient:
    """A channel to containerd's socket with the ``containerd-namespace`` metadata on every call, and
    the ``containerd-lease`` metadata once :meth:`use_new_lease` was called (without a lease, content
    and snapshots that no image references are garbage collected under the test's feet)."""

    def __init__(self, socket: str, namespace: str, timeout: float = 180.0) -> None:
        self.channel = grpc.insecure_channel("unix://" + socket)
        self.namespace = namespace
        self.timeout = timeout
        self.lease = ""

    @property
    def metadata(self) -> list[tuple[str, str]]:
        metadata = [("containerd-namespace", self.namespace)]
        if self.lease:
            metadata.append(("containerd-lease", self.lease))
        return metadata

    def use_new_lease(self, lease_id: str) -> None:
        """Create a lease and attach it to every later call (the test never deletes it)."""
        self.call(LEASES_CREATE, wire.lease_create_request(lease_id))
        self.lease = lease_id

    def __enter__(self) -> ContainerdClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def call(self, method: str, request: bytes, timeout: float | None = None) -> bytes:
        stub = self.channel.unary_unary(method, request_serializer=_identity, response_deserializer=_identity)
        response: bytes = stub(request, timeout=timeout or self.timeout, metadata=self.metadata)
        return response

    def stream(self, method: str, request: bytes) -> Iterable[bytes]:
        stub = self.channel.unary_stream(method, request_serializer=_identity, response_deserializer=_identity)
        responses: Iterable[bytes] = stub(request, timeout=self.timeout, metadata=self.metadata)
        return responses

    def write_content(self, ref: str, data: bytes, digest: str) -> None:
        """Put a blob into the content store (Content ``Write``, one COMMIT message). A blob the namespace
        already holds is fine, as for containerd's own client (``content.WriteBlob``)."""
        stub = self.channel.stream_stream(CONTENT_WRITE, request_serializer=_identity, response_deserializer=_identity)
        request = wire.write_content_request(ref, data, digest)
        try:
            for _ in stub(iter([request]), timeout=self.timeout, metadata=self.metadata):
                pass
        except grpc.RpcError as err:
            if not (isinstance(err, grpc.Call) and err.code() == grpc.StatusCode.ALREADY_EXISTS):
                raise

    # --- CRI ----------------------------------------------------------------------------------------

    def cri_ready(self) -> bool:
        """True once the CRI plugin answers (it registers a little after the socket appears)."""
        try:
            self.call(CRI_VERSION, b"", timeout=2)
        except grpc.RpcError:
            return False
        return True

    def pull_image(self, ref: str) -> str:
        """CRI ``PullImage``; returns the image ref (the config digest). Raises grpc.RpcError."""
        return wire.get_str(self.call(CRI_PULL, wire.pull_image_request(ref)), 1)

    # --- images and content --------------------------------------------------------------------------

    def image_target(self, name: str) -> dict[str, object]:
        image = wire.get_bytes(self.call(IMAGES_GET, wire.image_get_request(name)), 1)
        return wire.parse_descriptor(wire.get_bytes(image, 3))

    def create_image(self, name: str, target: bytes) -> None:
        """Images ``Create``: record image ``name`` pointing at ``target`` (a containerd.types.Descriptor)."""
        self.call(IMAGES_CREATE, wire.create_image_request(name, target))

    def set_content_labels(self, digest: str, labels: dict[str, str]) -> None:
        """Content ``Update`` of the named labels of blob ``digest`` (others are kept)."""
        self.call(CONTENT_UPDATE, wire.update_content_labels_request(digest, labels))

    def read_content(self, digest: str) -> bytes:
        return b"".join(wire.get_bytes(chunk, 2) for chunk in self.stream(CONTENT_READ, wire.content_request(digest)))

    def read_json(self, digest: str) -> Any:
        return json.loads(self.read_content(digest))

    def content_labels(self, digest: str) -> dict[str, str]:
        info = wire.get_bytes(self.call(CONTENT_INFO, wire.content_request(digest)), 1)
        return wire.get_str_map(info, 5)

    # --- snapshots and diff ------------------------------------------------------------------------

    def prepare(self, snapshotter: str, key: str, parent: str = "") -> list[bytes]:
        """Prepare an active snapshot; return its mounts as raw Mount messages."""
        return wire.get_repeated(self.call(SNAPSHOT + "Prepare", wire.snapshot_request(snapshotter, key, parent)), 1)

    def view(self, snapshotter: str, key: str, parent: str) -> list[dict[str, object]]:
        response = self.call(SNAPSHOT + "View", wire.snapshot_request(snapshotter, key, parent))
        return [wire.parse_mount(m) for m in wire.get_repeated(response, 1)]

    def commit(self, snapshotter: str, name: str, key: str) -> None:
        self.call(SNAPSHOT + "Commit", wire.commit_request(snapshotter, name, key))

    def remove(self, snapshotter: str, key: str) -> None:
        self.call(SNAPSHOT + "Remove", wire.snapshot_request(snapshotter, key))

    def stat(self, snapshotter: str, key: str) -> SnapshotInfo:
        info = wire.get_bytes(self.call(SNAPSHOT + "Stat", wire.snapshot_request(snapshotter, key)), 1)
        return SnapshotInfo(wire.get_str(info, 1), wire.get_str(info, 2), SNAPSHOT_KINDS[wire.get_int(info, 3)])

    def apply(self, diff: bytes, mounts: list[bytes], payloads: dict[str, bytes]) -> dict[str, object]:
        """Diff ``Apply`` with ``payloads`` keyed by stream processor ID; returns the applied descriptor."""
        response = self.call(DIFF_APPLY, wire.apply_request(diff, mounts, payloads))
        return wire.parse_descriptor(wire.get_bytes(response, 1))


def rpc_error(call: Callable[[], object]) -> str:
    """Run a call that must fail; return the gRPC error text."""
    import pytest  # here: the demo (packaging/demo.sh) uses this module without pytest installed

    with pytest.raises(grpc.RpcError) as info:
        call()
    error = info.value
    text = str(error.details()) if isinstance(error, grpc.Call) else str(error)
    print(f"gRPC error: {text}")
    return text


# What containerd says instead when it looked at a failed processor's exit status too early and applied its
# empty output (containerd/containerd#6914): the Go decoder's own message is then lost (README, "wrong diff
# id" in the troubleshooting table; measured 3 in 50 failing pulls).
LOST_FAILURE = "wrong diff id"


def go_decoder_refused(refused: str, message: str) -> bool:
    """Whether a pull through a Go decoder was refused with ``message``, or with containerd's lost-message
    form of a processor failure (the Go decoder does not hold stdout back as ours does: exit_race.py)."""
    return message in refused or LOST_FAILURE in refused
