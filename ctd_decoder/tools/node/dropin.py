"""The containerd configuration the installer writes: a drop-in with the decoder's stream processors.

In a drop-in each ``[stream_processors.ID]`` replaces the earlier entry of that ID whole, so every
entry restates ``accepts``, ``returns``, ``path``, ``args`` and ``env``. Only the two IDs that
receive a payload are registered (zstd layers go to the ``.tar`` entry, as in packaging/containerd/).
"""

from __future__ import annotations

import json

from ...decoder.payload import PAYLOAD_PROCESSOR_IDS

BASE_TEMPLATE = '{{ template "base" . }}'
HEADER = "# Written by `ocicrypt node install`; `ocicrypt node uninstall` removes it. Do not edit.\n"

_LAYER = "application/vnd.oci.image.layer.v1.tar"
# processor ID -> (accepts, returns)
ENTRIES: dict[str, tuple[tuple[str, ...], str]] = {
    "io.containerd.ocicrypt.decoder.v1.tar.gzip": ((f"{_LAYER}+gzip+encrypted",), f"{_LAYER}+gzip"),
    "io.containerd.ocicrypt.decoder.v1.tar": ((f"{_LAYER}+encrypted", f"{_LAYER}+zstd+encrypted"), f"{_LAYER}+zstd"),
}
assert set(ENTRIES) == set(PAYLOAD_PROCESSOR_IDS)


def _str(value: str) -> str:
    # A TOML basic string; JSON's escapes are valid TOML escapes for these ASCII paths.
    return json.dumps(value)


def _array(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_str(v) for v in values) + "]"


def processors_toml(decoder: str, keys_dir: str, keyprovider_config: str) -> str:
    """The ``[stream_processors]`` entries for ``decoder`` (host paths)."""
    lines: list[str] = []
    for processor_id, (accepts, returns) in ENTRIES.items():
        lines += [
            f"[stream_processors.{_str(processor_id)}]",
            f"  accepts = {_array(accepts)}",
            f"  returns = {_str(returns)}",
            f"  path = {_str(decoder)}",
            f"  args = {_array(['--decryption-keys-path', keys_dir])}",
            f"  env = {_array([f'OCICRYPT_KEYPROVIDER_CONFIG={keyprovider_config}'])}",
            "",
        ]
    return "\n".join(lines)


def dropin_toml(version: int, decoder: str, keys_dir: str, keyprovider_config: str, with_version: bool = True) -> str:
    """A whole drop-in for a config ``version`` (2: containerd 1.x, 3: containerd 2.x).

    Version 2 sets stream processors only: containerd 1.x replaces a plugin's whole table with an
    imported one, so a CRI table here would wipe the host's CRI settings (``key_model = "node"`` is
    the default since 1.5). Version 3 (merged key by key since 2.0) also turns on the local pull
    path, the only CRI path that passes a payload to the decoder.
    """
    body = [HEADER]
    if with_version:
        body.append(f"version = {version}\n")
    if version >= 3:
        body.append(
            "\n[plugins.'io.containerd.cri.v1.images']\n"
            "  use_local_image_pull = true\n"
            "[plugins.'io.containerd.cri.v1.images'.image_decryption]\n"
            '  key_model = "node"\n'
        )
    body.append("\n" + processors_toml(decoder, keys_dir, keyprovider_config))
    return "".join(body)


def template_text(version: int, decoder: str, keys_dir: str, keyprovider_config: str) -> str:
    """A k3s/RKE2 template: their base template, then the stream processors.

    The base template already opens the CRI tables (TOML forbids a second one), so only the stream
    processors are added; k3s's version-3 base sets ``use_local_image_pull = true`` itself. No Go
    template syntax may follow the first line (k3s would execute it).
    """
    del version  # the base template carries the version line of its own
    return f"{BASE_TEMPLATE}\n\n{HEADER}\n{processors_toml(decoder, keys_dir, keyprovider_config)}"
