"""The documented divergences (README, "What it does better than the Go decoder"), one named test each.

Each test shows the Go decoders' behaviour on the input, ours, and that the differential check
classifies the disagreement as that divergence and no other.
"""

from __future__ import annotations

import pytest

from .divergences import DIVERGENCES, Case, check_agreement
from .harness import Decoders
from .mutations import build
from .seeds import Seed


def _divergence(name: str) -> object:
    return next(d for d in DIVERGENCES if d.name == name)


@pytest.mark.parametrize(
    "case",
    [
        ("ours-rsa", (("key_extra", "before", "garbage", "null"),)),
        ("ours-ec", (("key_format", "traditional-pem"),)),
        ("go-jwe-rsa", (("key_format", "encrypted-pkcs8-pem"),)),
    ],
    ids=["garbage-key-first", "sec1-ec-pem", "encrypted-pkcs8"],
)
def test_payload_key_go_cannot_parse_does_not_hide_the_right_key(
    case: Case, seeds: dict[str, Seed], decoders: Decoders
) -> None:
    """Go returns the first key's parse error and never tries the next key; a node with one stale or
    unusual key in its config would fail every pull. Ours skips what it cannot read and decrypts."""
    outcome = decoders.run(build(seeds[case[0]], case[1]))
    for go in (outcome.go1, outcome.go2):
        assert go.prefix == "call to DecryptLayer failed"
        assert "Could not parse private key" in go.stderr or "Could not unmarshal pkcs11 keyfile" in go.stderr
    assert outcome.ours.ok
    assert check_agreement(seeds, decoders, case, "divergence") is _divergence("payload keys Go cannot read")


def test_missing_keys_directory_still_decrypts_with_payload_keys(seeds: dict[str, Seed], decoders: Decoders) -> None:
    """containerd passes --decryption-keys-path /etc/containerd/ocicrypt/keys by default; Go fails
    every pull (even with keys in the payload) until that directory exists. Ours notes it and goes on."""
    case: Case = ("go-jwe-rsa", (("arguments", "keys-path-missing"),))
    outcome = decoders.run(build(seeds[case[0]], case[1]))
    for go in (outcome.go1, outcome.go2):
        assert go.prefix == "unable to get decryption keys in provided key path"
    assert outcome.ours.ok
    assert "does not exist" in outcome.ours.stderr or outcome.ours.stderr == ""
    assert check_agreement(seeds, decoders, case, "divergence") is _divergence("missing keys directory")
