"""The adversarial corpus (tests/support/adversarial.py) through the installed executable.

Every hostile layer ends with a clear error (or, where Go skips a bad element, with the genuine key
winning), a stderr of a few KiB that starts with the Go prefix, no internal error, no traceback and
no Python warning. Time and memory per case are figures of bench/adversarial.py, not asserted here.
Cost: about 40 decoder runs, 30-60 s on the 2-core CI machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import adversarial
from support.adversarial import PLAINTEXT, Case, Corpus
from support.decoder import run_decoder

MAX_STDERR = 8 * 1024


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    made = Corpus(tmp_path_factory.mktemp("corpus"))
    yield made
    made.close()


def _run(case: Case) -> str:
    layer_path = Path(adversarial.__file__).parent  # any cwd; the layer goes on stdin
    result = run_decoder(case.blob, case.payload, args=case.args, env=case.env, cwd=layer_path, timeout=60)
    text = result.stderr
    where = f"{case.attack}/{case.name}: {text[:600]!r}"
    assert "internal error" not in text and "Traceback" not in text, where
    assert "Warning" not in text, where
    assert len(text.encode()) <= MAX_STDERR, f"{case.attack}/{case.name}: {len(text)} bytes of stderr"
    if case.decrypts:
        assert result.returncode == 0, where
        assert result.stdout == PLAINTEXT, where
    else:
        assert result.returncode == 1, where
        assert result.stdout == b"", where
        assert text.startswith("call to DecryptLayer failed: "), where
        assert text.count("\n\n") == 0, where
    return text


def test_too_many_wrapped_keys_or_recipients_stop_early_with_a_clear_error(corpus: Corpus) -> None:
    elements, recipients = adversarial.trial_caps(corpus, elements=2000, recipients=2000)
    assert "2,000 wrapped keys, more than the 64 any image needs; none was tried" in _run(elements)
    assert "the JWE has 2000 recipients, more than the 64 tried per wrapped key" in _run(recipients)


def test_pkcs7_envelopes_of_millions_of_tiny_elements_are_refused(corpus: Corpus) -> None:
    texts = {case.name: _run(case) for case in adversarial.pkcs7_memory(corpus, tiny=300_000)}
    assert "more than 64 elements in one structure" in texts["flat-set"]
    assert "could not parse PKCS7 packet" in texts["deep-nesting"]
    assert "more than 1024 elements in one structure" in texts["content-pieces"]


def test_repeated_reasons_and_long_values_keep_the_error_short(corpus: Corpus) -> None:
    texts = {case.name: _run(case) for case in adversarial.error_text(corpus, annotations=5000, value_size=200_000)}
    assert "provider.p0, provider.p1, provider.p10, provider.p100" in texts["provider-annotations"]
    assert "and 4,992 more" in texts["provider-annotations"]
    assert "more characters cut]" in texts["long-provider-name"]
    assert "5,000 wrapped keys" in texts["repeated-reasons"]


def test_malformed_jwe_elements_are_skipped_and_the_next_good_one_decrypts(corpus: Corpus) -> None:
    cases = adversarial.malformed_jwe(corpus, depth=50_000)
    assert len(cases) >= 12
    for case in cases:
        _run(case)


def test_deeply_nested_json_in_options_and_blobs_is_a_clear_error(corpus: Corpus) -> None:
    texts = {case.name: _run(case) for case in adversarial.deep_json(corpus, depth=50_000)}
    assert "could not JSON unmarshal pubOptsData: the JSON document is nested too deeply" in texts["pubopts"]
    assert "could not JSON unmarshal pubOptsData: the JSON document is nested too deeply" in texts["pubopts-object"]
    assert "could not JSON unmarshal privOptsData: the JSON document is nested too deeply" in texts["privopts"]
    assert "Could not parse Pkcs11Blob: nested too deeply" in texts["pkcs11-blob"]
    assert "Unsupported hash algorithm" in texts["pkcs11-hash-is-a-list"]


def test_malformed_jwk_key_files_are_skipped_and_the_genuine_key_decrypts(corpus: Corpus) -> None:
    for case in adversarial.malformed_key_files(corpus, depth=50_000):
        _run(case)


def test_certificate_with_serial_zero_prints_no_warning(corpus: Corpus, tmp_path: Path) -> None:
    (case,) = [c for c in adversarial.hygiene(corpus, tmp_path) if c.name == "serial-zero-certificate"]
    _run(case)


def test_control_characters_from_annotations_are_escaped(corpus: Corpus, tmp_path: Path) -> None:
    (case,) = [c for c in adversarial.hygiene(corpus, tmp_path) if c.name == "control-characters"]
    text = _run(case)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "provider.\\x1b[31mred\\x0d\\x07x" in text


def test_provider_echoing_its_request_does_not_get_our_keys_into_the_error(corpus: Corpus, tmp_path: Path) -> None:
    (case,) = [c for c in adversarial.hygiene(corpus, tmp_path) if c.name == "provider-echoes-request"]
    text = _run(case)
    assert "PRIVATE KEY" not in text
    assert adversarial.b64(corpus.layer.private_key_pem)[:40] not in text
    assert "bytes not shown" in text


def test_der_pkcs8_key_with_trailing_bytes_is_accepted_as_go_does(corpus: Corpus) -> None:
    (case,) = adversarial.pkcs8_trailing_bytes(corpus)
    _run(case)


def test_forged_openpgp_elements_start_gpg_only_for_our_key_ids_and_stop_at_the_budget(corpus: Corpus) -> None:
    texts = {case.name: _run(case) for case in adversarial.pgp_amplification(corpus, forged=300, addressed=60)}
    assert "300 wrapped keys, more than the 64 any image needs; none was tried" in texts["random-key-ids"]
    under_cap = texts["random-key-ids-under-the-cap"]
    assert under_cap.count("the message names none of its key IDs (gpg not run)") >= 15
    assert "could not decrypt" not in under_cap and "secret key " not in under_cap
    for name in ("our-key-id", "wildcard-key-id"):
        assert "this layer already used its 256 key trials" in texts[name]
        assert "(and 15 more with the same reason)" in texts[name]  # 16 gpg runs, then the budget
