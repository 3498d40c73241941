"""The Go reference decoder (ocicrypt 1.0.3) on the Go-written fixtures of tests/fixtures/go-ocicrypt.

Every case ocicrypt 1.0.3 supports decrypts to the recorded digest, every failure case fails with the
recorded exit status and prefix, with both toolchains' builds. PKCS#11 and key providers came with
ocicrypt 1.1.0: the reference cannot decrypt those cases, which this file asserts, and checks the
verdicts the imgcrypt 1.1.7 decoder (ocicrypt 1.1.6) recorded for them instead.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support.decoder import run_decoder
from support.fixtures import Case, case_names, load_case
from support.references import TOOLCHAINS, go_reference

# Schemes ocicrypt 1.0.3 has no key wrapper for (fixture name prefix -> what it lacks).
NOT_IN_OCICRYPT_1_0_3 = {
    "pkcs11-": "PKCS#11 (ocicrypt 1.1.0+)",
    "keyprovider-": "key providers (ocicrypt 1.1.0+)",
}
ALL_CASES = case_names(("",))
SUPPORTED = [name for name in ALL_CASES if not name.startswith(tuple(NOT_IN_OCICRYPT_1_0_3))]
UNSUPPORTED = [name for name in ALL_CASES if name.startswith(tuple(NOT_IN_OCICRYPT_1_0_3))]


def _run_reference(toolchain: str, case: Case) -> tuple[int, bytes, str]:
    command = [str(go_reference(toolchain).path)]
    result = run_decoder(case.layer, case.payload, case.args, case.env, cwd=case.directory, command=command)
    return result.returncode, result.stdout, result.stderr


def test_the_fixture_cases_are_all_accounted_for() -> None:
    assert len(SUPPORTED) >= 25
    assert sorted(UNSUPPORTED) == [
        "keyprovider-cmd",
        "keyprovider-cmd-node-model",
        "keyprovider-grpc",
        "pkcs11-softhsm-hsm-recipient",
        "pkcs11-softhsm-pem-recipient",
    ]


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("name", SUPPORTED)
def test_reference_gives_the_recorded_verdict(name: str, toolchain: str, tmp_path: Path) -> None:
    case = load_case(name, tmp_path)
    returncode, stdout, stderr = _run_reference(toolchain, case)
    if case.expected_sha256 is not None:
        assert returncode == 0, stderr
        assert hashlib.sha256(stdout).hexdigest() == case.expected_sha256
        return
    assert returncode == int((case.directory / "expected.rc").read_text())
    assert stdout == b""
    assert stderr.startswith(case.expected_prefix + ":"), stderr


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("name", UNSUPPORTED)
def test_reference_cannot_decrypt_what_ocicrypt_1_0_3_lacks(name: str, toolchain: str, tmp_path: Path) -> None:
    """ocicrypt 1.0.3 knows no PKCS#11 or key-provider annotation, so it finds no key it could use: the
    reference fails, and the recorded verdict (the imgcrypt 1.1.7 decoder decrypted) is what ours must match
    (tests/interop/test_go_fixtures_pkcs11_provider.py runs ours on these cases against it)."""
    case = load_case(name, tmp_path)
    returncode, stdout, stderr = _run_reference(toolchain, case)
    assert (returncode, stdout) == (1, b"")
    assert stderr == "call to DecryptLayer failed: missing private key needed for decryption\n"
    recorded = case.expected_sha256
    assert recorded is not None and len(recorded) == 64, f"{name}: the recorded Go verdict is a decrypted layer"
    assert not (case.directory / "expected.rc").exists()
