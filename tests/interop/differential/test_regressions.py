"""Inputs on which ours once disagreed with the Go decoders (imgcrypt 1.1.7/2.0.2 then, the Go reference
now), kept after the fix (shrunk by hypothesis or written down from Go's source and confirmed by the harness)."""

from __future__ import annotations

import pytest
from support.differential.divergences import Case, check_agreement
from support.differential.harness import Decoders
from support.differential.seeds import Seed

JWE = "org.opencontainers.image.enc.keys.jwe"
PUBOPTS = "org.opencontainers.image.enc.pubopts"

REGRESSIONS: dict[str, Case] = {
    # Go decodes every occurrence of a member, exact or case-folded, in order: a later "MEDIATYPE"
    # of the wrong type is an error even though "mediaType" matched exactly before it.
    "folded-duplicate-member-of-wrong-type": (
        "ours-ec",
        (("payload_json", (("insert", ("Descriptor",), -1, "MEDIATYPE", -1),)),),
    ),
    "folded-duplicate-member-last-wins": (
        "ours-rsa",
        (("payload_json", (("insert", ("Descriptor",), -1, "MediaType", "application/vnd.oci.image.layer.v1.tar"),)),),
    ),
    # null leaves a struct alone: a second "DecryptConfig": null keeps the keys decoded before it.
    "null-struct-after-the-real-one": ("ours-rsa", (("payload_json", (("insert", (), -1, "DecryptConfig", None),)),)),
    # null as an annotation value is the empty string in a Go map[string]string.
    "null-annotation-value": (
        "ours-rsa",
        (("payload_json", (("insert", ("Descriptor", "annotations"), 0, "x", None),)),),
    ),
    # NaN and a byte-order mark are not JSON for Go.
    "nan-in-unknown-member": ("ours-rsa", (("payload_json", (("insert", (), -1, "x", ("raw", "NaN")),)),)),
    "byte-order-mark": ("ours-rsa", (("payload_text", "bom"),)),
    "utf16-json": ("go-jwe-ec", (("payload_text", "utf16"),)),
    # Invalid UTF-8 reads as U+FFFD in Go, so the payload parses and the annotation fails later.
    "invalid-utf8-in-annotation": (
        "go-node-jwe",
        (("payload_json", (("set", ("Descriptor", "annotations", JWE), ("raw", b'"\xff"')),)),),
    ),
    # "==" is not base64 for Go.
    "padding-only-base64-password": (
        "ours-rsa",
        (("payload_json", (("set", ("DecryptConfig", "Parameters", "privkeys-passwords"), ["=="]),)),),
    ),
    "size-not-an-integer-literal": (
        "ours-rsa",
        (("payload_json", (("set", ("Descriptor", "size"), ("raw", "1e2")),)),),
    ),
    # A JSON array of numbers is a []byte too (found by hypothesis with seed 20261201).
    "array-for-bytes-in-cipheroptions": (
        "go-jwe-ec",
        (("pubopts", (("insert", ("cipheroptions",), 0, "Unknown", []),)),),
    ),
    "array-for-symkey": ("ours-ec", (("privopts", (("set", ("symkey",), [1, 2, 3]),)),)),
    # An object where a slice of keys belongs is a type error for Go (found by hypothesis, seed 3416166330).
    "object-for-the-privkeys-slice": (
        "go-jwe-ec",
        (("payload_json", (("set", ("DecryptConfig", "Parameters", "privkeys"), {}),)),),
    ),
    # A harness crash found by hypothesis with seed 20261201: a bit flip in an emptied layer.
    "flip-in-an-empty-layer": ("go-jwe-ec", (("stream", "empty", 0), ("stream", "flip", 0))),
    # Go's StdEncoding skips CR and LF anywhere (annotations wrapped by a tool), but not spaces.
    "key-annotation-wrapped-with-lf": ("ours-rsa", (("annotation_encoding", JWE, "wrap64-lf"),)),
    "pubopts-wrapped-with-crlf": ("ours-ec", (("annotation_encoding", PUBOPTS, "wrap76-crlf"),)),
    "key-annotation-leading-space": ("go-jwe-rsa", (("annotation_encoding", JWE, "lead-space"),)),
    # Go's flag package reports an unknown flag with one dash on stderr.
    "unknown-flag": ("go-jwe-rsa", (("arguments", "unknown-flag"),)),
}


# Disagreements that are documented divergences, where the table's match was once too narrow
# (found by hypothesis with seed 20261201): a later failure of the other side must not hide them.
DIVERGENT: dict[str, Case] = {
    "deep-nesting-then-go-fails-later": (
        "go-jwe-ec",
        (
            (
                "payload_json",
                (("delete", ("DecryptConfig",)), ("insert", (), 0, "DecryptConfigß", ("raw", "[" * 1200 + "]" * 1200))),
            ),
        ),
    ),
    "stray-keys-file-then-ours-fails-later": (
        "go-jwe-ec",
        (("keys_dir", "traditional-pem"), ("stream", "truncate", 0)),
    ),
}


@pytest.mark.parametrize("name", sorted(DIVERGENT))
def test_divergent_input_is_a_documented_divergence(name: str, seeds: dict[str, Seed], decoders: Decoders) -> None:
    assert check_agreement(seeds, decoders, DIVERGENT[name], f"regression {name}") is not None


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression_input_agrees_with_go(name: str, seeds: dict[str, Seed], decoders: Decoders) -> None:
    assert check_agreement(seeds, decoders, REGRESSIONS[name], f"regression {name}") is None
