"""Telling a passphrase-protected OpenPGP secret key from one in the clear, without gpg."""

from __future__ import annotations

import pytest
from support.fixtures import fixtures_dir
from support.gpgkeys import GpgHome

from ctd_decoder.decoder.payload import parse_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.keywrap.pgp.packets import PacketError, dearmor, secret_keys_need_passphrase


def _go_ring(case: str) -> bytes:
    payload = parse_payload((fixtures_dir() / case / "payload.bin").read_bytes())
    ring = payload.decrypt_config.get(params.GPG_PRIVATEKEYS)[0]
    assert ring is not None
    return ring


def test_go_fixture_rings() -> None:
    assert secret_keys_need_passphrase(_go_ring("pgp-with-passphrase"))
    assert not secret_keys_need_passphrase(_go_ring("pgp-no-passphrase"))


@pytest.fixture(scope="module")
def rings() -> dict[str, bytes]:
    """Exports of a curve key (EdDSA + ECDH subkey) with a passphrase and of one without."""
    home = GpgHome(cheap_s2k=True)
    try:
        for who, passphrase in (("protected", "pw"), ("clear", "")):
            home.generate(who, f"{who}@example.com", passphrase, curve=True)
        exported = {}
        for who, passphrase in (("protected", "pw"), ("clear", "")):
            exported[who] = home.export_secret(f"{who}@example.com", passphrase)
            exported[f"{who}-armored"] = home.export_secret(f"{who}@example.com", passphrase, armor=True)
            exported[f"{who}-subkeys"] = home.run("--passphrase", passphrase, "--export-secret-subkeys", who)
        return exported
    finally:
        home.close()


@pytest.mark.parametrize("form", ["", "-armored", "-subkeys"])
def test_gpg_exports_binary_armored_and_subkeys_only(rings: dict[str, bytes], form: str) -> None:
    assert secret_keys_need_passphrase(rings["protected" + form])
    assert not secret_keys_need_passphrase(rings["clear" + form])


def test_truncated_ring_at_every_length_never_raises(rings: dict[str, bytes]) -> None:
    ring = rings["protected"]
    for cut in range(len(ring)):
        secret_keys_need_passphrase(ring[:cut])


@pytest.mark.parametrize("data", [b"", b"\x00garbage", b"\xc5\x05\x04", b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n"])
def test_unreadable_rings_are_not_claimed_to_need_a_passphrase(data: bytes) -> None:
    assert not secret_keys_need_passphrase(data)


def test_dearmor_refuses_a_body_that_is_not_base64() -> None:
    with pytest.raises(PacketError):
        dearmor(b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n!!!!\n-----END PGP PRIVATE KEY BLOCK-----\n")
