"""decrypt_layer: annotation elements, scheme order and the errors Go reports first."""

from __future__ import annotations

import base64
import io
import json

import pytest
from support.keygen import new_key, private_pem, public_pem
from support.layers import GZIP_ENCRYPTED

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.errors import LayerError, UnwrapError
from ctd_decoder.ocicrypt.keywrap import ANNOTATION_PREFIX, PUBOPTS_ANNOTATION
from ctd_decoder.ocicrypt.layer import decrypt_layer, encrypt_layer, unwrap_private_options

JWE = ANNOTATION_PREFIX + "jwe"


def _annotations(*kinds_per_element: list[str]) -> tuple[dict[str, str], list[list[bytes]]]:
    """Encrypt one layer once per element; return combined annotations and each element's private keys."""
    elements, keys_per_element, pubopts = [], [], ""
    for kinds in kinds_per_element:
        keys = [new_key(kind) for kind in kinds]
        ec = EncryptConfig({params.PUBKEYS: [public_pem(k) for k in keys]})
        annotations = encrypt_layer(ec, io.BytesIO(b"data"), io.BytesIO())
        elements.append(annotations[JWE])
        keys_per_element.append([private_pem(k) for k in keys])
        pubopts = annotations[PUBOPTS_ANNOTATION]
    return {JWE: ",".join(elements), PUBOPTS_ANNOTATION: pubopts}, keys_per_element


def _dc(*pems: bytes) -> DecryptConfig:
    return DecryptConfig({params.PRIVKEYS: list(pems), params.PRIVKEYS_PASSWORDS: [None] * len(pems)})


def test_recipients_added_later_in_a_second_element_are_found() -> None:
    annotations, keys = _annotations(["rsa2048"], ["p256"])
    options, scheme = unwrap_private_options(_dc(keys[1][0]), Descriptor(GZIP_ENCRYPTED, "", 0, annotations))
    assert scheme == "jwe"
    assert json.loads(options)["symkey"]


def test_undecodable_element_stops_that_scheme_like_go() -> None:
    annotations, keys = _annotations(["rsa2048"])
    annotations[JWE] = "%%%," + annotations[JWE]
    with pytest.raises(UnwrapError, match="could not base64 decode the annotation"):
        unwrap_private_options(_dc(keys[0][0]), Descriptor(GZIP_ENCRYPTED, "", 0, annotations))


def test_every_failing_element_is_explained_with_the_layer_digest() -> None:
    annotations, _ = _annotations(["rsa2048"], ["p384"])
    stranger = private_pem(new_key("p256"))
    with pytest.raises(UnwrapError) as caught:
        unwrap_private_options(_dc(stranger), Descriptor(GZIP_ENCRYPTED, "sha256:abc", 0, annotations))
    text = str(caught.value)
    assert text.startswith("no suitable key unwrapper found")
    assert "layer sha256:abc" in text and "key schemes in annotations: jwe" in text
    assert text.count("\n- jwe: ") == 2


def test_unconfigured_provider_annotation_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCICRYPT_KEYPROVIDER_CONFIG", raising=False)
    annotations = {ANNOTATION_PREFIX + "provider.kms": base64.b64encode(b"x").decode()}
    with pytest.raises(UnwrapError, match="missing private key needed for decryption") as caught:
        unwrap_private_options(DecryptConfig(), Descriptor(GZIP_ENCRYPTED, "", 0, annotations))
    assert "provider.kms" in str(caught.value)


def test_layer_without_key_annotations_says_so() -> None:
    with pytest.raises(UnwrapError, match="has no key annotations"):
        unwrap_private_options(DecryptConfig(), Descriptor(GZIP_ENCRYPTED, "", 0, {}))


def test_key_errors_win_over_a_missing_pubopts_like_go() -> None:
    annotations, keys = _annotations(["rsa2048"])
    del annotations[PUBOPTS_ANNOTATION]
    with pytest.raises(UnwrapError):
        decrypt_layer(_dc(private_pem(new_key("rsa2048"))), Descriptor(GZIP_ENCRYPTED, "", 0, annotations))
    with pytest.raises(LayerError, match="no cipher type provided"):
        decrypt_layer(_dc(keys[0][0]), Descriptor(GZIP_ENCRYPTED, "", 0, annotations))


@pytest.mark.parametrize(
    "media_type",
    [
        "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
        "application/vnd.oci.image.layer.v1.tar+zstd+encrypted",
        "application/vnd.oci.image.layer.v1.tar+encrypted",
    ],
)
def test_imgcrypt_media_types_are_accepted(media_type: str) -> None:
    annotations, keys = _annotations(["p256"])
    assert decrypt_layer(_dc(keys[0][0]), Descriptor(media_type, "", 0, annotations)).scheme == "jwe"


def test_wasm_encrypted_media_type_is_refused_as_imgcrypt_does() -> None:
    annotations, keys = _annotations(["p256"])
    wasm = "application/vnd.wasm.content.layer.v1+wasm+encrypted"
    with pytest.raises(LayerError, match="unsupporter layer MediaType"):
        decrypt_layer(_dc(keys[0][0]), Descriptor(wasm, "", 0, annotations))
