"""Decrypting and encrypting one image layer: annotations, key unwrapping and the layer cipher.

``decrypt_layer`` follows ocicrypt's ``DecryptLayer`` plus imgcrypt's media-type check, in the same
order (keys first, then public options, then the media type), so the first error an operator sees
is the one the Go decoder would report.
"""

from __future__ import annotations

import base64
import io
from typing import BinaryIO

from . import scope
from .blockcipher import DEFAULT_CIPHER, LayerDecryptor, PrivateOptions, PublicOptions, get_cipher
from .config import DecryptConfig, EncryptConfig
from .descriptor import Descriptor
from .diagnostics import names, printable, summarize
from .errors import LayerError, LimitError, OcicryptError, UnwrapError, WrapError
from .gojson import b64decode
from .keywrap import KeyWrapper, get_wrapper, schemes_for_recipients, schemes_in
from .spec import ANNOTATION_PREFIX, ENCRYPTED_MEDIA_TYPES, PUBOPTS_ANNOTATION


class LayerDecryption:
    """A layer whose key has been unwrapped: the decryptor to stream through, and where the key came from."""

    __slots__ = ("decryptor", "digest", "scheme")

    def __init__(self, decryptor: LayerDecryptor, digest: str, scheme: str) -> None:
        self.decryptor = decryptor
        self.digest = digest
        self.scheme = scheme


def _count_elements(annotations: dict[str, str], schemes: list[str]) -> int:
    return sum(annotations[ANNOTATION_PREFIX + scheme].count(",") + 1 for scheme in schemes)


def unwrap_private_options(dc: DecryptConfig, descriptor: Descriptor) -> tuple[bytes, str]:
    """Return the private-options JSON of the layer and the scheme that unwrapped it.

    The work is bounded (see :mod:`ctd_decoder.ocicrypt.scope`). Raises :class:`UnwrapError` whose
    text lists, per scheme, why it could not be used, repeated reasons summarized.
    """
    annotations = descriptor.annotations
    schemes = schemes_in(annotations)
    what = _describe_layer(descriptor, schemes)
    elements = _count_elements(annotations, schemes)
    if elements > scope.MAX_KEY_ELEMENTS:
        raise LimitError(
            f"{what}: {elements:,} wrapped keys, more than the {scope.MAX_KEY_ELEMENTS} any image needs; none was tried"
        )
    reasons: list[tuple[str, str]] = []
    tried_private_keys = False
    with scope.layer_scope():
        for scheme in schemes:
            wrapper = get_wrapper(scheme)
            if not wrapper.has_possible_keys(dc):
                reasons.append((scheme, f"skipped, no {wrapper.private_key_parameter()} given"))
                continue
            if wrapper.private_key_parameter() is not None:
                tried_private_keys = True
            try:
                result = _unwrap_scheme(dc, wrapper, annotations[ANNOTATION_PREFIX + scheme], scheme, reasons)
            except LimitError as err:
                reasons.append((scheme, str(err)))
                raise UnwrapError(f"{err}: {what}{_details(reasons)}") from None
            if result is not None:
                return result, scheme
    if not schemes:
        raise UnwrapError(f"missing private key needed for decryption: {what} has no key annotations")
    if not tried_private_keys:
        raise UnwrapError(f"missing private key needed for decryption: {what}{_details(reasons)}")
    raise UnwrapError(
        "no suitable key unwrapper found or none of the private keys could be used for decryption: "
        f"{what}{_details(reasons)}"
    )


def _unwrap_scheme(
    dc: DecryptConfig, wrapper: KeyWrapper, annotation: str, scheme: str, reasons: list[tuple[str, str]]
) -> bytes | None:
    """Try each wrapped key of one scheme in order; note why each failed; LimitError stops it all."""
    for element in annotation.split(","):
        try:
            wrapped = b64decode(element, "a key annotation element")
        except ValueError:
            reasons.append((scheme, "could not base64 decode the annotation"))
            return None
        try:
            result = wrapper.unwrap_key(dc, wrapped)
        except LimitError:
            raise
        except OcicryptError as err:
            limit = scope.limit_reached()  # a wrapper may report the spent budget as its own failure
            if limit is not None:
                raise limit from None
            reasons.append((scheme, str(err)))
            continue
        if result is not None:
            return result
    return None


def _details(reasons: list[tuple[str, str]]) -> str:
    return "".join(f"\n- {line}" for line in summarize(reasons))


def _describe_layer(descriptor: Descriptor, schemes: list[str]) -> str:
    digest = printable(descriptor.digest or "(no digest)", 80)
    media_type = printable(descriptor.media_type or "no media type", 80)
    return f"layer {digest} ({media_type}), key schemes in annotations: {names(schemes, 8) or 'none'}"


def _public_options(annotations: dict[str, str]) -> PublicOptions:
    encoded = annotations.get(PUBOPTS_ANNOTATION, "")
    if not encoded:
        return PublicOptions()
    try:
        data = b64decode(encoded, PUBOPTS_ANNOTATION)
    except ValueError:
        raise LayerError(f"the {PUBOPTS_ANNOTATION} annotation is not valid base64") from None
    return PublicOptions.from_json(data)


def decrypt_layer(dc: DecryptConfig, descriptor: Descriptor) -> LayerDecryption:
    """Unwrap the layer key and prepare its decryptor; nothing is read from the layer yet."""
    private_json, scheme = unwrap_private_options(dc, descriptor)
    private = PrivateOptions.from_json(private_json)
    public = _public_options(descriptor.annotations)
    decryptor = get_cipher(public.cipher).decryptor(public, private)
    if descriptor.media_type not in ENCRYPTED_MEDIA_TYPES:
        raise LayerError(
            f"unsupporter layer MediaType: {printable(descriptor.media_type)} (expected one of "
            f"{', '.join(sorted(ENCRYPTED_MEDIA_TYPES))})"
        )
    return LayerDecryption(decryptor, private.digest, scheme)


def _wrappers_for(ec: EncryptConfig) -> list[tuple[str, KeyWrapper]]:
    schemes = schemes_for_recipients({name for name, values in ec.parameters.items() if any(values)})
    if not schemes:
        raise WrapError("no recipients given to encrypt the layer for")
    return [(scheme, get_wrapper(scheme)) for scheme in schemes]


def _append_wrapped(annotations: dict[str, str], scheme: str, wrapped: bytes) -> None:
    """Add a wrapped key to the scheme's comma-separated annotation, as ocicrypt's preWrapKeys does."""
    key = ANNOTATION_PREFIX + scheme
    encoded = base64.b64encode(wrapped).decode("ascii")
    annotations[key] = f"{annotations[key]},{encoded}" if annotations.get(key) else encoded


def encrypt_layer(
    ec: EncryptConfig,
    plaintext: BinaryIO,
    out: BinaryIO,
    cipher_name: str = DEFAULT_CIPHER,
    digest: str | None = None,
) -> dict[str, str]:
    """Encrypt ``plaintext`` into ``out`` and return the annotations to put on the layer descriptor.

    ``digest`` is the plaintext's digest for the private options when the caller already checks it
    (Go takes it from the descriptor); without it the plaintext is hashed here.
    """
    import hashlib

    cipher = get_cipher(cipher_name)
    wrappers = _wrappers_for(ec)
    private = cipher.new_private_options("")
    encryptor = cipher.encryptor(private)
    hasher = hashlib.sha256() if digest is None else None
    while chunk := plaintext.read(io.DEFAULT_BUFFER_SIZE * 128):
        if hasher is not None:
            hasher.update(chunk)
        out.write(encryptor.update(chunk))
    public = encryptor.finalize()
    private.digest = "sha256:" + hasher.hexdigest() if hasher is not None else digest or ""
    annotations: dict[str, str] = {}
    for scheme, wrapper in wrappers:
        wrapped = wrapper.wrap_keys(ec, private.to_json())
        if wrapped is not None:
            _append_wrapped(annotations, scheme, wrapped)
    if not annotations:
        raise WrapError("none of the given recipients could be used")
    annotations[PUBOPTS_ANNOTATION] = base64.b64encode(public.to_json()).decode("ascii")
    return annotations


def add_recipients(ec: EncryptConfig, dc: DecryptConfig, descriptor: Descriptor) -> dict[str, str]:
    """Return an encrypted layer's annotations with its key also wrapped for ``ec``'s recipients.

    As ocicrypt's EncryptLayer on an already-encrypted layer: the key is unwrapped with ``dc`` and
    wrapped again; the new wrapped keys are appended to each scheme's annotation, the layer data and
    its other annotations stay as they are.
    """
    wrappers = _wrappers_for(ec)
    private_json, _ = unwrap_private_options(dc, descriptor)
    annotations = dict(descriptor.annotations)
    added = False
    for scheme, wrapper in wrappers:
        wrapped = wrapper.wrap_keys(ec, private_json)
        if wrapped is not None:
            _append_wrapped(annotations, scheme, wrapped)
            added = True
    if not added:
        raise WrapError("none of the given recipients could be used")
    return annotations
