"""Small OCI image layouts for tests: built in Python, encrypted by skopeo or by our own library.

skopeo accepts a minimal layout (oci-layout, index.json with a ref name, config, manifest, one
tar+gzip layer) written by :func:`make_layout`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctd_decoder.ocicrypt.config import EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.layer import encrypt_layer

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
REF_ANNOTATION = "org.opencontainers.image.ref.name"


def sha256_digest(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tar(files: dict[str, bytes], executables: frozenset[str] = frozenset()) -> bytes:
    """Return a deterministic tar archive holding ``files`` (mode 0644, 0755 for ``executables``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o755 if name in executables else 0o644
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@dataclass
class Layer:
    """One layer of a layout: its descriptor (as JSON) and its blob."""

    descriptor: dict[str, Any]
    blob: bytes

    def ocicrypt_descriptor(self) -> Descriptor:
        """Return the descriptor as the decoder's payload carries it."""
        return Descriptor(
            self.descriptor["mediaType"],
            self.descriptor["digest"],
            self.descriptor["size"],
            dict(self.descriptor.get("annotations", {})),
        )


def _write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = sha256_digest(data)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / digest.split(":", 1)[1]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def _write_image(layout: Path, config: bytes, layers: list[dict[str, Any]], ref: str) -> None:
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, **_write_blob(layout, config)},
        "layers": layers,
    }
    manifest_descriptor = {"mediaType": MANIFEST, **_write_blob(layout, json.dumps(manifest).encode())}
    manifest_descriptor["annotations"] = {REF_ANNOTATION: ref}
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest_descriptor]}))


def make_layout(
    layout: Path,
    layers_files: list[dict[str, bytes]],
    ref: str = "v1",
    compress: bool = True,
    executables: frozenset[str] = frozenset(),
) -> None:
    """Write an OCI layout with one layer per entry of ``layers_files`` (``executables``: see make_tar)."""
    layout.mkdir(parents=True, exist_ok=True)
    diff_ids, descriptors = [], []
    for files in layers_files:
        tar = make_tar(files, executables)
        diff_ids.append(sha256_digest(tar))
        blob = gzip.compress(tar, mtime=0) if compress else tar
        descriptors.append({"mediaType": LAYER_GZIP if compress else LAYER_TAR, **_write_blob(layout, blob)})
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    _write_image(layout, json.dumps(config).encode(), descriptors, ref)


def _manifest(layout: Path, ref: str) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    for entry in index["manifests"]:
        if entry.get("annotations", {}).get(REF_ANNOTATION) == ref:
            manifest: dict[str, Any] = json.loads(_blob(layout, entry["digest"]))
            return manifest
    raise KeyError(f"no image {ref!r} in {layout}")


def read_layers(layout: Path, ref: str = "v1") -> list[Layer]:
    """Return the layers of image ``ref`` with their blobs."""
    return [Layer(entry, _blob(layout, entry["digest"])) for entry in _manifest(layout, ref)["layers"]]


def layer_digests(layout: Path, ref: str = "v1") -> list[str]:
    """Return the layer digests of image ``ref``, each checked against its blob."""
    layers = read_layers(layout, ref)
    for layer in layers:
        assert sha256_digest(layer.blob) == layer.descriptor["digest"], f"blob of {layer.descriptor['digest']} differs"
    return [layer.descriptor["digest"] for layer in layers]


def diff_ids(layout: Path, ref: str = "v1") -> list[str]:
    """Return the image config's ``rootfs.diff_ids``."""
    config = json.loads(_blob(layout, _manifest(layout, ref)["config"]["digest"]))
    return list(config["rootfs"]["diff_ids"])


def encrypt_layout(source: Path, target: Path, ec: EncryptConfig, ref: str = "v1") -> None:
    """Encrypt every layer of ``source`` with our library into a new layout ``target``."""
    manifest = _manifest(source, ref)
    target.mkdir(parents=True, exist_ok=True)
    layers = []
    for entry in manifest["layers"]:
        out = io.BytesIO()
        annotations = encrypt_layer(ec, io.BytesIO(_blob(source, entry["digest"])), out)
        layers.append(
            {
                "mediaType": entry["mediaType"] + "+encrypted",
                **_write_blob(target, out.getvalue()),
                "annotations": annotations,
            }
        )
    _write_image(target, _blob(source, manifest["config"]["digest"]), layers, ref)


def skopeo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run skopeo and fail the test with its stderr if it fails."""
    exe = shutil.which("skopeo")
    assert exe, "skopeo is not installed (apt-get install skopeo); the test runner installs it"
    result = subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"skopeo {' '.join(args)} failed: {result.stderr}"
    return result


INDEX = "application/vnd.oci.image.index.v1+json"


def make_index_layout(layout: Path, platforms: list[str], ref: str = "v1") -> None:
    """Write an OCI layout whose image ``ref`` is an image index with one small image per ``os/arch``."""
    layout.mkdir(parents=True, exist_ok=True)
    entries = []
    for platform in platforms:
        os_name, arch = platform.split("/")
        tar = make_tar({f"etc/{arch}.txt": f"built for {platform}\n".encode() * 100})
        layer = {"mediaType": LAYER_GZIP, **_write_blob(layout, gzip.compress(tar, mtime=0))}
        config = {"architecture": arch, "os": os_name, "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]}}
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, **_write_blob(layout, json.dumps(config).encode())},
            "layers": [layer],
        }
        entries.append(
            {
                "mediaType": MANIFEST,
                **_write_blob(layout, json.dumps(manifest).encode()),
                "platform": {"architecture": arch, "os": os_name},
            }
        )
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}
    descriptor = {"mediaType": INDEX, **_write_blob(layout, json.dumps(index).encode())}
    descriptor["annotations"] = {REF_ANNOTATION: ref}
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))


def _image_entry(layout: Path, ref: str) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    [entry] = [e for e in index["manifests"] if e.get("annotations", {}).get(REF_ANNOTATION) == ref]
    return dict(entry)


def _platform_manifests(layout: Path, entry: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Per ``os/arch`` (``-`` for a lone manifest): the manifest's descriptor and document. An index is
    told by its ``manifests`` member, so Docker manifest lists and documents without ``mediaType`` count."""
    document = json.loads(_blob(layout, entry["digest"]))
    if "manifests" not in document:
        return {"-": (entry, document)}
    result = {}
    for child in document["manifests"]:
        platform = f"{child['platform']['os']}/{child['platform']['architecture']}"
        result[platform] = (child, json.loads(_blob(layout, child["digest"])))
    return result


def image_layers(layout: Path, ref: str = "v1") -> dict[str, list[dict[str, Any]]]:
    """Return, per ``os/arch`` (or ``-`` for a lone manifest), the layer descriptors of image ``ref``."""
    return {p: m["layers"] for p, (_, m) in _platform_manifests(layout, _image_entry(layout, ref)).items()}


def image_media_types(layout: Path, ref: str = "v1") -> dict[str, Any]:
    """The media types of image ``ref``, descriptor by descriptor: its index.json entry's and, per
    platform, the manifest descriptor's, the config's and each layer's with its annotation names."""
    entry = _image_entry(layout, ref)
    shape: dict[str, Any] = {"image": entry["mediaType"]}
    for platform, (descriptor, manifest) in _platform_manifests(layout, entry).items():
        shape[platform] = {
            "manifest": descriptor["mediaType"],
            "config": manifest["config"]["mediaType"],
            "layers": [(layer["mediaType"], sorted(layer.get("annotations") or {})) for layer in manifest["layers"]],
        }
    return shape


def image_blobs(layout: Path, ref: str = "v1") -> tuple[dict[str, Any], dict[str, bytes]]:
    """Image ``ref``'s index.json entry and every blob it references (index, manifests, configs, layers),
    by digest, in that order."""
    entry = _image_entry(layout, ref)
    digests = [entry["digest"]]
    for descriptor, manifest in _platform_manifests(layout, entry).values():
        digests += [descriptor["digest"], manifest["config"]["digest"]]
        digests += [layer["digest"] for layer in manifest["layers"]]
    return entry, {digest: _blob(layout, digest) for digest in dict.fromkeys(digests)}


def manifest_documents(layout: Path, ref: str = "v1") -> dict[str, dict[str, Any]]:
    """Per ``os/arch`` (or ``-``), the manifest document of image ``ref``."""
    return {p: m for p, (_, m) in _platform_manifests(layout, _image_entry(layout, ref)).items()}


def ocicrypt(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the installed ``ocicrypt`` command (next to the test interpreter); with ``check``, require success."""
    import os
    import sys

    exe = shutil.which("ocicrypt", path=os.path.dirname(sys.executable))
    assert exe, "ocicrypt is not installed next to the test interpreter"
    result = subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=300, check=False)
    if check:
        assert result.returncode == 0, f"ocicrypt {' '.join(args)} failed: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result
