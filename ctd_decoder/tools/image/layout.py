"""Reading an OCI image layout (a directory, or an oci-archive tarball unpacked to a temporary one).

:func:`open_image` selects one image of the layout (by ``:REF``, or the only one) and lists, per
platform, its manifest and layer descriptors. Blobs are read as streams that check size and digest
as they go, so a corrupted layout is reported when it is read, never passed on.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ...ocicrypt import Descriptor, FileTooLargeError, read_bounded
from . import ocijson
from .errors import ImageError
from .hashing import BackgroundHash
from .reference import OCI_ARCHIVE, ImageReference, parse_reference

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
MAX_JSON_BLOB = 4 << 20
_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")


def blob_relpath(digest: str) -> str:
    """Return ``blobs/<algorithm>/<hex>`` for a digest; refuse anything that is not a plain digest."""
    if not _DIGEST.match(digest):
        raise ImageError(f"unsupported or malformed digest {digest!r}")
    algorithm, _, encoded = digest.partition(":")
    return os.path.join("blobs", algorithm, encoded)


@dataclass(frozen=True)
class Platform:
    """``os/architecture[/variant]`` as in an index entry or an image config."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` as ctr-enc's ``--platform`` takes it."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ImageError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(*parts)

    @classmethod
    def from_json(cls, obj: Any) -> Platform | None:
        """Return the platform of an index entry's ``platform`` member or of an image config."""
        if not isinstance(obj, dict):
            return None
        os_name, arch, variant = obj.get("os"), obj.get("architecture"), obj.get("variant") or ""
        if not isinstance(os_name, str) or not isinstance(arch, str) or not isinstance(variant, str):
            return None
        return cls(os_name, arch, variant)

    def matches(self, wanted: Platform) -> bool:
        """Tell whether this platform is ``wanted`` (a wanted platform without variant takes any)."""
        return (self.os, self.architecture) == (wanted.os, wanted.architecture) and (
            not wanted.variant or wanted.variant == self.variant
        )


def to_descriptor(obj: dict[str, Any]) -> Descriptor:
    """Return the ocicrypt :class:`Descriptor` of a JSON descriptor."""
    return Descriptor(obj.get("mediaType", ""), obj["digest"], obj["size"], dict(obj.get("annotations") or {}))


@dataclass
class ImageManifest:
    """One platform's image manifest: its descriptor (as the index lists it) and its parsed document."""

    descriptor: Descriptor
    document: dict[str, Any]
    platform: Platform | None
    raw_descriptor: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def layers(self) -> list[Descriptor]:
        """The layer descriptors, base layer first."""
        return [to_descriptor(layer) for layer in self.document["layers"]]


class VerifiedBlob:
    """A blob opened for reading; reaching its end checks the size and digest the descriptor gives."""

    def __init__(self, path: str, digest: str, size: int) -> None:
        self.digest = digest
        self.size = size
        try:
            self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 (closed by close())
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is missing from the layout") from None
        except OSError as err:
            raise ImageError(f"cannot read blob {digest}: {err.strerror}") from None
        self._hash = BackgroundHash(digest.partition(":")[0])
        self._seen = 0
        self._checked = False

    def _account(self, data: bytes) -> None:
        self._hash.update(data)
        self._seen += len(data)
        if self._seen > self.size:
            raise ImageError(f"blob {self.digest} is larger than the {self.size} bytes its descriptor says")

    def _finish(self) -> None:
        if self._checked:
            return
        self._checked = True
        if self._seen != self.size:
            raise ImageError(f"blob {self.digest} has {self._seen} bytes, its descriptor says {self.size}")
        if f"{self._hash.name}:{self._hash.hexdigest()}" != self.digest:
            raise ImageError(f"blob {self.digest} does not match its digest (the layout is corrupted)")

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all if negative); at the end, check size and digest."""
        try:
            data = self._file.read(size)
        except OSError as err:
            raise ImageError(f"cannot read blob {self.digest}: {err.strerror}") from None
        if data:
            self._account(bytes(data))
        if not data or size < 0:
            self._finish()
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` as far as possible; at the end, check size and digest."""
        try:
            count = self._file.readinto(buffer)  # type: ignore[attr-defined]
        except OSError as err:
            raise ImageError(f"cannot read blob {self.digest}: {err.strerror}") from None
        if count:
            self._account(bytes(memoryview(buffer)[:count]))
        else:
            self._finish()
        return int(count or 0)

    def close(self) -> None:
        """Close the file (without checking: a blob read only in part is not judged)."""
        self._hash.abandon()  # a no-op once the whole blob was read and checked
        self._file.close()

    def __enter__(self) -> VerifiedBlob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Image:
    """The selected image of a layout: the index.json entry, the image index if any, its manifests."""

    reference: ImageReference
    root: str
    entry: dict[str, Any]
    index: dict[str, Any] | None
    manifests: list[ImageManifest]

    def blob_path(self, digest: str) -> str:
        """Return the file path of blob ``digest`` (which may not exist)."""
        return os.path.join(self.root, blob_relpath(digest))

    def open_blob(self, descriptor: Descriptor) -> VerifiedBlob:
        """Open the blob a descriptor names, as a stream that checks its size and digest."""
        return VerifiedBlob(self.blob_path(descriptor.digest), descriptor.digest, descriptor.size)

    def read_blob(self, descriptor: Descriptor, limit: int = MAX_JSON_BLOB) -> bytes:
        """Return a small blob (a manifest, index or config) whole, checked."""
        if descriptor.size > limit:
            raise ImageError(f"blob {descriptor.digest} is {descriptor.size} bytes, more than the {limit} expected")
        with self.open_blob(descriptor) as blob:
            return blob.read()

    def select(self, platforms: list[Platform]) -> list[ImageManifest]:
        """Return the manifests for ``platforms`` (all if empty); each wanted platform must be present."""
        if not platforms:
            return list(self.manifests)
        chosen: list[ImageManifest] = []
        for wanted in platforms:
            found = [m for m in self.manifests if m.platform is not None and m.platform.matches(wanted)]
            if not found:
                have = ", ".join(str(m.platform) for m in self.manifests) or "none"
                raise ImageError(f"{self.reference}: no manifest for platform {wanted} (platforms: {have})")
            chosen += [m for m in found if m not in chosen]
        return chosen


def _read_file(path: str, what: str) -> bytes:
    try:
        return read_bounded(path, MAX_JSON_BLOB)
    except FileNotFoundError:
        raise ImageError(f"{what} is missing") from None
    except OSError as err:
        raise ImageError(f"cannot read {what}: {err.strerror}") from None
    except FileTooLargeError:
        raise ImageError(f"{what} is larger than {MAX_JSON_BLOB} bytes") from None


def _select_entry(index: dict[str, Any], reference: ImageReference) -> dict[str, Any]:
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ImageError(f"{reference}: index.json has no manifests list")
    entries = [ocijson.check_descriptor(e, f"{reference}: index.json entry") for e in entries]
    names = [(e.get("annotations") or {}).get(ocijson.REF_NAME_ANNOTATION) for e in entries]
    if reference.ref is not None:
        matching = [e for e, name in zip(entries, names, strict=True) if name == reference.ref]
        if not matching:
            known = ", ".join(sorted(n for n in names if n)) or "none"
            raise ImageError(f"{reference}: no image named {reference.ref!r} in the layout (names: {known})")
        selected: dict[str, Any] = matching[0]
        return selected
    if len(entries) != 1:
        raise ImageError(
            f"{reference}: the layout holds {len(entries)} images; name one as "
            f"{reference.transport}:{reference.path}:REF"
        )
    only: dict[str, Any] = entries[0]
    return only


def _load_manifest(image: Image, raw: dict[str, Any], platform: Platform | None) -> ImageManifest:
    descriptor = to_descriptor(raw)
    document = ocijson.parse_object(image.read_blob(descriptor), f"manifest {descriptor.digest}")
    config = ocijson.check_descriptor(document.get("config"), f"manifest {descriptor.digest}: config")
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise ImageError(f"manifest {descriptor.digest} has no layers list")
    for number, layer in enumerate(layers):
        ocijson.check_descriptor(layer, f"manifest {descriptor.digest}: layer {number}")
    manifest = ImageManifest(descriptor, document, platform, raw)
    if platform is None:
        config_doc = ocijson.parse_object(image.read_blob(to_descriptor(config)), f"config {config['digest']}")
        manifest.platform = Platform.from_json(config_doc)
    return manifest


def load_layout(root: str, reference: ImageReference) -> Image:
    """Read the layout at ``root`` and select the image ``reference`` names."""
    if not os.path.isdir(root):
        raise ImageError(f"{reference}: {root} is not an OCI layout directory")
    layout = ocijson.parse_object(_read_file(os.path.join(root, LAYOUT_FILE), f"{reference}: oci-layout"), "oci-layout")
    if layout.get("imageLayoutVersion") != "1.0.0":
        raise ImageError(f"{reference}: unsupported imageLayoutVersion {layout.get('imageLayoutVersion')!r}")
    index = ocijson.parse_object(_read_file(os.path.join(root, INDEX_FILE), f"{reference}: index.json"), "index.json")
    entry = _select_entry(index, reference)
    image = Image(reference, root, entry, None, [])
    media_type = entry.get("mediaType", "")
    if media_type in ocijson.INDEX_TYPES:
        document = ocijson.parse_object(image.read_blob(to_descriptor(entry)), f"image index {entry['digest']}")
        children = document.get("manifests")
        if not isinstance(children, list):
            raise ImageError(f"image index {entry['digest']} has no manifests list")
        image.index = document
        for child in children:
            ocijson.check_descriptor(child, f"image index {entry['digest']}: entry")
            if child.get("mediaType") not in ocijson.MANIFEST_TYPES:
                raise ImageError(f"image index {entry['digest']}: nested {child.get('mediaType')!r} is not supported")
            image.manifests.append(_load_manifest(image, child, Platform.from_json(child.get("platform"))))
    elif media_type in ocijson.MANIFEST_TYPES:
        image.manifests.append(_load_manifest(image, entry, Platform.from_json(entry.get("platform"))))
    else:
        raise ImageError(f"{reference}: unsupported manifest media type {media_type!r}")
    return image


def _member_target(name: str) -> str | None:
    """Return where an archive member belongs in the layout, or None to skip it."""
    name = name.removeprefix("./")
    if name in (LAYOUT_FILE, INDEX_FILE):
        return name
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and _DIGEST.match(f"{parts[1]}:{parts[2]}"):
        return name
    return None


def unpack_archive(path: str, target: str) -> None:
    """Unpack the layout files of an oci-archive tarball into ``target`` (nothing else is written)."""
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                relative = _member_target(member.name)
                if relative is None or not member.isfile():
                    continue
                destination = os.path.join(target, relative)
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                with source, open(destination, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
    except FileNotFoundError:
        raise ImageError(f"oci-archive {path} does not exist") from None
    except (tarfile.TarError, EOFError) as err:
        raise ImageError(f"oci-archive {path} is not a readable tar archive: {err}") from None
    except OSError as err:
        raise ImageError(f"cannot unpack oci-archive {path}: {err.strerror}") from None


@contextmanager
def open_image(text: str | ImageReference) -> Iterator[Image]:
    """Open the image a reference names; an oci-archive is unpacked to a temporary directory for the duration."""
    reference = parse_reference(text) if isinstance(text, str) else text
    if reference.transport != OCI_ARCHIVE:
        yield load_layout(reference.path, reference)
        return
    with tempfile.TemporaryDirectory(prefix="ocicrypt-archive-") as scratch:
        unpack_archive(reference.path, scratch)
        yield load_layout(scratch, reference)
