"""The system root pool of a grpc-tls provider, read as Go reads it on Linux (one unit, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.providers import make_pki

from ctd_decoder.ocicrypt.keywrap.provider import tls
from ctd_decoder.ocicrypt.keywrap.provider.errors import ProviderCallError


def test_the_first_bundle_file_and_every_directory_entry_count_each_certificate_once(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first, second = make_pki(tmp_path / "a").ca, make_pki(tmp_path / "b").ca
    not_a_certificate = b"-----BEGIN CERTIFICATE-----\nbm90\n-----END CERTIFICATE-----\n"
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(b"junk\n" + first.read_bytes() + not_a_certificate)
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / "b.pem").write_bytes(second.read_bytes())
    (directory / "a-again.pem").write_bytes(first.read_bytes())
    (directory / "0123abcd.0").symlink_to("b.pem")  # c_rehash's link to a file beside it
    roots = tls.system_roots({"SSL_CERT_FILE": str(bundle), "SSL_CERT_DIR": f"{tmp_path / 'none'}:{directory}"})
    assert roots.count(b"-----BEGIN CERTIFICATE-----") == 2
    assert first.read_bytes().strip() in roots and second.read_bytes().strip() in roots


def test_no_root_anywhere_is_a_clean_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProviderCallError, match=r"no system root CA certificates found .*; set grpc-tls root-ca-file"):
        tls.system_roots({"SSL_CERT_FILE": str(empty / "none.pem"), "SSL_CERT_DIR": str(empty)})
