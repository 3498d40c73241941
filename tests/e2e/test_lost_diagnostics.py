"""containerd (1.6 and 2.3, upstream containerd/containerd#6914) checks a stream processor's exit status
without waiting for it: the differ reads the processor's stdout to end of file, then asks for the error
that a separate goroutine records only after reaping the process. When the read wins, an empty layer
is applied and the operator reads ``wrong diff id "sha256:e3b0c442..." calculated on extraction``
instead of the decoder's text. The decoder's failure path must win that race.

Bounded: 50 failing CRI pulls per containerd line on one node (about 20 s each line).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
from support.e2e.daemons import Registry
from support.e2e.node import DEFAULT_LAYERS, Node, push_encrypted
from support.e2e.schemes import Recipient

FAILING_PULLS = 50
DIAGNOSTIC = "call to DecryptLayer failed"


def test_failing_pulls_report_the_decoder_diagnostic_not_an_empty_layer(
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
    containerd_version: str,
) -> None:
    recipient, wrong = recipients("jwe-rsa2048"), recipients("jwe-p256")
    image = push_encrypted(registry, tmp_path, [recipient], DEFAULT_LAYERS[:1])
    node = nodes(pip_decoder, registry, wrong.key_files)
    client = node.client("k8s.io")
    lost: list[str] = []
    started = time.monotonic()
    for _ in range(FAILING_PULLS):
        try:
            client.pull_image(image.ref)
        except grpc.RpcError as err:
            text = str(err.details()) if isinstance(err, grpc.Call) else str(err)
            if DIAGNOSTIC not in text:
                lost.append(text)
        else:
            raise AssertionError("a pull without the key succeeded")
    elapsed = time.monotonic() - started
    print(f"containerd {containerd_version}: {len(lost)}/{FAILING_PULLS} diagnostics lost in {elapsed:.1f} s")
    assert len(node.decoder_calls()) == FAILING_PULLS
    assert all("wrong diff id" in text for text in lost), lost  # 2.x names the empty digest, 1.6 the expected one
    assert not lost, f"{len(lost)}/{FAILING_PULLS} failing pulls lost the decoder's diagnostic: {lost[0]}"
