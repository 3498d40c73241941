"""Mutations of a seed, and how they turn it into one decoder input.

A mutation is a plain tuple ``(kind, *arguments)`` so that a failing case can be written down as a
regression example. :func:`build` applies a list of them to a seed stage by stage: keys and
parameters, private options, annotations, the payload JSON, its text, the protobuf envelope, the
layer stream, the command line.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.protobuf import any_pb2

from ctd_decoder.decoder.payload import PAYLOAD_TYPE_URL
from ctd_decoder.ocicrypt.config import EncryptConfig
from ctd_decoder.ocicrypt.keywrap import ANNOTATION_PREFIX, PUBOPTS_ANNOTATION
from ctd_decoder.ocicrypt.keywrap.jwe import WRAPPER as JWE_WRAPPER

from .document import Members, Raw, dumps, loads
from .harness import Input
from .seeds import Seed

Mutation = tuple[Any, ...]
Path_ = tuple[str | int, ...]

KEY_PASSWORD = b"diff-pass"


@dataclass
class Draft:
    """The input under construction."""

    seed: Seed
    parameters: dict[str, Any]
    annotations: dict[str, str]
    descriptor: Members = field(default_factory=Members)
    document: Any = None
    text: bytes = b""
    payload: bytes | None = None
    layer: bytes = b""
    args: tuple[str, ...] = ()
    enveloped: bool = False


# --- keys and parameters -------------------------------------------------------------------------


def _serialize(key: Any, fmt: str) -> tuple[bytes, bytes | None]:
    """Return the key in ``fmt`` and the password it needs (None: no password)."""
    pkcs8, traditional = serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL
    pem, der = serialization.Encoding.PEM, serialization.Encoding.DER
    plain = serialization.NoEncryption()
    if fmt == "pkcs8-pem":
        return key.private_bytes(pem, pkcs8, plain), None
    if fmt == "traditional-pem":
        return key.private_bytes(pem, traditional, plain), None
    if fmt == "pkcs8-der":
        return key.private_bytes(der, pkcs8, plain), None
    if fmt == "traditional-der":
        return key.private_bytes(der, traditional, plain), None
    if fmt == "legacy-encrypted-pem":
        return key.private_bytes(pem, traditional, serialization.BestAvailableEncryption(KEY_PASSWORD)), KEY_PASSWORD
    if fmt == "encrypted-pkcs8-pem":
        return key.private_bytes(pem, pkcs8, serialization.BestAvailableEncryption(KEY_PASSWORD)), KEY_PASSWORD
    if fmt == "public-pem":
        return key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo), None
    if fmt == "jwk":
        return _jwk(key), None
    raise ValueError(fmt)


def _b64url_int(value: int, size: int | None = None) -> str:
    raw = value.to_bytes(size or (value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwk(key: Any) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        public = numbers.public_numbers
        jwk = {
            "kty": "RSA",
            "n": _b64url_int(public.n),
            "e": _b64url_int(public.e),
            "d": _b64url_int(numbers.d),
            "p": _b64url_int(numbers.p),
            "q": _b64url_int(numbers.q),
            "dp": _b64url_int(numbers.dmp1),
            "dq": _b64url_int(numbers.dmq1),
            "qi": _b64url_int(numbers.iqmp),
        }
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        numbers_ec = key.private_numbers()
        size = (key.curve.key_size + 7) // 8
        jwk = {
            "kty": "EC",
            "crv": {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name],
            "x": _b64url_int(numbers_ec.public_numbers.x, size),
            "y": _b64url_int(numbers_ec.public_numbers.y, size),
            "d": _b64url_int(numbers_ec.private_value, size),
        }
    return json.dumps(jwk).encode()


def key_format(draft: Draft, fmt: str) -> None:
    """Give the seed's own key (the first ``privkeys`` entry) in another format."""
    keys = draft.parameters.get("privkeys")
    if not keys or draft.seed.private_key is None:
        return
    keys[0], password = _serialize(draft.seed.private_key, fmt)
    passwords = draft.parameters.get("privkeys-passwords")
    if passwords:
        passwords[0] = password


def key_extra(draft: Draft, where: str, what: str, password: str) -> None:
    """Add another ``privkeys`` entry before or after the others, with a password entry or not."""
    other = draft.seed.other_keys
    values: dict[str, bytes | None] = {
        "wrong-rsa": _serialize(other["rsa"], "pkcs8-pem")[0],
        "wrong-ec": _serialize(other["ec"], "pkcs8-pem")[0],
        "wrong-rsa-jwk": _jwk(other["rsa"]),
        "wrong-ec-sec1-pem": _serialize(other["ec"], "traditional-pem")[0],
        "garbage": b"not a key at all",
        "empty": b"",
        "null": None,
        "public-pem": _serialize(other["rsa"], "public-pem")[0],
        "pem-no-body": b"-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
    }
    keys = draft.parameters.setdefault("privkeys", [])
    index = 0 if where == "before" else len(keys)
    keys.insert(index, values[what])
    if password != "none":
        passwords = draft.parameters.setdefault("privkeys-passwords", [])
        passwords.insert(min(index, len(passwords)), None if password == "null" else password.encode())


def parameter(draft: Draft, name: str, values: Any) -> None:
    """Set (or, with values None, delete) one parameter; values are bytes or None items."""
    if values == "delete":
        draft.parameters.pop(name, None)
    elif values == "null":
        draft.parameters[name] = None
    else:
        draft.parameters[name] = list(values)


# --- private options, re-wrapped ----------------------------------------------------------------


def privopts(draft: Draft, ops: tuple[Mutation, ...]) -> None:
    """Change the private-options JSON and wrap it again (JWE seeds) for the seed's own key."""
    seed = draft.seed
    if not seed.private_options or seed.private_key is None:
        return
    document = _apply_tree_ops(loads(seed.private_options), ops)
    wrapped = JWE_WRAPPER.wrap_keys(EncryptConfig({"pubkeys": [seed.public_key_pem]}), dumps(document))
    assert wrapped is not None
    for name in [name for name in draft.annotations if name.startswith(ANNOTATION_PREFIX)]:
        del draft.annotations[name]
    draft.annotations[ANNOTATION_PREFIX + "jwe"] = base64.b64encode(wrapped).decode()


# --- annotations ---------------------------------------------------------------------------------


def _encode(raw: bytes, style: str) -> str:
    text = base64.b64encode(raw).decode()
    if style == "nopad":
        return text.rstrip("=")
    if style == "extra-pad":
        return text + "="
    if style == "urlsafe":
        return base64.urlsafe_b64encode(raw).decode()
    if style.startswith("wrap"):  # wrap<width>-<lf|crlf|space|tab>
        width, sep = style[4:].split("-")
        separator = {"lf": "\n", "crlf": "\r\n", "space": " ", "tab": "\t", "cr": "\r"}[sep]
        return separator.join(text[i : i + int(width)] for i in range(0, len(text), int(width)))
    if style == "lead-space":
        return " " + text
    if style == "trail-space":
        return text + " "
    if style == "trail-lf":
        return text + "\n"
    if style == "lead-lf":
        return "\n" + text
    if style == "pad-lf":
        return text[:-1] + "\n=" if text.endswith("=") else text
    if style == "double-pad-in-middle":
        return text + "YQ=="
    raise ValueError(style)


def annotation_encoding(draft: Draft, name: str, style: str) -> None:
    """Re-encode every comma-separated element of annotation ``name`` in base64 ``style``."""
    value = draft.annotations.get(name)
    if not value:
        return
    draft.annotations[name] = ",".join(_reencode(element, style) for element in value.split(","))


def _lenient_b64(element: str) -> bytes | None:
    """Decode an element an earlier mutation may have re-encoded; None if it is not base64 at all."""
    text = "".join(element.split()).rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        return None


def _reencode(element: str, style: str) -> str:
    raw = _lenient_b64(element)
    return element if raw is None else _encode(raw, style)


def annotation_elements(draft: Draft, name: str, op: str) -> None:
    """Change the list of comma-separated elements of annotation ``name``."""
    value = draft.annotations.get(name)
    if value is None:
        return
    junk = base64.b64encode(b'{"protected":"e30","ciphertext":"","iv":"","tag":""}').decode()
    changes: dict[str, Callable[[str], str]] = {
        "empty-first": lambda v: "," + v,
        "empty-last": lambda v: v + ",",
        "only-comma": lambda v: ",",
        "duplicate": lambda v: v + "," + v,
        "junk-first": lambda v: junk + "," + v,
        "junk-last": lambda v: v + "," + junk,
        "invalid-first": lambda v: "!!!!," + v,
        "invalid-last": lambda v: v + ",!!!!",
        "space-after-comma": lambda v: junk + ", " + v,
        "garbage-first": lambda v: base64.b64encode(b"garbage").decode() + "," + v,
    }
    draft.annotations[name] = changes[op](value)


def annotation(draft: Draft, name: str, value: str | None) -> None:
    """Set or (None) remove annotation ``name``."""
    if value is None:
        draft.annotations.pop(name, None)
    else:
        draft.annotations[name] = value


def annotation_copy(draft: Draft, source: str, target: str) -> None:
    """Put annotation ``source``'s value under the name ``target`` too (unknown or other schemes)."""
    if source in draft.annotations:
        draft.annotations[target] = draft.annotations[source]


def pubopts(draft: Draft, ops: tuple[Mutation, ...]) -> None:
    """Change the JSON inside the pubopts annotation."""
    raw = _lenient_b64(draft.annotations.get(PUBOPTS_ANNOTATION) or "")
    try:
        text = dumps(_apply_tree_ops(loads(raw or b""), ops))
    except (ValueError, RecursionError):  # an earlier mutation made it invalid or deeply nested JSON
        return
    draft.annotations[PUBOPTS_ANNOTATION] = base64.b64encode(text).decode()


# --- JSON trees ----------------------------------------------------------------------------------


def _value(spec: Any) -> Any:
    """Turn a value spec (JSON data, or ("raw", text)) into the document model."""
    if isinstance(spec, tuple) and spec and spec[0] == "raw":
        return Raw(spec[1] if isinstance(spec[1], bytes) else spec[1].encode())
    if isinstance(spec, dict):
        return Members((name, _value(item)) for name, item in spec.items())
    if isinstance(spec, list):
        return [_value(item) for item in spec]
    return spec


def _at(document: Any, path: Path_, change: Callable[[Any, int | str], None]) -> Any:
    """Apply ``change(container, key)`` to the container holding ``path``'s last step (exact names)."""
    container = document
    for step in path[:-1]:
        if isinstance(container, Members):
            container = next(item for name, item in container if name == step)
        else:
            container = container[step]
    change(container, path[-1])
    return document


def _index(container: Members, name: str | int) -> int:
    return next(i for i, (member, _) in enumerate(container) if member == name)


def _apply_tree_op(document: Any, op: Mutation) -> Any:
    kind, path = op[0], tuple(op[1])
    if not path:
        if kind == "insert" and isinstance(document, Members):
            position = op[2] if op[2] >= 0 else len(document) + 1 + op[2]
            document.insert(max(0, min(position, len(document))), (op[3], _value(op[4])))
        return _value(op[2]) if kind == "set" else document

    def rename(container: Any, key: str | int) -> None:
        index = _index(container, key)
        container[index] = (op[2], container[index][1])

    def set_value(container: Any, key: str | int) -> None:
        if isinstance(container, Members):
            container[_index(container, key)] = (key, _value(op[2]))
        else:
            container[key] = _value(op[2])

    def insert(container: Any, key: str | int) -> None:
        target = (
            next(item for name, item in container if name == key) if isinstance(container, Members) else container[key]
        )
        if isinstance(target, Members):
            position = op[2] if op[2] >= 0 else len(target) + 1 + op[2]
            target.insert(max(0, min(position, len(target))), (op[3], _value(op[4])))

    def delete(container: Any, key: str | int) -> None:
        if isinstance(container, Members):
            del container[_index(container, key)]
        else:
            del container[key]

    changes = {"rename": rename, "set": set_value, "insert": insert, "delete": delete}
    try:
        return _at(document, path, changes[kind])
    except (StopIteration, IndexError, KeyError, TypeError):
        return document  # the path is gone after an earlier mutation: nothing to change


def _apply_tree_ops(document: Any, ops: tuple[Mutation, ...]) -> Any:
    for op in ops:
        document = _apply_tree_op(document, op)
    return document


def payload_json(draft: Draft, ops: tuple[Mutation, ...]) -> None:
    """Change the payload JSON (member names, values, duplicates, unknown members)."""
    draft.document = _apply_tree_ops(draft.document, ops)


def payload_text(draft: Draft, op: str) -> None:
    """Change the payload JSON text itself."""
    changes: dict[str, Callable[[bytes], bytes]] = {
        "bom": lambda t: b"\xef\xbb\xbf" + t,
        "trailing-garbage": lambda t: t + b"x",
        "trailing-object": lambda t: t + b"{}",
        "whitespace": lambda t: b" \n\t" + t.replace(b",", b" ,\r\n ") + b"\n ",
        "utf16": lambda t: t.decode("utf-8", "replace").encode("utf-16"),
        "truncated": lambda t: t[: len(t) // 2],
        "empty": lambda t: b"",
        "null": lambda t: b"null",
        "array": lambda t: b"[" + t + b"]",
        "latin1-in-string": lambda t: t.replace(b'"digest"', b'"digest","x\xff\xfey":1,"digest"', 1),
        "nul-in-string": lambda t: t.replace(b'"digest"', b'"x\x00":1,"digest"', 1),
    }
    draft.text = changes[op](draft.text)


# --- envelope, stream, command line --------------------------------------------------------------


def envelope(draft: Draft, op: str) -> None:
    """Change the protobuf ``Any`` around the JSON, or the fd-3 payload as a whole."""
    any_ = any_pb2.Any(type_url=PAYLOAD_TYPE_URL, value=draft.text)
    if op.startswith("type-url="):
        any_.type_url = op.split("=", 1)[1]
    data: bytes | None = any_.SerializeToString()
    assert data is not None
    if op == "no-fd3":
        data = None
    elif op == "empty":
        data = b""
    elif op == "truncated":
        data = data[:-3]
    elif op == "unknown-field":
        data = data + b"\x18\x01"
    elif op == "value-twice":
        data = data + any_pb2.Any(value=b"{}").SerializeToString()
    elif op == "type-url-twice":
        data = any_pb2.Any(type_url="foo").SerializeToString() + data
    elif op == "garbage":
        data = b"\xff\xff\xff\xff"
    draft.payload = data
    draft.enveloped = True


def stream(draft: Draft, op: str, amount: int) -> None:
    """Change the encrypted layer: truncate, extend, flip a bit, or empty it."""
    layer = draft.layer
    if op == "truncate":
        draft.layer = layer[: max(0, len(layer) - 1 - amount % max(1, len(layer)))]
    elif op == "extend":
        draft.layer = layer + bytes([amount % 256]) * (1 + amount % 7)
    elif op == "flip" and layer:
        position = amount // 8 % max(1, len(layer))
        draft.layer = layer[:position] + bytes([layer[position] ^ (1 << amount % 8)]) + layer[position + 1 :]
    elif op == "empty":
        draft.layer = b""


def arguments(draft: Draft, variant: str) -> None:
    """Run with other command-line arguments."""
    variants = {
        "none": (),
        "keys-path-missing": ("--decryption-keys-path", "no-such-directory"),
        "keys-path-equals": ("--decryption-keys-path=no-such-directory",),
        "keys-path-empty-value": ("--decryption-keys-path", ""),
        "single-dash": ("-decryption-keys-path", "no-such-directory"),
        "positional": ("extra",),
        "unknown-flag": ("--no-such-flag",),
    }
    draft.args = variants[variant] if variant != "keep" else draft.seed.args


def keys_dir(draft: Draft, variant: str) -> None:
    """Decrypt with a keys directory (fixture seeds, which run in a directory of their own) holding the
    seed's key in a format, or beside other files."""
    seed = draft.seed
    if seed.cwd is None or seed.private_key is None:
        return
    directory = seed.cwd / f"keys-{variant}"
    if not directory.exists():
        directory.mkdir()
        fmt = variant if variant in _KEY_DIR_FORMATS else "pkcs8-pem"
        key = seed.other_keys["rsa"] if variant == "wrong-key-only" else seed.private_key
        if variant != "empty":
            data, password = _serialize(key, fmt)
            (directory / "key.pem").write_bytes(data)
            if password is not None:
                (directory / "key.pem.password").write_bytes(password + b"\n")
        if variant == "with-readme":
            (directory / "README.md").write_text("keys for this node\n")
        if variant == "with-public-key":
            (directory / "key.pub.pem").write_bytes(seed.public_key_pem)
    draft.args = ("--decryption-keys-path", directory.name)


_KEY_DIR_FORMATS = {"pkcs8-pem", "traditional-pem", "pkcs8-der", "traditional-der", "jwk", "legacy-encrypted-pem"}


# --- building --------------------------------------------------------------------------------------

STAGES: list[tuple[str, Callable[..., None]]] = [
    ("key_format", key_format),
    ("key_extra", key_extra),
    ("parameter", parameter),
    ("privopts", privopts),
    ("annotation_encoding", annotation_encoding),
    ("annotation_elements", annotation_elements),
    ("annotation", annotation),
    ("annotation_copy", annotation_copy),
    ("pubopts", pubopts),
    ("payload_json", payload_json),
    ("payload_text", payload_text),
    ("envelope", envelope),
    ("stream", stream),
    ("arguments", arguments),
    ("keys_dir", keys_dir),
]
_ORDER = {name: index for index, (name, _) in enumerate(STAGES)}
_FUNCTIONS = dict(STAGES)


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def build_document(seed: Seed) -> Any:
    """The payload JSON tree of the unchanged seed (what payload mutations are drawn against)."""
    return _document(Draft(seed, dict(seed.parameters), dict(seed.descriptor.annotations)))


def _document(draft: Draft) -> Any:
    seed = draft.seed
    parameters = (
        Members(
            (name, None if values is None else [_b64(value) for value in values])
            for name, values in draft.parameters.items()
        )
        if draft.parameters
        else None
    )
    descriptor = Members(
        [("mediaType", seed.descriptor.media_type), ("digest", seed.descriptor.digest), ("size", seed.descriptor.size)]
    )
    if draft.annotations:
        descriptor.append(("annotations", Members(draft.annotations.items())))
    return Members([("DecryptConfig", Members([("Parameters", parameters)])), ("Descriptor", descriptor)])


def build(seed: Seed, mutations: list[Mutation] | tuple[Mutation, ...]) -> Input:
    """Apply ``mutations`` to ``seed`` in stage order and return the decoder input."""
    draft = Draft(
        seed,
        {name: None if values is None else list(values) for name, values in seed.parameters.items()},
        dict(seed.descriptor.annotations),
        layer=seed.blob,
        args=seed.args,
    )
    entered: set[str] = set()

    def enter_until(last: int) -> None:
        for name, _ in STAGES[: last + 1]:
            if name not in entered:
                entered.add(name)
                _prepare(draft, name)

    for mutation in sorted(mutations, key=lambda mutation: _ORDER[mutation[0]]):
        enter_until(_ORDER[mutation[0]])
        _FUNCTIONS[mutation[0]](draft, *mutation[1:])
    enter_until(len(STAGES) - 1)
    return Input(draft.layer, draft.payload, draft.args, (), seed.cwd)


def _prepare(draft: Draft, name: str) -> None:
    """Make what stage ``name`` works on from the stages before it."""
    if name == "payload_json":
        draft.document = _document(draft)
    elif name == "payload_text":
        draft.text = dumps(draft.document)
    elif name == "stream" and not draft.enveloped:
        envelope(draft, "none")
