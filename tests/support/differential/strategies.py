"""Hypothesis strategies: lists of mutations (see :mod:`.mutations`) around one seed."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ctd_decoder.ocicrypt.keywrap import ANNOTATION_PREFIX, PUBOPTS_ANNOTATION

from . import mutations
from .document import Members, loads
from .seeds import Seed

# Values Go's encoding/json reads differently from Python's json, or into the wrong Go type.
JSON_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**63,
    "",
    "x",
    "YQ==",
    [],
    [None],
    {},
    {"x": None},
    ("raw", "NaN"),
    ("raw", "-Infinity"),
    ("raw", "1e2"),
    ("raw", "1.0"),
    ("raw", "-0"),
    ("raw", "01"),
    ("raw", '"\\ud800"'),
    ("raw", '"\\u0041"'),
    ("raw", b'"\xff"'),
    ("raw", "[" * 1200 + "]" * 1200),
]


def _case_variants(name: str) -> list[str]:
    variants = {name.lower(), name.upper(), name.swapcase(), name[:1].upper() + name[1:], name[:1].lower() + name[1:]}
    variants.add(name.replace("s", "\u017f").replace("S", "\u017f"))  # LATIN SMALL LETTER LONG S folds to s
    variants.add(name.replace("k", "\u212a").replace("K", "\u212a"))  # KELVIN SIGN folds to k
    variants.add(name + "\u00df")
    variants.discard(name)
    return sorted(variants)


def _member_paths(document: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], Any]]:
    found: list[tuple[tuple[str | int, ...], Any]] = []
    if isinstance(document, Members):
        seen: set[str] = set()
        for name, item in document:
            if name not in seen:
                seen.add(name)
                found.append(((*path, name), item))
                found += _member_paths(item, (*path, name))
    elif isinstance(document, list):
        for index, item in enumerate(document):
            found.append(((*path, index), item))
            found += _member_paths(item, (*path, index))
    return found


def _plain(value: Any) -> Any:
    """The document model back to plain data (a value spec)."""
    if isinstance(value, Members):
        return {name: _plain(item) for name, item in value}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _swapped(value: Any) -> list[Any]:
    """Values of the wrong type for where ``value`` sits."""
    if isinstance(value, str):
        return [[value], {"value": value}, 1]
    if isinstance(value, bool) or value is None:
        return ["true"]
    if isinstance(value, int):
        return [str(value), float(value), [value], ("raw", f"{value}.0"), ("raw", f"{value}e0"), -value]
    if isinstance(value, list):
        return [value[0] if value else "", {"0": value[0] if value else None}]
    return [list(value.values())[:1] if isinstance(value, dict) else []]


@st.composite
def tree_ops(draw: st.DrawFn, document: Any) -> tuple[mutations.Mutation, ...]:
    """One to three changes to a JSON document: renames, new values, duplicates, unknown members."""
    members = _member_paths(document)
    objects = [(path, item) for path, item in [((), document), *members] if isinstance(item, Members)]
    ops: list[mutations.Mutation] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["rename", "set", "set", "insert", "insert", "delete"]))
        if kind in ("rename", "set", "delete") and members:
            path, value = draw(st.sampled_from(members))
            if kind == "rename":
                if isinstance(path[-1], int):
                    continue
                new_name = draw(st.sampled_from([*_case_variants(path[-1]), "unknownMember", ""]))
                ops.append(("rename", path, new_name))
            elif kind == "set":
                new_value = draw(st.sampled_from([*JSON_VALUES, *_swapped(_plain(value))]))
                ops.append(("set", path, new_value))
            else:
                ops.append(("delete", path))
        elif objects:
            path, obj = draw(st.sampled_from(objects))
            names = [name for name, _ in obj]
            name = draw(
                st.sampled_from([*names, *[v for n in names for v in _case_variants(n)][:12], "Unknown", "x-extra"])
                if names
                else st.sampled_from(["Unknown", "x-extra"])
            )
            existing = [_plain(item) for member, item in obj if member == name]
            value = draw(st.sampled_from([*existing, *JSON_VALUES]))
            position = draw(st.sampled_from([0, -1]))
            ops.append(("insert", path, position, name, value))
    return tuple(ops)


KEY_FORMATS = [
    "pkcs8-pem",
    "traditional-pem",
    "pkcs8-der",
    "traditional-der",
    "legacy-encrypted-pem",
    "encrypted-pkcs8-pem",
    "public-pem",
    "jwk",
]
KEY_EXTRAS = ["wrong-rsa", "wrong-ec", "wrong-rsa-jwk", "wrong-ec-sec1-pem", "garbage", "empty", "null", "public-pem"]
ANNOTATION_STYLES = [
    "nopad",
    "extra-pad",
    "urlsafe",
    "wrap64-lf",
    "wrap76-crlf",
    "wrap1-lf",
    "wrap4-cr",
    "wrap64-space",
    "wrap64-tab",
    "lead-space",
    "trail-space",
    "trail-lf",
    "lead-lf",
    "pad-lf",
    "double-pad-in-middle",
]
ELEMENT_OPS = [
    "empty-first",
    "empty-last",
    "only-comma",
    "duplicate",
    "junk-first",
    "junk-last",
    "invalid-first",
    "invalid-last",
    "space-after-comma",
    "garbage-first",
]
OTHER_SCHEMES = ["keys.foo", "keys.JWE", "keys.pgp", "keys.pkcs7", "keys.pkcs11", "keys.provider.nosuch", "keys."]
PAYLOAD_TEXT_OPS = [
    "bom",
    "trailing-garbage",
    "trailing-object",
    "whitespace",
    "utf16",
    "truncated",
    "empty",
    "null",
    "array",
    "latin1-in-string",
    "nul-in-string",
]
ENVELOPE_OPS = [
    "no-fd3",
    "empty",
    "truncated",
    "unknown-field",
    "value-twice",
    "type-url-twice",
    "garbage",
    "type-url=type.googleapis.com/io.containerd.ocicrypt.v1.Payload",
    "type-url=io.containerd.ocicrypt.v1.payload",
    "type-url=",
]
KEYS_DIRS = [
    "pkcs8-pem",
    "traditional-pem",
    "pkcs8-der",
    "traditional-der",
    "jwk",
    "legacy-encrypted-pem",
    "with-readme",
    "with-public-key",
    "empty",
    "wrong-key-only",
]
ARGUMENTS = ["keep", "keys-path-missing", "keys-path-equals", "keys-path-empty-value", "positional", "unknown-flag"]


def _key_annotations(seed: Seed) -> list[str]:
    return sorted(name for name in seed.descriptor.annotations if name.startswith(ANNOTATION_PREFIX))


def key_mutations(seed: Seed) -> st.SearchStrategy[mutations.Mutation]:
    """Key formats, extra keys, passwords and other parameters."""
    parameter_values: list[Any] = ["delete", "null", [], [None], [b""], [b"x"], [None, None]]
    return st.one_of(
        st.tuples(st.just("key_format"), st.sampled_from(KEY_FORMATS)),
        st.tuples(
            st.just("key_extra"),
            st.sampled_from(["before", "after"]),
            st.sampled_from(KEY_EXTRAS),
            st.sampled_from(["null", "none", "pw"]),
        ),
        st.tuples(
            st.just("parameter"),
            st.sampled_from(["privkeys-passwords", "privkeys", "PrivKeys", "x509s", "gpg-privatekeys", "other"]),
            st.sampled_from(parameter_values),
        ),
    )


def annotation_mutations(seed: Seed) -> st.SearchStrategy[mutations.Mutation]:
    """Base64 encodings, comma-separated elements, unknown schemes, pubopts and privopts JSON."""
    names = [*_key_annotations(seed), PUBOPTS_ANNOTATION]
    choices = [
        st.tuples(st.just("annotation_encoding"), st.sampled_from(names), st.sampled_from(ANNOTATION_STYLES)),
        st.tuples(st.just("annotation_elements"), st.sampled_from(names), st.sampled_from(ELEMENT_OPS)),
        st.tuples(
            st.just("annotation"),
            st.sampled_from([*names, ANNOTATION_PREFIX + "foo", ANNOTATION_PREFIX + "pgp"]),
            st.sampled_from([None, "", "!!!!", "YQ==", " "]),
        ),
        st.tuples(
            st.just("annotation_copy"),
            st.sampled_from(_key_annotations(seed)),
            st.sampled_from(["org.opencontainers.image.enc." + scheme for scheme in OTHER_SCHEMES]),
        ),
        st.tuples(st.just("pubopts"), tree_ops(loads(seed.pubopts))),
    ]
    if seed.private_options and seed.name.startswith("ours"):
        choices.append(st.tuples(st.just("privopts"), tree_ops(loads(seed.private_options))))
    return st.one_of(*choices)


def payload_mutations(seed: Seed) -> st.SearchStrategy[mutations.Mutation]:
    """The payload JSON tree and text, and the protobuf envelope."""
    draft_document = mutations.build_document(seed)
    return st.one_of(
        st.tuples(st.just("payload_json"), tree_ops(draft_document)),
        st.tuples(st.just("payload_text"), st.sampled_from(PAYLOAD_TEXT_OPS)),
        st.tuples(st.just("envelope"), st.sampled_from(ENVELOPE_OPS)),
    )


def stream_mutations(seed: Seed) -> st.SearchStrategy[mutations.Mutation]:
    """Truncation, extension, bit flips of the layer; the command line."""
    return st.one_of(
        st.tuples(
            st.just("stream"),
            st.sampled_from(["truncate", "extend", "flip", "empty"]),
            st.integers(0, 8 * len(seed.blob)),
        ),
        st.tuples(st.just("arguments"), st.sampled_from(ARGUMENTS)),
        st.tuples(st.just("keys_dir"), st.sampled_from(KEYS_DIRS)),
    )


FAMILIES = ["keys", "annotations", "payload", "stream"]


def cases(seeds: dict[str, Seed], family: str) -> st.SearchStrategy[tuple[str, tuple[mutations.Mutation, ...]]]:
    """(seed name, mutations) pairs of one of :data:`FAMILIES`, or of all of them (``mixed``)."""
    families = {
        "keys": key_mutations,
        "annotations": annotation_mutations,
        "payload": payload_mutations,
        "stream": stream_mutations,
    }

    def around(name: str) -> st.SearchStrategy[tuple[str, tuple[mutations.Mutation, ...]]]:
        seed = seeds[name]
        one = st.one_of(*(make(seed) for make in families.values())) if family == "mixed" else families[family](seed)
        return st.tuples(st.just(name), st.lists(one, min_size=1, max_size=3).map(tuple))

    return st.sampled_from(sorted(seeds)).flatmap(around)
