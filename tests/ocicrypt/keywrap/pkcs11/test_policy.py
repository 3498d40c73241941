"""The PKCS#11 module policy: the pkcs11-config parameter and the user config files, found lazily."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctd_decoder.ocicrypt.keywrap.pkcs11 import policy
from ctd_decoder.ocicrypt.keywrap.pkcs11.policy import Pkcs11ConfigError, config_for, load_user_config


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OCICRYPT_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(policy, "SYSTEM_CONFIG", str(tmp_path / "etc" / "ocicrypt.conf"))


def _conf(path: Path, allowed: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"pkcs11:\n  module-directories:\n    - /d/\n  allowed-module-paths:\n    - {allowed}\n")
    return path


def test_internal_uses_the_builtin_directories_for_both_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCICRYPT_CONFIG", "internal")
    config = load_user_config()
    assert "/usr/lib/softhsm/" in config.module_directories
    assert config.allowed_module_paths == config.module_directories
    assert "internal" in config.source


def test_search_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    system = _conf(Path(policy.SYSTEM_CONFIG), "/system.so")
    assert load_user_config().allowed_module_paths == ["/system.so"]
    _conf(tmp_path / "home" / ".config" / "ocicrypt.conf", "/home.so")
    assert load_user_config().allowed_module_paths == ["/home.so"]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    _conf(tmp_path / "xdg" / "ocicrypt.conf", "/xdg.so")
    assert load_user_config().allowed_module_paths == ["/xdg.so"]
    monkeypatch.setenv("OCICRYPT_CONFIG", str(tmp_path / "missing.conf"))
    assert load_user_config().allowed_module_paths == ["/xdg.so"]
    monkeypatch.setenv("OCICRYPT_CONFIG", str(_conf(tmp_path / "env.conf", "/env.so")))
    config = load_user_config()
    assert config.allowed_module_paths == ["/env.so"]
    assert str(tmp_path / "env.conf") in config.source
    assert system.exists()


def test_system_file_is_an_absolute_path_whatever_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real constant, not the fixture's temp path
    monkeypatch.chdir(tmp_path)
    assert policy.SYSTEM_CONFIG == "/etc/ocicrypt.conf"
    assert policy.candidate_files({})[-1] == "/etc/ocicrypt.conf"
    assert os.path.isabs(policy.candidate_files({"HOME": "/root"})[-1])


def test_nothing_found_is_explained() -> None:
    with pytest.raises(Pkcs11ConfigError, match="No ocicrypt config file was found"):
        load_user_config()


def test_parameter_wins_and_has_no_pkcs11_wrapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCICRYPT_CONFIG", str(_conf(tmp_path / "env.conf", "/env.so")))
    config = config_for([b"", b"module-directories: [/p/]\nallowed-module-paths: [/p/lib.so]\n"])
    assert config.allowed_module_paths == ["/p/lib.so"]
    assert config.source == "the pkcs11-config parameter"
    assert config_for([]).allowed_module_paths == ["/env.so"]


def test_malformed_policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Pkcs11ConfigError, match="not a list of strings"):
        config_for([b"allowed-module-paths: /single/string.so\n"])
    bad = tmp_path / "bad.conf"
    bad.write_text("pkcs11: [\n")
    monkeypatch.setenv("OCICRYPT_CONFIG", str(bad))
    with pytest.raises(Pkcs11ConfigError, match="Could not parse Pkcs11Config"):
        load_user_config()
