"""Where ours deliberately differs from Go's decoder, and the agreement check that allows only that.

Each divergence is a row of docs/differential-testing.md's table and names the test in
``test_divergences.py`` that shows why ours is better. A disagreement that matches none of them
fails the differential test with the hypothesis seed and the input.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from support.references import NO_USABLE_KEY_1_0_3

from .harness import Decoders, Outcome, Verdict, run_one
from .mutations import Mutation, build
from .seeds import Seed

Case = tuple[str, tuple[Mutation, ...]]


@dataclass(frozen=True)
class Divergence:
    """One documented way in which ours differs from Go on purpose."""

    name: str
    why: str
    test: str
    matches: Callable[[Case, Outcome, str], bool]


def _go_failed(outcome: Outcome, prefix: str, *texts: str) -> bool:
    return all(
        not go.ok and go.prefix == prefix and any(text in go.stderr for text in texts) for go in outcome.references
    )


# How Go's utils.ParsePrivateKey fails (after PKCS#8, PKCS#1, SEC1 DER, PEM and JWK it tries PKCS#11 YAML,
# which an empty key passes, to fail on its URI).
_KEY_PARSE_ERRORS = (
    "Could not parse private key",
    "Missing password",
    "pkcs11 keyfile",
    "Could not parse Pkcs11URI",
    "Could not parse input as JWK",
)


def unwrap_failed_without_reasons(verdict: Verdict) -> bool:
    """The reference's (ocicrypt 1.0.3) whole message when no wrapper could use the keys it was given."""
    return verdict.stderr == f"call to DecryptLayer failed: {NO_USABLE_KEY_1_0_3}\n"


def _keys_go_cannot_parse(case: Case, outcome: Outcome, baseline: str) -> bool:
    # go-jose's JWK type parses, but Go's PKCS#7 decrypter cannot use it.
    jwk_for_pkcs7 = ("key_format", "jwk") in case[1] and _go_failed(
        outcome, "call to DecryptLayer failed", "PKCS7: No suitable private key"
    )
    # ocicrypt 1.0.3 does not say why, so the mutation must be a payload key's (a format or an extra key).
    key_changed = any(m[0] in ("key_format", "key_extra") for m in case[1])
    unexplained = key_changed and all(unwrap_failed_without_reasons(go) for go in outcome.references)
    return (
        outcome.ours.ok
        and outcome.ours.output_sha256 == baseline
        and (jwk_for_pkcs7 or unexplained or _go_failed(outcome, "call to DecryptLayer failed", *_KEY_PARSE_ERRORS))
    )


def _ours_went_on(outcome: Outcome, baseline: str) -> bool:
    # Ours goes on with the usable keys: it decrypts, or fails later for another mutation's reason.
    return (outcome.ours.ok and outcome.ours.output_sha256 == baseline) or (
        not outcome.ours.ok and outcome.ours.prefix != "unable to get decryption keys in provided key path"
    )


def _missing_keys_directory(case: Case, outcome: Outcome, baseline: str) -> bool:
    asked = any(m[0] == "arguments" and m[1].startswith("keys-path") for m in case[1])
    return (
        asked
        and _ours_went_on(outcome, baseline)
        and _go_failed(outcome, "unable to get decryption keys in provided key path", "no such file")
    )


def _keys_dir_go_rejects(case: Case, outcome: Outcome, baseline: str) -> bool:
    return (
        any(m[0] == "keys_dir" for m in case[1])
        and _ours_went_on(outcome, baseline)
        and _go_failed(
            outcome,
            "unable to get decryption keys in provided key path",
            "Unknown decryption key type",
            "Missing password",
        )
    )


def _deep_nesting(case: Case, outcome: Outcome, baseline: str) -> bool:
    # Go reads the document, then decrypts or fails later for another mutation's reason.
    read_by_go = all(go.ok or go.prefix != outcome.ours.prefix for go in outcome.references)
    return "nested too deeply" in outcome.ours.stderr and read_by_go


def _no_nonce(case: Case, outcome: Outcome, baseline: str) -> bool:
    return not outcome.ours.ok and "carry no nonce" in outcome.ours.stderr and all(go.ok for go in outcome.references)


def _public_nonce(case: Case, outcome: Outcome, baseline: str) -> bool:
    return (
        not outcome.ours.ok
        and "nonce differs from the one wrapped" in outcome.ours.stderr
        and all(go.ok for go in outcome.references)
    )


def _go_panics(case: Case, outcome: Outcome, baseline: str) -> bool:
    panicked = all(go.returncode == 2 and go.stderr.startswith("panic:") for go in outcome.references)
    return panicked and outcome.ours.returncode == 1 and outcome.ours.prefix == "call to DecryptLayer failed"


def _short_hmac(case: Case, outcome: Outcome, baseline: str) -> bool:
    return (
        not outcome.ours.ok
        and "invalid HMAC length" in outcome.ours.stderr
        and _go_failed(outcome, "could not copy data", "could not properly decrypt byte stream")
    )


DIVERGENCES = [
    Divergence(
        "payload keys Go cannot read",
        "Go stops at the first payload key it cannot parse (SEC1 EC PEM, encrypted PKCS#8, garbage), "
        "so a readable right key after it is never tried, and cannot use a JWK key for PKCS#7; ours skips "
        "the unreadable key and reads those formats for every scheme",
        "test_payload_key_go_cannot_parse_does_not_hide_the_right_key",
        _keys_go_cannot_parse,
    ),
    Divergence(
        "missing keys directory",
        "Go fails every pull when --decryption-keys-path does not exist; ours notes it and uses the payload keys",
        "test_missing_keys_directory_still_decrypts_with_payload_keys",
        _missing_keys_directory,
    ),
    Divergence(
        "keys directory files Go cannot classify",
        "Go rejects the whole keys directory, failing every pull, if one file is not a key it can classify "
        "(a README, a public key, SEC1 EC PEM, a legacy-encrypted key with its password file); "
        "ours skips such files with a note and decrypts with the keys it can use",
        "test_keys_directory_with_files_go_cannot_classify_still_decrypts",
        _keys_dir_go_rejects,
    ),
    Divergence(
        "JSON nested deeper than the interpreter allows",
        "Go's decoder accepts JSON nested up to 10000 levels; Python's parser stops near 1000, which no "
        "payload or options document (three levels deep) comes near; ours refuses such a document cleanly",
        "test_json_nested_a_thousand_levels_deep_is_refused_cleanly",
        _deep_nesting,
    ),
    Divergence(
        "no nonce",
        "without a nonce in the cipher options Go draws a random one and reports success on garbage "
        "(the HMAC covers only the ciphertext); ours refuses the layer",
        "test_missing_nonce_is_refused_instead_of_decrypting_to_garbage",
        _no_nonce,
    ),
    Divergence(
        "public nonce differs",
        "a nonce in the unauthenticated public options overrides the private one in Go, which then reports "
        "success on garbage (the HMAC covers only the ciphertext); ours refuses a public nonce that differs",
        "test_altered_public_nonce_is_refused_instead_of_decrypting_to_garbage",
        _public_nonce,
    ),
    Divergence(
        "Go panics",
        "a nonce that is not 16 bytes makes Go panic (exit 2, a goroutine dump instead of an error); "
        "ours fails with an error naming the nonce length",
        "test_bad_nonce_length_is_an_error_not_a_panic",
        _go_panics,
    ),
    Divergence(
        "HMAC of the wrong length",
        "Go decrypts and streams the whole layer before its HMAC check fails; ours refuses a tag that "
        "is not 32 bytes before reading the layer",
        "test_hmac_of_the_wrong_length_is_refused_before_streaming",
        _short_hmac,
    ),
]


def documented(case: Case, outcome: Outcome, baseline: str) -> Divergence | None:
    """The documented divergence this disagreement is, if any."""
    return next((d for d in DIVERGENCES if d.matches(case, outcome, baseline)), None)


@dataclass
class Tally:
    """What the differential checks of this session ran (printed at the end of the pytest run)."""

    inputs: int = 0
    seconds: float = 0.0
    divergences: Counter[str] = field(default_factory=Counter)


TALLY = Tally()
_BASELINES: dict[str, str] = {}


def _baseline(decoders: Decoders, seed: Seed) -> str:
    """The sha256 of what the Go decoder outputs for ``seed`` unchanged (computed once)."""
    if seed.name not in _BASELINES:
        verdict = run_one(decoders.reference_commands[0], build(seed, ()))
        assert verdict.ok, f"the unchanged seed {seed.name} does not decrypt with Go: {verdict}"
        _BASELINES[seed.name] = verdict.output_sha256
    return _BASELINES[seed.name]


def check_agreement(seeds: dict[str, Seed], decoders: Decoders, case: Case, context: str) -> Divergence | None:
    """Run ``case`` through ours and the reference builds; fail unless they agree or differ in a documented way."""
    name, mutations = case
    start = time.monotonic()
    outcome = decoders.run(build(seeds[name], mutations))
    TALLY.inputs += 1
    TALLY.seconds += time.monotonic() - start
    if outcome.agree:
        return None
    divergence = documented(case, outcome, _baseline(decoders, seeds[name]))
    if divergence is not None:
        TALLY.divergences[divergence.name] += 1
    assert divergence is not None, f"decoders disagree ({context}) on {case!r}:\n{outcome.describe()}"
    return divergence
