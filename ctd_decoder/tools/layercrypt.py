"""The per-layer operations of the image subcommands: encrypt, decrypt, add recipients, rotate keys.

Each is a :class:`LayerOperation`: which layers it changes, and a transform that returns the layer's
new JSON descriptor after writing its blob (or None to keep the layer).
Layers stream through in chunks; nothing is kept in memory but the chunk being processed.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ..ocicrypt import (
    DecryptConfig,
    EncryptConfig,
    IntegrityError,
    LayerDecryptor,
    LayerError,
    UnwrapError,
    add_recipients,
    decrypt_layer,
    decrypt_stream,
    encrypt_layer,
)
from ..ocicrypt.spec import (
    ANNOTATION_PREFIX,
    ENC_ANNOTATION_PREFIX,
    ENCRYPTED_MEDIA_TYPES,
    ENCRYPTED_SUFFIX,
    PUBOPTS_ANNOTATION,
)
from .image.errors import ImageError
from .image.hashing import BackgroundHash
from .image.layout import Image, VerifiedBlob, to_descriptor
from .image.ocijson import DOCKER_LAYER_TO_OCI
from .image.rewrite import LayerOperation
from .image.writer import LayoutWriter
from .progress import Progress

PLAIN_LAYER_TYPES = {media_type.removesuffix(ENCRYPTED_SUFFIX) for media_type in ENCRYPTED_MEDIA_TYPES}
READ_CHUNK = 2 << 20


def is_encrypted(layer: dict[str, Any]) -> bool:
    """Tell whether a layer descriptor is an encrypted layer (media type and key annotations)."""
    annotations = layer.get("annotations") or {}
    return layer.get("mediaType", "").endswith(ENCRYPTED_SUFFIX) and any(
        key.startswith(ANNOTATION_PREFIX) for key in annotations
    )


def _label(layer: dict[str, Any], action: str) -> str:
    return f"{action} {layer['digest'][:19]}"


def _plain_annotations(layer: dict[str, Any]) -> dict[str, str]:
    annotations: dict[str, str] = layer.get("annotations") or {}
    return {key: value for key, value in annotations.items() if not key.startswith(ENC_ANNOTATION_PREFIX)}


class _ProgressReader:
    """A blob stream that reports progress as it is read."""

    def __init__(self, blob: VerifiedBlob | _DecryptingReader, progress: Progress) -> None:
        self._blob = blob
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._blob.read(size)
        self._progress.advance(len(data))
        return data


class _Checks:
    """Wraps a layer decryptor to count the ciphertext and compute the plaintext's digest.

    The blob's own digest is not hashed on the way: the HMAC, whose tag the manifest carries,
    already authenticates every byte. Only when the tag fails is the blob at ``blob_path`` hashed,
    to tell a corrupted layout from a wrong key or tampered annotations.
    """

    def __init__(self, inner: LayerDecryptor, layer: dict[str, Any], progress: Progress, blob_path: str | None) -> None:
        self._inner = inner
        self._layer = layer
        self._cipher_size = 0
        self._plain_hash = BackgroundHash()
        self._progress = progress
        self._blob_path = blob_path

    def authenticate(self, ciphertext: memoryview) -> None:
        self._cipher_size += len(ciphertext)
        self._inner.authenticate(ciphertext)

    def decrypt_into(self, ciphertext: memoryview, out: bytearray) -> int:
        count = self._inner.decrypt_into(ciphertext, out)
        self._plain_hash.update(bytes(memoryview(out)[:count]))  # ``out`` is reused: copy for the hash thread
        self._progress.advance(count)
        return count

    def verify(self) -> None:
        digest = self._layer["digest"]
        if self._cipher_size != self._layer["size"]:
            raise ImageError(f"blob {digest} has {self._cipher_size} bytes, its descriptor says {self._layer['size']}")
        # The digest in the private options is not compared either: skopeo records the source
        # blob's digest even when it compresses the layer before encrypting it.
        try:
            self._inner.verify()
        except IntegrityError:
            if self._blob_path is not None and _file_digest(self._blob_path, digest) != digest:
                raise ImageError(f"blob {digest} does not match its digest (the layout is corrupted)") from None
            raise

    @property
    def plaintext_digest(self) -> str:
        return "sha256:" + self._plain_hash.hexdigest()


def _file_digest(path: str, digest: str) -> str:
    algorithm = digest.partition(":")[0]
    with open(path, "rb") as handle:
        return f"{algorithm}:{hashlib.file_digest(handle, algorithm).hexdigest()}"


class _DecryptingReader:
    """Decrypts a blob as it is read, checking the blob's digest and the tag at the end (for rotation).

    Unauthenticated plaintext flows on only into the new layer blob, which is discarded with the
    whole destination if the tag turns out wrong.
    """

    def __init__(self, blob: VerifiedBlob, checks: _Checks) -> None:
        self._blob = blob
        self._checks = checks
        self._buffer = bytearray(READ_CHUNK)
        self._out = bytearray(READ_CHUNK)

    def read(self, size: int = -1) -> bytes:
        view = memoryview(self._buffer)[: READ_CHUNK if size < 0 else min(size, READ_CHUNK)]
        count = self._blob.readinto(view)
        if not count:
            self._checks.verify()
            return b""
        self._checks.authenticate(view[:count])
        self._checks.decrypt_into(view[:count], self._out)
        return bytes(self._out[:count])


def _always(_layer: dict[str, Any]) -> bool:
    return True


def encrypt(ec: EncryptConfig, dc: DecryptConfig) -> LayerOperation:
    """Return the operation of ``ocicrypt encrypt``: encrypt plain layers, add recipients to encrypted ones."""

    def transform(image: Image, writer: LayoutWriter, layer: dict[str, Any]) -> dict[str, Any] | None:
        if is_encrypted(layer):
            return _add_recipients(image, writer, layer, ec, dc)
        media_type = DOCKER_LAYER_TO_OCI.get(layer.get("mediaType", ""), layer.get("mediaType", ""))
        if media_type not in PLAIN_LAYER_TYPES:
            raise LayerError(f"unsupporter layer MediaType: {layer.get('mediaType')} (layer {layer['digest']})")
        progress = Progress(_label(layer, "encrypting"), layer["size"])
        try:
            with writer.new_blob() as sink:
                with image.open_blob(to_descriptor(layer)) as blob:
                    annotations = encrypt_layer(ec, _ProgressReader(blob, progress), sink, digest=layer["digest"])  # type: ignore[arg-type]
                digest, size = sink.finish()
        finally:
            progress.finish()
        return dict(
            layer,
            mediaType=media_type + ENCRYPTED_SUFFIX,
            digest=digest,
            size=size,
            annotations={**_plain_annotations(layer), **annotations},
        )

    return LayerOperation(transform, _always, lambda layer: "recipients added" if is_encrypted(layer) else "encrypted")


def _add_recipients(
    image: Image, writer: LayoutWriter, layer: dict[str, Any], ec: EncryptConfig, dc: DecryptConfig
) -> dict[str, Any]:
    try:
        annotations = add_recipients(ec, dc, to_descriptor(layer))
    except UnwrapError as err:
        raise UnwrapError(
            f"layer {layer['digest']} is already encrypted: adding recipients needs a --key that unwraps it; {err}"
        ) from None
    with image.open_blob(to_descriptor(layer)) as blob:
        writer.copy_blob(blob)
    return dict(layer, annotations=annotations)


def add(ec: EncryptConfig, dc: DecryptConfig) -> LayerOperation:
    """Return the operation of ``recipients add``: re-wrap encrypted layers' keys, data untouched."""

    def transform(image: Image, writer: LayoutWriter, layer: dict[str, Any]) -> dict[str, Any] | None:
        return _add_recipients(image, writer, layer, ec, dc) if is_encrypted(layer) else None

    return LayerOperation(transform, is_encrypted, lambda _layer: "recipients added")


def _open_fd(image: Image, layer: dict[str, Any]) -> int:
    try:
        return os.open(image.blob_path(layer["digest"]), os.O_RDONLY)
    except FileNotFoundError:
        raise ImageError(f"blob {layer['digest']} is missing from the layout") from None
    except OSError as err:
        raise ImageError(f"cannot read blob {layer['digest']}: {err.strerror}") from None


def decrypt(dc: DecryptConfig) -> LayerOperation:
    """Return the operation of ``ocicrypt decrypt``: decrypt encrypted layers, keep plain ones."""

    def transform(image: Image, writer: LayoutWriter, layer: dict[str, Any]) -> dict[str, Any] | None:
        if not is_encrypted(layer):
            return None
        decryption = decrypt_layer(dc, to_descriptor(layer))
        progress = Progress(_label(layer, "decrypting"), layer["size"])
        checks = _Checks(decryption.decryptor, layer, progress, image.blob_path(layer["digest"]))
        source = _open_fd(image, layer)
        try:
            with writer.new_blob() as sink:
                size = decrypt_stream(checks, source, sink.file.fileno(), size_hint=layer["size"])
                digest, size = sink.finish(checks.plaintext_digest, size)
        finally:
            os.close(source)
            progress.finish()
        return dict(
            layer,
            mediaType=layer["mediaType"].removesuffix(ENCRYPTED_SUFFIX),
            digest=digest,
            size=size,
            annotations=_plain_annotations(layer),
        )

    return LayerOperation(transform, is_encrypted, lambda _layer: "decrypted")


def rotate(ec: EncryptConfig, dc: DecryptConfig) -> LayerOperation:
    """Return the operation of ``recipients rotate``: decrypt and re-encrypt under a new layer key."""

    def transform(image: Image, writer: LayoutWriter, layer: dict[str, Any]) -> dict[str, Any] | None:
        if not is_encrypted(layer):
            return None
        decryption = decrypt_layer(dc, to_descriptor(layer))
        progress = Progress(_label(layer, "rotating"), layer["size"])
        checks = _Checks(decryption.decryptor, layer, progress, None)
        try:
            with writer.new_blob() as sink:
                with image.open_blob(to_descriptor(layer)) as blob:
                    plaintext = _DecryptingReader(blob, checks)
                    annotations = encrypt_layer(ec, plaintext, sink)  # type: ignore[arg-type]
                digest, size = sink.finish()
        finally:
            progress.finish()
        kept = {
            key: value for key, value in (layer.get("annotations") or {}).items() if key not in _key_annotations(layer)
        }
        return dict(layer, digest=digest, size=size, annotations={**kept, **annotations})

    return LayerOperation(transform, is_encrypted, lambda _layer: "rotated")


def _key_annotations(layer: dict[str, Any]) -> set[str]:
    annotations = layer.get("annotations") or {}
    return {key for key in annotations if key.startswith(ANNOTATION_PREFIX) or key == PUBOPTS_ANNOTATION}
