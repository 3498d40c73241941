"""Property tests: every parser of attacker input raises only the project's own errors.

Annotations, the payload and key files are arbitrary bytes or JSON of any shape; no input may end in
TypeError, RecursionError, zlib.error, UnicodeError ... (which the decoder reports as an internal
error). Each parser gets random bytes and structured documents close to what it expects.
Cost: a few seconds per parser (hypothesis' default budget, deadline off for slow CI cores).
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.keygen import new_key, private_pem

from ctd_decoder.decoder.payload import PAYLOAD_TYPE_URL, parse_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt import keys
from ctd_decoder.ocicrypt.blockcipher import PrivateOptions, PublicOptions
from ctd_decoder.ocicrypt.config import DecryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.errors import OcicryptError
from ctd_decoder.ocicrypt.keywrap import ANNOTATION_PREFIX, PUBOPTS_ANNOTATION
from ctd_decoder.ocicrypt.keywrap import jwe as jwe_module
from ctd_decoder.ocicrypt.keywrap.pgp import wrapper as pgp
from ctd_decoder.ocicrypt.keywrap.pgp.packets import PacketError
from ctd_decoder.ocicrypt.keywrap.pkcs7 import der
from ctd_decoder.ocicrypt.keywrap.pkcs7 import wrapper as pkcs7
from ctd_decoder.ocicrypt.keywrap.pkcs11 import wrapper as pkcs11
from ctd_decoder.ocicrypt.layer import unwrap_private_options

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RSA, EC = new_key("rsa2048"), new_key("p256")
DC = DecryptConfig({params.PRIVKEYS: [private_pem(RSA), private_pem(EC)], params.PRIVKEYS_PASSWORDS: [None, None]})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
deep = st.integers(1, 5000).map(lambda depth: "[" * depth + "]" * depth)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _near(names: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(names) | st.text(max_size=6), values, max_size=len(names))


header_values = (
    st.sampled_from([*jwe_module.KEY_ALGORITHMS, *jwe_module.CONTENT_ALGORITHMS, "DEF", "P-256", "EC", "AA", ""])
    | json_values
)
headers = _near(["alg", "enc", "zip", "epk", "apu", "apv", "crv", "kty", "x", "y"], header_values)
encoded_headers = (
    headers.map(lambda h: b64url(json.dumps(h).encode()))
    | st.text(max_size=10)
    | deep.map(lambda d: b64url(d.encode()))
)
recipient = _near(["header", "encrypted_key"], headers | encoded_headers | json_values)
documents = _near(
    ["protected", "unprotected", "header", "recipients", "encrypted_key", "iv", "ciphertext", "tag", "aad"],
    encoded_headers | headers | st.lists(recipient | json_values, max_size=3) | json_values,
)


def _only_project_errors(call: Any, *args: Any) -> None:
    with contextlib.suppress(OcicryptError):
        call(*args)


@SETTINGS
@given(st.binary(max_size=300) | documents.map(lambda d: json.dumps(d).encode()) | deep.map(str.encode))
def test_jwe_unwrap_raises_only_project_errors(wrapped: bytes) -> None:
    _only_project_errors(jwe_module.WRAPPER.unwrap_key, DC, wrapped)


@SETTINGS
@given(st.lists(encoded_headers | st.text(max_size=8), min_size=5, max_size=5).map(lambda p: ".".join(p).encode()))
def test_jwe_compact_form_raises_only_project_errors(wrapped: bytes) -> None:
    _only_project_errors(jwe_module.WRAPPER.unwrap_key, DC, wrapped)


def _der_tree(draw: Any, depth: int = 0) -> bytes:
    tag = draw(st.sampled_from([0x30, 0x31, 0x02, 0x04, 0x06, 0x05, 0x80, 0x84, 0xA0, 0x10]))
    if depth < 5 and tag in (0x30, 0x31, 0xA0) and draw(st.booleans()):
        content = b"".join(_der_tree(draw, depth + 1) for _ in range(draw(st.integers(0, 4))))
    else:
        content = draw(st.binary(max_size=20))
    return der.encode(tag, content)


der_trees = st.composite(lambda draw: _der_tree(draw))()


@SETTINGS
@given(st.binary(max_size=300) | der_trees)
def test_der_reader_raises_only_der_errors(data: bytes) -> None:
    try:
        for element in der.parse_all(data):
            for child in element.children() if element.constructed else []:
                _ = child.content, child.encoded
    except der.DerError:
        pass


@SETTINGS
@given(st.binary(max_size=300) | der_trees)
def test_pkcs7_envelope_parser_raises_only_der_errors(data: bytes) -> None:
    with contextlib.suppress(der.DerError):
        pkcs7.parse_envelope(data)


@SETTINGS
@given(st.binary(max_size=300))
def test_openpgp_message_reader_raises_only_its_own_errors(data: bytes) -> None:
    with contextlib.suppress(PacketError):
        pgp.message_recipients(data)


blob_documents = _near(
    ["version", "recipients"],
    st.lists(_near(["version", "hash", "blob"], st.sampled_from(["sha1", "sha256", "AA=="]) | json_values))
    | json_values,
)


@SETTINGS
@given(st.binary(max_size=200) | blob_documents.map(lambda d: json.dumps(d).encode()) | deep.map(str.encode))
def test_pkcs11_blob_parser_raises_only_project_errors(data: bytes) -> None:
    _only_project_errors(pkcs11._parse_blob, data)


options = _near(["cipher", "hmac", "cipheroptions", "symkey", "digest"], st.sampled_from(["AA==", ""]) | json_values)


@SETTINGS
@given(st.binary(max_size=200) | options.map(lambda d: json.dumps(d).encode()) | deep.map(str.encode))
def test_layer_options_parsers_raise_only_project_errors(data: bytes) -> None:
    _only_project_errors(PublicOptions.from_json, data)
    _only_project_errors(PrivateOptions.from_json, data)


jwks = _near(
    ["kty", "crv", "n", "e", "d", "p", "q", "x", "y"],
    st.sampled_from(["RSA", "EC", "P-256", "AQAB", "AA"]) | json_values,
)


@SETTINGS
@given(
    st.binary(max_size=300) | jwks.map(lambda d: json.dumps(d).encode()) | deep.map(str.encode),
    st.none() | st.binary(max_size=4),
)
def test_private_key_parser_raises_only_private_key_errors(data: bytes, password: bytes | None) -> None:
    _only_project_errors(keys.parse_private_key, data, password)


def _any_bytes(value: bytes) -> bytes:
    from google.protobuf import any_pb2

    serialized: bytes = any_pb2.Any(type_url=PAYLOAD_TYPE_URL, value=value).SerializeToString()
    return serialized


payload_documents = _near(
    ["DecryptConfig", "Descriptor"],
    _near(["Parameters", "mediaType", "digest", "size", "annotations"], json_values) | json_values,
)


@SETTINGS
@given(
    st.binary(max_size=200)
    | payload_documents.map(lambda d: _any_bytes(json.dumps(d).encode()))
    | deep.map(lambda d: _any_bytes(d.encode()))
)
def test_payload_parser_raises_only_project_errors(data: bytes) -> None:
    _only_project_errors(parse_payload, data)


annotation_names = st.sampled_from(
    [ANNOTATION_PREFIX + s for s in ("jwe", "pkcs7", "pkcs11", "provider.x", "x\x1b")] + [PUBOPTS_ANNOTATION]
)
annotation_values = (
    st.text(max_size=40)
    | st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode())
    | documents.map(lambda d: base64.b64encode(json.dumps(d).encode()).decode())
)


@SETTINGS
@given(st.dictionaries(annotation_names, annotation_values, max_size=4), st.text(max_size=40))
def test_layer_unwrapping_raises_only_project_errors(annotations: dict[str, str], media_type: str) -> None:
    _only_project_errors(unwrap_private_options, DC, Descriptor(media_type, "sha256:00", 1, annotations))
