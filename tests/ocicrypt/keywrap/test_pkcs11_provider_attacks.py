"""Attacks and abuse against the PKCS#11 and key-provider wrappers, in process."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path

import pytest
from support.softhsm import SOFTHSM_MODULE, make_token

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig
from ctd_decoder.ocicrypt.errors import UnwrapError
from ctd_decoder.ocicrypt.keywrap.pkcs11 import wrapper as pkcs11_wrapper
from ctd_decoder.ocicrypt.keywrap.provider import transport as transport
from ctd_decoder.ocicrypt.keywrap.provider.config import Command, ProviderSpec
from ctd_decoder.ocicrypt.keywrap.provider.wrapper import KeyProviderWrapper

POLICY = f"module-directories: [/usr/lib/softhsm/]\nallowed-module-paths: [{SOFTHSM_MODULE}]\n".encode()


def _blob(*recipients: dict[str, object]) -> bytes:
    return json.dumps({"version": 0, "recipients": list(recipients)}).encode()


ONE_RECIPIENT = _blob({"version": 0, "blob": base64.b64encode(b"x" * 256).decode(), "hash": "sha1"})


def _key_file(uri: str, env: dict[str, str] | None = None) -> bytes:
    text = f"pkcs11:\n  uri: {uri}\n"
    if env:
        text += "module:\n  env:\n" + "".join(f"    {k}: {v}\n" for k, v in env.items())
    return text.encode()


def _forbid_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(module: str) -> None:
        raise AssertionError(f"{module} was loaded")

    monkeypatch.setattr(pkcs11_wrapper, "_load_library", refuse)


def test_pin_is_redacted_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_loading(monkeypatch)
    dc = DecryptConfig(
        {
            params.PKCS11_YAMLS: [
                _key_file("pkcs11:token=t;object=k?pin-value=S3cr%65tPIN&module-path=/nonexistent.so")
            ],
            params.PKCS11_CONFIG: [POLICY],
        }
    )
    with pytest.raises(UnwrapError) as caught:
        pkcs11_wrapper.WRAPPER.unwrap_key(dc, ONE_RECIPIENT)
    text = str(caught.value)
    assert "S3cr" not in text and "secret" not in text.lower()
    assert "pkcs11:token=t;object=k?pin-value=***&module-path=/nonexistent.so" in text


def test_module_outside_allowed_paths_is_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forbid_loading(monkeypatch)
    rogue = tmp_path / "libsofthsm2.so"
    rogue.write_bytes(b"\x7fELF not really")
    dc = DecryptConfig(
        {
            params.PKCS11_YAMLS: [_key_file(f"pkcs11:token=t;object=k?pin-value=1&module-path={rogue}")],
            params.PKCS11_CONFIG: [POLICY],
        }
    )
    with pytest.raises(UnwrapError, match=f"module {rogue} is not allowed, so it was not loaded"):
        pkcs11_wrapper.WRAPPER.unwrap_key(dc, ONE_RECIPIENT)


def test_module_path_traversal_out_of_an_allowed_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forbid_loading(monkeypatch)
    rogue = tmp_path / "libsofthsm2.so"
    rogue.write_bytes(b"\x7fELF")
    sneaky = "/usr/lib/softhsm/" + "../" * 8 + str(rogue).lstrip("/")
    policy = b"allowed-module-paths: [/usr/lib/softhsm/]\n"
    dc = DecryptConfig(
        {
            params.PKCS11_YAMLS: [_key_file(f"pkcs11:token=t;object=k?pin-value=1&module-path={sneaky}")],
            params.PKCS11_CONFIG: [policy],
        }
    )
    with pytest.raises(UnwrapError, match="is not allowed, so it was not loaded"):
        pkcs11_wrapper.WRAPPER.unwrap_key(dc, ONE_RECIPIENT)


def test_empty_allowed_module_paths_allows_no_module(monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_loading(monkeypatch)
    dc = DecryptConfig(
        {
            params.PKCS11_YAMLS: [_key_file(f"pkcs11:token=t;object=k?pin-value=1&module-path={SOFTHSM_MODULE}")],
            params.PKCS11_CONFIG: [b"module-directories: [/usr/lib/softhsm/]\n"],
        }
    )
    with pytest.raises(UnwrapError, match="allowed-module-paths from the pkcs11-config parameter: none"):
        pkcs11_wrapper.WRAPPER.unwrap_key(dc, ONE_RECIPIENT)


def test_private_key_operation_without_pin_is_refused_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_loading(monkeypatch)
    dc = DecryptConfig(
        {
            params.PKCS11_YAMLS: [_key_file("pkcs11:token=t;object=k?module-name=softhsm2")],
            params.PKCS11_CONFIG: [POLICY],
        }
    )
    with pytest.raises(UnwrapError, match="Missing PIN for private key operation"):
        pkcs11_wrapper.WRAPPER.unwrap_key(dc, ONE_RECIPIENT)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"not json", "Could not parse Pkcs11Blob"),
        (json.dumps({"version": 1, "recipients": []}).encode(), "Pkcs11Blob with version 1"),
        (_blob({"version": 2, "blob": "eA=="}), "Pkcs11Recipient with version 2"),
        (_blob({"version": 0, "blob": "eA==", "hash": "md5"}), "Unsupported hash algorithm 'md5'"),
        (_blob({"version": 0, "blob": "!!"}), "Base64 decoding failed"),
    ],
)
def test_malformed_pkcs11_blobs_are_rejected_before_any_module_is_loaded(
    blob: bytes, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forbid_loading(monkeypatch)
    dc = DecryptConfig({params.PKCS11_YAMLS: [_key_file("pkcs11:token=t;object=k?pin-value=1&module-name=softhsm2")]})
    with pytest.raises(UnwrapError, match=message):
        pkcs11_wrapper.WRAPPER.unwrap_key(dc, blob)


def test_module_env_is_applied_only_during_the_hsm_operation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_token(tmp_path)
    token.generate_rsa("k", "01")
    monkeypatch.setenv("SOFTHSM2_CONF", "/previous/value.conf")
    monkeypatch.delenv("CTD_TEST_UNSET", raising=False)
    seen: dict[str, str | None] = {}
    real_load = pkcs11_wrapper._load_library

    def spy(module: str) -> object:
        seen.update(conf=os.environ.get("SOFTHSM2_CONF"), extra=os.environ.get("CTD_TEST_UNSET"))
        return real_load(module)

    monkeypatch.setattr(pkcs11_wrapper, "_load_library", spy)
    env = {"SOFTHSM2_CONF": str(token.conf), "CTD_TEST_UNSET": "set-by-key-file"}
    key = _key_file(f"pkcs11:token={token.label};object=k?pin-value=1234&module-name=softhsm2", env)
    dc = DecryptConfig({params.PKCS11_YAMLS: [key], params.PKCS11_CONFIG: [POLICY]})
    with pytest.raises(UnwrapError, match="not a recipient"):  # the key is real, the blob is not for it
        pkcs11_wrapper.WRAPPER.unwrap_key(dc, ONE_RECIPIENT)
    assert seen == {"conf": str(token.conf), "extra": "set-by-key-file"}
    assert os.environ["SOFTHSM2_CONF"] == "/previous/value.conf"
    assert "CTD_TEST_UNSET" not in os.environ


def _script(tmp_path: Path, body: str) -> Command:
    path = tmp_path / "provider.py"
    path.write_text(f"#!{sys.executable}\nimport os, subprocess, sys, time\n{body}\n")
    path.chmod(0o755)
    return Command(str(path))


def _assert_reaped(pid_file: Path) -> None:
    pid = int(pid_file.read_text())
    with pytest.raises(ChildProcessError):  # not a child of ours any more: killed and reaped
        os.waitpid(pid, os.WNOHANG)
    assert not Path(f"/proc/{pid}").exists()


def test_hanging_provider_is_killed_and_reaped(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = _script(tmp_path, f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(1000)")
    started = time.monotonic()
    with pytest.raises(transport.ProviderTimeout, match=r"did not answer within 0\.5 s"):
        transport.run_command(command, b"{}", 0.5)
    assert time.monotonic() - started < 10
    _assert_reaped(pid_file)


def test_provider_stderr_is_bounded(tmp_path: Path) -> None:
    command = _script(tmp_path, "sys.stderr.write('x' * 1_000_000); sys.exit(1)")
    result = transport.run_command(command, b"{}", 30)
    assert result.returncode == 1
    assert len(result.stderr) == transport.STDERR_LIMIT and result.stderr_truncated


def test_provider_flooding_stdout_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "MAX_RESPONSE_SIZE", 100_000)
    pid_file = tmp_path / "pid"
    body = f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\nwhile True: sys.stdout.write('y' * 65536)"
    command = _script(tmp_path, body)
    with pytest.raises(transport.ProviderCallError, match="more than 100000 bytes"):
        transport.run_command(command, b"{}", 30)
    _assert_reaped(pid_file)


def test_provider_that_ignores_stdin_does_not_block_us(tmp_path: Path) -> None:
    command = _script(tmp_path, "sys.stdout.write('{}')")
    result = transport.run_command(command, b"z" * 10_000_000, 30)
    assert result.returncode == 0 and result.stdout == b"{}"


def test_provider_receives_only_its_own_parameter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTD_DECODER_PROVIDER_SEND_ALL_KEYS", raising=False)
    record = tmp_path / "request.json"
    command = _script(tmp_path, f"open({str(record)!r}, 'wb').write(sys.stdin.buffer.read()); print('{{}}')")
    wrapper = KeyProviderWrapper(ProviderSpec("mine", command))
    dc = DecryptConfig(
        {"mine": [b"arg"], "other": [b"x"], params.PRIVKEYS: [b"secret"], params.PRIVKEYS_PASSWORDS: [None]}
    )
    assert wrapper.unwrap_key(dc, b"wrapped") is None  # "{}" is an answer without optsdata
    request = json.loads(record.read_text())
    assert request["keyunwrapparams"]["dc"] == {"Parameters": {"mine": ["YXJn"]}}
    assert request["keyunwrapparams"]["annotation"] == base64.b64encode(b"wrapped").decode()
