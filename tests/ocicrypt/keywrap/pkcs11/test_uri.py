"""pkcs11: URIs (RFC 7512 as ocicrypt reads them) and the module search under the module policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctd_decoder.ocicrypt.keywrap.pkcs11.policy import Pkcs11Config
from ctd_decoder.ocicrypt.keywrap.pkcs11.uri import Pkcs11UriError, parse


def test_attributes_are_percent_decoded() -> None:
    uri = parse("pkcs11:token=my%20token;id=%01%02%FF;object=k+1?pin-value=12%2634&module-name=softhsm2")
    assert uri.text("token") == "my token"
    assert uri.path["id"] == b"\x01\x02\xff"
    assert uri.text("object") == "k 1"  # Go's QueryUnescape turns + into a space
    assert uri.pin() == "12&34"
    assert uri.key_selector() == (b"\x01\x02\xff", "k 1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pkcs12:token=t", "missing pkcs11: prefix"),
        ("pkcs11:token=t?a=1?b=2", "too many query parts"),
        ("pkcs11:token", "malformed path attribute"),
        ("pkcs11:token=a=b", "malformed path attribute"),
        ("pkcs11:token=t?pin-value", "malformed query attribute"),
        ("pkcs11:token=a;token=b", "duplicate path attribute"),
        ("pkcs11:slot-id=x", "slot-id must be a number"),
        ("pkcs11:token=%zz", "invalid URL escape"),
        ("pkcs11:token=t?pin-value=1&pin-source=/p", "must not contain pin-source and pin-value"),
        ("pkcs11:token=t?module-path=lib.so", "must be absolute"),
        ("pkcs11:type=weird", "Invalid type"),
    ],
)
def test_malformed_uris(text: str, message: str) -> None:
    with pytest.raises(Pkcs11UriError, match=message):
        parse(text)


def test_key_selector_needs_id_or_object() -> None:
    with pytest.raises(Pkcs11UriError, match="Neither 'id' nor 'object'"):
        parse("pkcs11:token=t").key_selector()


def test_slot_id_range() -> None:
    assert parse("pkcs11:slot-id=7;object=k").slot_id() == 7
    with pytest.raises(Pkcs11UriError, match="between 0 and"):
        parse("pkcs11:slot-id=4294967296;object=k").slot_id()


def test_pin_source_file_is_read_verbatim(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_bytes(b"5678\n")
    assert parse(f"pkcs11:token=t?pin-source={pin_file}").pin() == "5678\n"
    assert parse(f"pkcs11:token=t?pin-source=file://{pin_file}").pin() == "5678\n"
    assert parse("pkcs11:token=t").pin() is None


def test_pin_source_must_be_an_absolute_local_file() -> None:
    with pytest.raises(Pkcs11UriError, match="not absolute"):
        parse("pkcs11:token=t?pin-source=pin.txt").pin()
    with pytest.raises(Pkcs11UriError, match="scheme https is not supported"):
        parse("pkcs11:token=t?pin-source=https://example.invalid/pin").pin()


def _modules(tmp_path: Path) -> Path:
    directory = tmp_path / "modules"
    directory.mkdir()
    for name in ("libsofthsm2.so", "libsofthsm.so.1", "libother.so"):
        (directory / name).write_bytes(b"\x7fELF")
    return directory


def test_module_name_matches_whole_names_only(tmp_path: Path) -> None:
    directory = _modules(tmp_path)
    config = Pkcs11Config([f"{directory}/"], [f"{directory}/"], "test")
    assert parse("pkcs11:token=t?module-name=softhsm2").find_module(config) == f"{directory}/libsofthsm2.so"
    assert parse("pkcs11:token=t?module-name=SoftHSM").find_module(config) == f"{directory}/libsofthsm.so.1"
    with pytest.raises(Pkcs11UriError, match="No module could be found"):
        parse("pkcs11:token=t?module-name=soft").find_module(config)


def test_module_path_may_be_a_directory_to_search(tmp_path: Path) -> None:
    directory = _modules(tmp_path)
    config = Pkcs11Config([], [f"{directory}/libother.so"], "test")
    uri = parse(f"pkcs11:token=t?module-path={directory}&module-name=other")
    assert uri.find_module(config) == f"{directory}/libother.so"


def test_allowed_paths_are_exact_files_or_direct_children_of_directories() -> None:
    config = Pkcs11Config([], ["/opt/hsm/lib.so", "/usr/lib/softhsm/"], "test")
    assert config.is_allowed("/opt/hsm/lib.so")
    assert config.is_allowed("/usr/lib/softhsm/libsofthsm2.so")
    assert not config.is_allowed("/opt/hsm/lib.so.1")
    assert not config.is_allowed("/usr/lib/softhsm/sub/libsofthsm2.so")
    assert not config.is_allowed("/usr/lib/softhsm/../../../elsewhere/libsofthsm2.so")
