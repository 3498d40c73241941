"""``ocicrypt inspect``: per platform and layer, what is encrypted, for whom, and whether this node can unwrap it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..ocicrypt import DecryptConfig, Descriptor, OcicryptError, b64decode


def register(subparsers: Any) -> None:
    """Add the ``inspect`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "inspect",
        help="show the layers of an image, their schemes and recipients",
        description="Show, per platform and layer, the media type, size, digest, key schemes and the recipients "
        "the wrapped keys name. With --keys-dir (or --key), also try to unwrap each layer key as this node would.",
    )
    parser.add_argument("source", metavar="SRC", help="oci:DIR[:REF] or oci-archive:FILE[:REF]")
    parser.add_argument("--keys-dir", metavar="DIR", help="the node's decryption keys directory to try")
    parser.add_argument("--key", action="append", default=[], metavar="FILE[:PASSWORD]", help="a key to try")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(run=run)


def _wrapped_elements(value: str) -> list[bytes | None]:
    """The annotation's wrapped keys, decoded as the decoder decodes them (None: not valid base64)."""
    elements: list[bytes | None] = []
    for element in value.split(","):
        try:
            elements.append(b64decode(element, "a key annotation element"))
        except ValueError:
            elements.append(None)
    return elements


def _schemes(descriptor: Descriptor) -> dict[str, list[str]]:
    from ..ocicrypt import describe_recipients, schemes_in
    from ..ocicrypt.spec import ANNOTATION_PREFIX, PROVIDER_PREFIX

    result: dict[str, list[str]] = {}
    for scheme in schemes_in(descriptor.annotations):
        recipients: list[str] = []
        for wrapped in _wrapped_elements(descriptor.annotations[ANNOTATION_PREFIX + scheme]):
            if wrapped is None:
                recipients.append("annotation element is not valid base64")
            elif scheme.startswith(PROVIDER_PREFIX):
                recipients.append(f"key provider {scheme[len(PROVIDER_PREFIX) :]} (opaque wrapped key)")
            else:
                recipients += describe_recipients(scheme, wrapped)
        result[scheme] = recipients
    return result


def _unwrap(dc: DecryptConfig, descriptor: Descriptor) -> dict[str, Any]:
    from ..ocicrypt import unwrap_private_options

    try:
        _, scheme = unwrap_private_options(dc, descriptor)
    except OcicryptError as err:
        return {"possible": False, "reason": str(err)}
    return {"possible": True, "scheme": scheme}


def layer_report(number: int, layer: Descriptor, dc: DecryptConfig | None) -> dict[str, Any]:
    """One layer as ``inspect --json`` reports it: index, media type, size, digest, encrypted, schemes
    (recipients per scheme) and, given keys, whether they unwrap it."""
    from .layercrypt import is_encrypted

    encrypted = is_encrypted({"mediaType": layer.media_type, "annotations": layer.annotations})
    report: dict[str, Any] = {
        "index": number,
        "mediaType": layer.media_type,
        "size": layer.size,
        "digest": layer.digest,
        "encrypted": encrypted,
    }
    if encrypted:
        report["schemes"] = _schemes(layer)
        if dc is not None:
            report["unwrap"] = _unwrap(dc, layer)
    return report


def build_report(source: str, dc: DecryptConfig | None) -> dict[str, Any]:
    """Return the inspection of image ``source`` as a JSON-ready dict."""
    from .image.layout import open_image

    with open_image(source) as image:
        platforms = [
            {
                "platform": str(manifest.platform) if manifest.platform else None,
                "manifest": manifest.descriptor.digest,
                "mediaType": manifest.descriptor.media_type,
                "layers": [layer_report(n, layer, dc) for n, layer in enumerate(manifest.layers)],
            }
            for manifest in image.manifests
        ]
        return {
            "reference": str(image.reference),
            "mediaType": image.entry.get("mediaType", ""),
            "digest": image.entry["digest"],
            "platforms": platforms,
        }


def _print_text(report: dict[str, Any]) -> None:
    out = sys.stdout
    out.write(f"{report['reference']}  {report['mediaType']}  {report['digest']}\n")
    for platform in report["platforms"]:
        out.write(f"\n{platform['platform'] or 'unknown platform'}  manifest {platform['manifest']}\n")
        for layer in platform["layers"]:
            state = "encrypted" if layer["encrypted"] else "not encrypted"
            out.write(
                f"  layer {layer['index']}  {layer['mediaType']}  {layer['size']} bytes  {layer['digest']}  ({state})\n"
            )
            for scheme, recipients in layer.get("schemes", {}).items():
                out.write(f"    {scheme}: {'; '.join(recipients) or 'no recipients recorded'}\n")
            unwrap = layer.get("unwrap")
            if unwrap is not None and unwrap["possible"]:
                out.write(f"    this node can unwrap it ({unwrap['scheme']})\n")
            elif unwrap is not None:
                reason = unwrap["reason"].replace("\n", "\n      ")
                out.write(f"    this node cannot unwrap it: {reason}\n")


def run(args: argparse.Namespace) -> int:
    """Print the inspection of SRC."""
    dc: DecryptConfig | None = None
    if args.keys_dir or args.key:
        from .key_arguments import decrypt_config
        from .options import with_keys_dir

        dc = with_keys_dir(args.keys_dir, decrypt_config(args.key))
    report = build_report(args.source, dc)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_text(report)
    return 0
