"""``ocicrypt doctor``: check a node's decryption setup without pulling an image.

The checks run in order, each using what the previous ones learned: containerd's config and
process (which processors decrypt, with which arguments and environment), then every keys directory
those processors load, the key providers and PKCS#11 keys in their environment, and finally, with
``--image``, whether this node's keys unwrap each encrypted layer of an image.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ...ocicrypt import KeysDir
from .report import Report, render_json, render_text

HELP = "check this node's decryption setup (containerd, keys, providers, an image) without pulling"


def register(subparsers: Any) -> None:
    """Add the ``doctor`` subcommand."""
    parser = subparsers.add_parser("doctor", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    parser.add_argument(
        "--containerd-config",
        metavar="FILE",
        help="containerd's config.toml or a k3s template (default: /etc/containerd/config.toml, else k3s's)",
    )
    parser.add_argument(
        "--containerd",
        metavar="EXE",
        help="the containerd executable to ask for its version (default: the running one, else containerd on PATH)",
    )
    parser.add_argument(
        "--keys-dir", metavar="DIR", help="check this keys directory instead of the processors' --decryption-keys-path"
    )
    parser.add_argument(
        "--image",
        metavar="IMAGE",
        help="oci:DIR[:REF], oci-archive:FILE[:REF], or - for a manifest (skopeo inspect --raw) on stdin",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of {check, status, message, fix}")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run every check, print the findings, and return 0 when none is an error, 1 otherwise."""
    from .containerd import check_containerd
    from .image import ImageSpecError, check_image, parse_image_spec
    from .keys import check_keys_dir
    from .providers import check_pkcs11, check_providers

    spec = None
    if args.image is not None:
        try:
            spec = parse_image_spec(args.image)
        except ImageSpecError as err:
            sys.stderr.write(f"ocicrypt doctor: {err}\n")
            return 2
    report = Report()
    node = check_containerd(report, args.containerd_config, args.containerd)
    decoders = node.distinct_decoders()
    keys_dirs: dict[str, KeysDir | None] = {}
    roots = [args.keys_dir] if args.keys_dir else sorted({d.keys_path for d in decoders if d.keys_path})
    for root in roots:
        keys_dirs[root] = check_keys_dir(report, root)
    environments: list[dict[str, str]] = []
    for env in [decoder.env() for decoder in decoders] or [{}]:
        if env not in environments:
            environments.append(env)
            check_providers(report, env)
    for env in environments:
        for root in roots or [None]:
            check_pkcs11(report, env, keys_dirs.get(root) if root else None)
    if args.image is not None:
        check_image(report, spec, node, args.keys_dir, keys_dirs)
    output = render_json(report.findings) if args.json else render_text(report.findings)
    sys.stdout.write(output)
    return report.exit_status()
