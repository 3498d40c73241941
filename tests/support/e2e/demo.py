"""The end-to-end demo behind packaging/demo.sh: a private registry and containerd on 127.0.0.1,
an image encrypted by skopeo (JWE), pulled through the CRI with our decoder, layers verified.

    PYTHONPATH=tests python -m support.e2e.demo [--decoder PATH] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from support.tempdirs import short_tempdir

from .daemons import Registry, remove_tree, require_tool
from .node import LayerReport, Node, push_encrypted, start_node, verify_pulled
from .schemes import SCHEMES

LAYERS = [
    {"etc/motd": b"This layer was encrypted with JWE and decrypted by ctd-decoder (Python).\n"},
    {"opt/demo/data.bin": os.urandom(256 * 1024), "opt/demo/README": b"second encrypted layer\n"},
]


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoder", help="the ctd-decoder executable containerd runs (default: next to python)")
    parser.add_argument("--keep", action="store_true", help="leave the temp dir (daemons are stopped anyway)")
    options = parser.parse_args(argv)
    decoder = options.decoder or shutil.which("ctd-decoder", path=os.path.dirname(sys.executable))
    if not decoder or not os.access(decoder, os.X_OK):
        print("ctd-decoder not found: pip install the project or pass --decoder", file=sys.stderr)
        return 1
    for tool, package in [("containerd", "containerd"), ("runc", "runc"), ("skopeo", "skopeo")]:
        require_tool(tool, package)
    require_tool("docker-registry", "docker-registry")

    base = short_tempdir("ctd-demo-")
    registry = Registry(base / "registry")
    registry.directory.mkdir()
    node: Node | None = None
    recipient = None
    reports: list[LayerReport] = []
    started = time.monotonic()
    try:
        step(f"docker-registry on 127.0.0.1 (data in {registry.directory})")
        registry.start()
        print(f"    listening on {registry.host}")

        step("a fresh RSA-2048 key pair; the private key goes into the node's keys directory")
        recipient = SCHEMES["jwe-rsa2048"](base / "recipient")

        step("a two-layer image, encrypted by skopeo (--encryption-key jwe:pub.pem) and pushed")
        image = push_encrypted(registry, base, [recipient], LAYERS)
        print(f"    {image.ref}")

        step(f"containerd with [stream_processors] -> {decoder}")
        node = start_node(decoder, registry, recipient.key_files)
        print(f"    socket {node.containerd.socket}, keys {node.keys_dir}")

        step("CRI PullImage (node key model: keys from --decryption-keys-path), as kubelet/k3s would")
        client = node.client("k8s.io")
        pull_started = time.monotonic()
        image_id = client.pull_image(image.ref)
        print(f"    image id {image_id} in {time.monotonic() - pull_started:.2f} s")

        step("verifying every layer against the image config's rootfs.diff_ids")
        reports = verify_pulled(client, image)
        for index, report in enumerate(reports):
            print(f"    layer {index}: {report.digest}  ({report.media_type})")
            print(f"             unpacked diff ID {report.diff_id}  OK")
        print("    every chain ID is a committed snapshot and the files match the plaintext")
    except Exception as err:
        print(f"demo FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        if node is not None:
            print(node.containerd.log_tail(), file=sys.stderr)
        return 1
    finally:
        step("cleaning up: stopping containerd and the registry by pid, removing the temp dir")
        if node is not None:
            node.close()
        registry.stop()
        if recipient is not None:
            recipient.cleanup()
        if options.keep:
            print(f"    kept {base}")
        else:
            remove_tree(base)
    print(f"demo OK: {len(reports)} encrypted layers pulled and verified in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
