"""Descriptor recovery's cost: the same image pulled with a payload and through recovery on the same containerd.

The 28 MiB, 3 MiB, 12 MiB and 250 B image (incompressible gzip layers, skopeo-encrypted to a fresh
RSA-2048 JWE key) is pulled with CRI ``PullImage`` by a fresh private containerd each run: once with
``key_model = "node"`` (containerd sends the payload) and once with ``key_model = ""`` (no payload:
the decoder recovers each layer's descriptor from the content store), alternating, run after run.
``--unrelated N`` first puts N unrelated blobs into each node's content store (a third small JSON
documents, the rest 64 KiB of random data), so the recovery pulls search among them. After the
recovery pulls, the manifest search alone (what the store's size changes) is timed per layer in the
node's own content store, with the index the pull's decoders left (what each decoder after the store's
first search pays). Last, the decoder alone on one 4 KiB layer, run the way containerd runs it by
a process that holds the layer's blob open in a private content store (started and timed by bench/bench.py's
``run_through_pipes``, ``posix_spawn`` as containerd's Go starts it): with the payload on fd 3, and
without it (recovery): the fixed cost recovery adds to every layer. And the manifest search alone in a
synthetic store of ``--unrelated`` blobs (as the unit test's), as each decoder process runs it: the first
search in the store (no index yet: every blob stat'ed), the next ones (the index reused), and without an
index at all.

The daemons and images come from the end-to-end helpers (tests/e2e), run as root like those tests.

Usage: python bench/recovery.py [--runs 5] [--unrelated 10000] [--index-before-pull] [--containerd 1.6]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from support.decoder import decoder_command, run_decoder  # noqa: E402
from support.e2e import wire  # noqa: E402
from support.e2e.client import CONTENT_WRITE  # noqa: E402
from support.e2e.daemons import CONTAINERD_1, CONTAINERD_VERSIONS, Registry, remove_tree  # noqa: E402
from support.e2e.node import Node, push_encrypted, start_node  # noqa: E402
from support.e2e.recovery import blobs_dir  # noqa: E402
from support.e2e.schemes import jwe  # noqa: E402
from support.layers import GZIP_ENCRYPTED, jwe_layer  # noqa: E402
from support.tempdirs import short_tempdir  # noqa: E402

from bench import run_through_pipes  # noqa: E402
from ctd_decoder.decoder.payload import MEDIA_TYPE_ENV, Payload, encode_payload  # noqa: E402
from ctd_decoder.decoder.recovery.index import INDEX_DIR  # noqa: E402
from ctd_decoder.decoder.recovery.manifests import find_layer  # noqa: E402
from ctd_decoder.decoder.recovery.openblobs import CONTENT_PLUGIN_DIR  # noqa: E402
from ctd_decoder.decoder.warm.protocol import DISABLED, SOCKET_ENV  # noqa: E402
from ctd_decoder.ocicrypt.config import DecryptConfig  # noqa: E402

KIB, MIB = 1 << 10, 1 << 20
LAYER_SIZES = [28 * MIB, 3 * MIB, 12 * MIB, 250]
PULL_TARGET = 0.05  # recovery may cost at most 5% of the pull time
SEARCH_TARGET_MS = 20.0  # and at most 20 ms per layer with 10,000 unrelated blobs


def fill_store(node: Node, count: int) -> None:
    """Write ``count`` unrelated blobs through containerd's content service, as pulls of other images would
    have: a third small JSON documents labelled with a child (as manifests are), the rest 64 KiB of data.
    containerd records them in its metadata too, so both the metadata and the content store are that big."""
    if not count:
        return
    client = node.client("k8s.io")
    client.use_new_lease(f"bench-unrelated-{os.getpid()}")
    stub = client.channel.stream_stream(CONTENT_WRITE, request_serializer=bytes, response_deserializer=bytes)

    def requests() -> Iterator[bytes]:
        for index in range(count):
            if index % 3 == 0:
                child = "sha256:" + hashlib.sha256(os.urandom(16)).hexdigest()
                data = json.dumps({"n": index, "layers": [{"digest": child}], "pad": "x" * 200}).encode()
                labels = {"containerd.io/gc.ref.content.l.0": child}
            else:
                data, labels = os.urandom(64 * KIB), {}
            yield _write_request(f"unrelated-{index}", data, labels)

    for request in requests():
        for _ in stub(iter([request]), timeout=60, metadata=client.metadata):
            pass


def _write_request(ref: str, data: bytes, labels: dict[str, str]) -> bytes:
    """content.v1.WriteContentRequest with its labels (field 7, a map of string to string)."""
    request = wire.write_content_request(ref, data, "sha256:" + hashlib.sha256(data).hexdigest())
    for name, value in labels.items():
        request += wire.field_bytes(7, wire.field_str(1, name) + wire.field_str(2, value))
    return request


STATE = (
    Path("root") / "io.containerd.metadata.v1.bolt",
    Path("root") / "io.containerd.content.v1.content" / "blobs",
)


def unrelated_state(decoder: str, registry: Registry, count: int, version: str) -> Node:
    """A stopped node whose metadata and content store hold ``count`` unrelated blobs (written once)."""
    node = start_node(decoder, registry, {}, version=version)
    filling = time.perf_counter()
    fill_store(node, count)
    print(f"{count:,} unrelated blobs written in {time.perf_counter() - filling:.0f} s", flush=True)
    node.containerd.stop()
    return node


def pull_once(
    decoder: str,
    registry: Registry,
    ref: str,
    keys: dict[str, bytes],
    recovery: bool,
    args: argparse.Namespace,
    state: Node | None,
) -> tuple[float, list[float]]:
    """Time one CRI pull on a fresh node (given ``state``'s metadata and blobs); for a recovery pull also
    time the manifest search per layer (ms)."""
    node = start_node(decoder, registry, keys, version=args.containerd, key_model="" if recovery else "node")
    try:
        if state is not None:
            node.containerd.stop()
            for part in STATE:
                shutil.rmtree(node.containerd.directory / part, ignore_errors=True)
                shutil.copytree(state.containerd.directory / part, node.containerd.directory / part)
            node.containerd.start()
            if recovery and args.index_before_pull:
                # As a previous pull's decoders leave it on a node that keeps its store (here each pull
                # gets a fresh copy of the store, whose first search would otherwise stat every blob).
                find_layer(str(blobs_dir(node)), "sha256:" + "0" * 64, 0, None, INDEX_DIR)
        client = node.client("k8s.io")
        started = time.perf_counter()
        client.pull_image(ref)
        elapsed = time.perf_counter() - started
        calls = node.decoder_calls()
        if len(calls) != len(LAYER_SIZES) or any(call.payload == recovery for call in calls):
            raise RuntimeError(
                f"expected {len(LAYER_SIZES)} decoder runs {'without' if recovery else 'with'} a payload: {calls}"
            )
        searches: list[float] = []
        if recovery:
            target = client.image_target(ref)
            manifest = client.read_json(str(target["digest"]))
            for layer in manifest["layers"]:
                begun = time.perf_counter()
                # With the decoder's index, which the pull's decoders wrote: what each decoder's search costs.
                found = find_layer(str(blobs_dir(node)), layer["digest"], layer["size"], layer["mediaType"], INDEX_DIR)
                searches.append((time.perf_counter() - begun) * 1000)
                assert found.found, f"no manifest found for {layer['digest']}"
        return elapsed, searches
    finally:
        node.close()


def decoder_alone(runs: int, directory: Path) -> tuple[float, float]:
    """Median ms of one 4 KiB layer through the cold decoder: with a payload, and through recovery."""
    layer = jwe_layer(os.urandom(4 * KIB))
    blobs = directory / CONTENT_PLUGIN_DIR / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    digest = hashlib.sha256(layer.blob).hexdigest()
    (blobs / digest).write_bytes(layer.blob)
    entry = {"mediaType": GZIP_ENCRYPTED, "digest": "sha256:" + digest, "size": len(layer.blob)}
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {},
        "layers": [{**entry, "annotations": layer.descriptor.annotations}],
    }
    data = json.dumps(manifest).encode()
    (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    keys = directory / "keys"
    keys.mkdir(mode=0o700)
    (keys / "node.pem").write_bytes(layer.private_key_pem)
    payload = encode_payload(Payload(DecryptConfig(), layer.descriptor))
    env = {MEDIA_TYPE_ENV: GZIP_ENCRYPTED, SOCKET_ENV: DISABLED}
    args = ["--decryption-keys-path", str(keys)]
    times: dict[bool, list[float]] = {True: [], False: []}
    with open(blobs / digest, "rb"):  # held open, as containerd holds the layer it feeds the decoder
        for with_payload in (True, False):  # the output checked once, untimed (and the page cache warmed)
            result = run_decoder(layer.blob, payload if with_payload else None, args, env=env)
            if result.returncode != 0 or result.stdout != layer.plaintext:
                raise RuntimeError(f"the decoder failed: {result.stderr}")
        for _ in range(runs):
            for with_payload in (True, False):
                # Started as bench.py starts every decoder it times (posix_spawn, fd 3 by a file action).
                seconds, received, _ = run_through_pipes(
                    [*decoder_command(), *args], blobs / digest, payload if with_payload else None, env=env
                )
                times[with_payload].append(seconds * 1000)
                if received != len(layer.plaintext):
                    raise RuntimeError(f"the decoder wrote {received} bytes, expected {len(layer.plaintext)}")
    return statistics.median(times[True]), statistics.median(times[False])


def search_alone(count: int, runs: int, directory: Path) -> dict[str, list[float]]:
    """ms of the manifest search in a synthetic store of ``count`` unrelated blobs (a third small JSON, the
    rest 64 KiB) and the layer's manifest (the newest): the first search, the next, and with no index."""
    layer = jwe_layer(os.urandom(3000))
    blobs = directory / CONTENT_PLUGIN_DIR / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    now = time.time()

    def add(data: bytes, mtime: float) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        os.utime(blobs / digest, (mtime, mtime))
        return "sha256:" + digest

    digest = add(layer.blob, now - 5)
    for index in range(count):
        data = json.dumps({"n": index, "pad": "x" * 150}).encode() if index % 3 == 0 else os.urandom(64 * KIB)
        add(data, now - 10 - index)
    entry = {"mediaType": GZIP_ENCRYPTED, "digest": digest, "size": len(layer.blob), "annotations": {"a": "b"}}
    add(json.dumps({"schemaVersion": 2, "config": {}, "layers": [entry]}).encode(), now)
    times: dict[str, list[float]] = {"first": [], "next": [], "no index": []}
    for run in range(runs):
        index_dir = directory / f"index-{run}"
        for kind, where in (("first", index_dir), ("next", index_dir), ("next", index_dir), ("no index", None)):
            started = time.perf_counter()
            search = find_layer(str(blobs), digest, len(layer.blob), GZIP_ENCRYPTED, str(where) if where else None)
            times[kind].append((time.perf_counter() - started) * 1000)
            if len(search.found) != 1 or search.indexed != (kind == "next"):
                raise RuntimeError(f"{kind} search: {len(search.found)} manifests found, index used: {search.indexed}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="pulls of each kind (default 5)")
    parser.add_argument("--unrelated", type=int, default=10_000, help="unrelated blobs in each store (default 10000)")
    parser.add_argument("--containerd", default=CONTAINERD_1, choices=CONTAINERD_VERSIONS)
    parser.add_argument(
        "--index-before-pull",
        action="store_true",
        help="build the store's recovery index before each recovery pull (a node that keeps its store); "
        "without it each pull's first layer pays the store's first search",
    )
    parser.add_argument("--decoder-runs", type=int, default=21, help="runs of the decoder-alone figure (default 21)")
    args = parser.parse_args()
    decoder = shutil.which("ctd-decoder", path=os.path.dirname(sys.executable))
    if decoder is None:
        parser.error("ctd-decoder is not installed next to this interpreter")
    base = short_tempdir("ctd-bench-rec-")
    registry = Registry(base / "registry")
    (base / "registry").mkdir()
    registry.start()
    state: Node | None = None
    try:
        recipient = jwe("rsa2048")(base / "key")
        files = [{f"data-{index}.bin": os.urandom(size)} for index, size in enumerate(LAYER_SIZES)]
        image = push_encrypted(registry, base / "image", [recipient], files)
        payload_runs: list[float] = []
        recovery_runs: list[float] = []
        searches: list[float] = []
        state = unrelated_state(decoder, registry, args.unrelated, args.containerd) if args.unrelated else None
        for run in range(args.runs):
            payload_runs.append(pull_once(decoder, registry, image.ref, recipient.key_files, False, args, state)[0])
            seconds, search_ms = pull_once(decoder, registry, image.ref, recipient.key_files, True, args, state)
            recovery_runs.append(seconds)
            searches += search_ms
            print(
                f"run {run + 1}: payload {payload_runs[-1] * 1000:.0f} ms, recovery {seconds * 1000:.0f} ms", flush=True
            )
        payload_ms = statistics.median(payload_runs) * 1000
        recovery_ms = statistics.median(recovery_runs) * 1000
        cost = (recovery_ms - payload_ms) / payload_ms
        search_ms = statistics.median(searches)
        print(
            f"containerd {args.containerd}, image 28 MiB + 3 MiB + 12 MiB + 250 B, {args.runs} pulls each, "
            f"{args.unrelated:,} unrelated blobs in the store"
            f"{', index built before each recovery pull' if args.index_before_pull else ''}, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(f"  pull with payload (median):  {payload_ms:.0f} ms")
        print(
            f"  pull through recovery:       {recovery_ms:.0f} ms  ({cost:+.1%}; target <= {PULL_TARGET:.0%}: "
            f"{'met' if cost <= PULL_TARGET else 'NOT met'})"
        )
        print(
            f"  manifest search per layer:   median {search_ms:.1f} ms, max {max(searches):.1f} ms "
            f"(target <= {SEARCH_TARGET_MS:.0f} ms: {'met' if search_ms <= SEARCH_TARGET_MS else 'NOT met'})"
        )
        with_payload, through_recovery = decoder_alone(args.decoder_runs, base / "alone")
        print(
            f"  decoder alone, one 4 KiB layer ({args.decoder_runs} runs, median): payload {with_payload:.1f} ms, "
            f"recovery {through_recovery:.1f} ms ({through_recovery - with_payload:+.1f} ms a layer)"
        )
        if args.unrelated:
            alone = search_alone(args.unrelated, args.runs, base / "search")
            print(
                f"  manifest search alone, synthetic store of {args.unrelated:,} blobs ({args.runs} stores, medians): "
                + ", ".join(f"{kind} {statistics.median(ms):.1f} ms" for kind, ms in alone.items())
                + f"; load average {os.getloadavg()[0]:.1f}"
            )
    finally:
        if state is not None:
            state.close()
        registry.stop()
        remove_tree(base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
