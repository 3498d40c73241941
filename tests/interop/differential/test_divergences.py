"""The documented divergences (docs/differential-testing.md; README, "Compared with the Go decoder"), one
named test each.

Each test shows the Go reference decoder's behaviour on the input, ours, and that the differential check
classifies the disagreement as that divergence and no other.
"""

from __future__ import annotations

import pytest
from support.differential.divergences import DIVERGENCES, Case, check_agreement, unwrap_failed_without_reasons
from support.differential.harness import Decoders
from support.differential.mutations import build
from support.differential.seeds import Seed


def _divergence(name: str) -> object:
    return next(d for d in DIVERGENCES if d.name == name)


@pytest.mark.parametrize(
    "case",
    [
        ("ours-rsa", (("key_extra", "before", "garbage", "null"),)),
        ("ours-ec", (("key_extra", "before", "empty", "null"),)),
        ("ours-ec", (("key_format", "traditional-pem"),)),
        ("go-jwe-rsa", (("key_format", "encrypted-pkcs8-pem"),)),
        ("go-pkcs7", (("key_format", "jwk"),)),
    ],
    ids=["garbage-key-first", "empty-key-first", "sec1-ec-pem", "encrypted-pkcs8", "jwk-for-pkcs7"],
)
def test_payload_key_go_cannot_parse_does_not_hide_the_right_key(
    case: Case, seeds: dict[str, Seed], decoders: Decoders
) -> None:
    """Go returns the first key's parse error and never tries the next key; a node with one stale or
    unusual key in its config would fail every pull. Ours skips what it cannot read and decrypts.

    ocicrypt 1.0.3 (the reference) fails these inputs without saying why (``NO_USABLE_KEY_1_0_3`` alone);
    the imgcrypt 1.1.7 and 2.0.2 decoders (ocicrypt 1.1.6, 1.2.x), run on them before, named the reason:
    ``Could not parse private key``, ``pkcs11 keyfile``/``Pkcs11URI`` (their last-resort PKCS#11 parse) or
    ``PKCS7: No suitable private key``. Both fail the pull."""
    outcome = decoders.run(build(seeds[case[0]], case[1]))
    for go in outcome.references:
        assert go.returncode == 1 and go.prefix == "call to DecryptLayer failed"
        assert unwrap_failed_without_reasons(go), go.stderr
    assert outcome.ours.ok
    assert check_agreement(seeds, decoders, case, "divergence") is _divergence("payload keys Go cannot read")


def test_missing_keys_directory_still_decrypts_with_payload_keys(seeds: dict[str, Seed], decoders: Decoders) -> None:
    """containerd passes --decryption-keys-path /etc/containerd/ocicrypt/keys by default; Go fails
    every pull (even with keys in the payload) until that directory exists. Ours goes on with the
    payload keys and, having decrypted, prints nothing: its keys-directory notes come only with a failure."""
    case: Case = ("go-jwe-rsa", (("arguments", "keys-path-missing"),))
    outcome = decoders.run(build(seeds[case[0]], case[1]))
    for go in outcome.references:
        assert go.prefix == "unable to get decryption keys in provided key path"
    assert outcome.ours.ok
    assert outcome.ours.stderr == ""
    assert check_agreement(seeds, decoders, case, "divergence") is _divergence("missing keys directory")


@pytest.mark.parametrize(
    "case",
    [
        ("go-node-jwe", (("keys_dir", "with-readme"),)),
        ("go-node-jwe", (("keys_dir", "with-public-key"),)),
        ("go-node-jwe", (("keys_dir", "legacy-encrypted-pem"),)),
        ("go-jwe-ec", (("keys_dir", "traditional-pem"),)),
    ],
    ids=["readme", "public-key", "legacy-encrypted-with-password-file", "sec1-ec-pem"],
)
def test_keys_directory_with_files_go_cannot_classify_still_decrypts(
    case: Case, seeds: dict[str, Seed], decoders: Decoders
) -> None:
    """A keys directory is operator-managed (often a Kubernetes Secret volume): one stray file makes Go
    fail every pull on the node. Ours skips what is not a usable key, with a note, and decrypts."""
    outcome = decoders.run(build(seeds[case[0]], case[1]))
    for go in outcome.references:
        assert go.prefix == "unable to get decryption keys in provided key path"
    assert outcome.ours.ok
    divergence = _divergence("keys directory files Go cannot classify")
    assert check_agreement(seeds, decoders, case, "divergence") is divergence


def test_json_nested_a_thousand_levels_deep_is_refused_cleanly(seeds: dict[str, Seed], decoders: Decoders) -> None:
    """An unknown member nested 1200 levels deep: Go ignores it, ours refuses the payload with an error
    (no traceback, no crash) instead of raising the interpreter's recursion limit for it."""
    case: Case = ("ours-ec", (("payload_json", (("insert", (), 0, "x", ("raw", "[" * 1200 + "]" * 1200)),)),))
    outcome = decoders.run(build(seeds[case[0]], case[1]))
    assert all(go.ok for go in outcome.references)
    assert outcome.ours.returncode == 1 and outcome.ours.prefix == "could not UnmarshalAny() the decrypt data"
    assert "Traceback" not in outcome.ours.stderr
    divergence = _divergence("JSON nested deeper than the interpreter allows")
    assert check_agreement(seeds, decoders, case, "divergence") is divergence


def test_missing_nonce_is_refused_instead_of_decrypting_to_garbage(seeds: dict[str, Seed], decoders: Decoders) -> None:
    """Go's AES-CTR draws a random nonce when the options carry none, and the HMAC (over the
    ciphertext) still verifies: the pull succeeds with a garbage layer. Ours refuses it."""
    case: Case = ("ours-ec", (("privopts", (("delete", ("cipheroptions", "nonce")),)),))
    outcome = decoders.run(build(seeds[case[0]], case[1]))
    baseline = decoders.run(build(seeds[case[0]], ())).references[0]
    for go in outcome.references:
        assert go.ok and go.output_sha256 != baseline.output_sha256
    assert outcome.ours.prefix == "call to DecryptLayer failed"
    assert check_agreement(seeds, decoders, case, "divergence") is _divergence("no nonce")


def test_altered_public_nonce_is_refused_instead_of_decrypting_to_garbage(
    seeds: dict[str, Seed], decoders: Decoders
) -> None:
    """Go looks the nonce up in the public options first: an attacker who can edit annotations makes
    the layer decrypt to garbage that the HMAC (over the ciphertext only) accepts. Ours refuses."""
    altered = "AAAAAAAAAAAAAAAAAAAAAA=="  # 16 zero bytes, not the layer's nonce
    case: Case = ("ours-ec", (("pubopts", (("insert", ("cipheroptions",), 0, "nonce", altered),)),))
    outcome = decoders.run(build(seeds[case[0]], case[1]))
    baseline = decoders.run(build(seeds[case[0]], ())).references[0]
    for go in outcome.references:
        assert go.ok and go.output_sha256 != baseline.output_sha256
    assert outcome.ours.prefix == "call to DecryptLayer failed" and "nonce differs" in outcome.ours.stderr
    assert check_agreement(seeds, decoders, case, "divergence") is _divergence("public nonce differs")


@pytest.mark.parametrize("nonce", ["YQ==", None], ids=["one-byte", "null"])
def test_bad_nonce_length_is_an_error_not_a_panic(
    nonce: str | None, seeds: dict[str, Seed], decoders: Decoders
) -> None:
    """cipher.NewCTR panics on an IV that is not one block: Go exits 2 with a goroutine dump, which
    containerd shows as the pull error. Ours exits 1 with the usual prefix and the reason."""
    case: Case = ("ours-rsa", (("privopts", (("set", ("cipheroptions", "nonce"), nonce),)),))
    outcome = decoders.run(build(seeds[case[0]], case[1]))
    for go in outcome.references:
        assert go.returncode == 2 and go.stderr.startswith("panic:")
    assert outcome.ours.returncode == 1 and "invalid nonce length" in outcome.ours.stderr
    assert check_agreement(seeds, decoders, case, "divergence") is _divergence("Go panics")


def test_hmac_of_the_wrong_length_is_refused_before_streaming(seeds: dict[str, Seed], decoders: Decoders) -> None:
    """A tag that is not 32 bytes can never verify; Go finds out only after streaming (and releasing
    all but the last 10 KiB of) the plaintext. Ours refuses before reading the layer."""
    case: Case = ("ours-rsa", (("pubopts", (("set", ("hmac",), "YQ=="),)),))
    outcome = decoders.run(build(seeds[case[0]], case[1]))
    for go in outcome.references:
        assert go.prefix == "could not copy data"
    assert outcome.ours.prefix == "call to DecryptLayer failed" and "invalid HMAC length" in outcome.ours.stderr
    assert check_agreement(seeds, decoders, case, "divergence") is _divergence("HMAC of the wrong length")
