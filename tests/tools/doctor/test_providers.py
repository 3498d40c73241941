"""``ocicrypt doctor`` on key providers (real provider programs, a real gRPC server with and without
TLS) and PKCS#11 keys (a real SoftHSM2 token), as the decoder's processor environment names them.
Nothing is wrapped or unwrapped: the providers record no request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.doctor import DEBIAN_CONTAINERD, Doctor, run_doctor, write_node_config
from support.providers import (
    GrpcServer,
    free_port,
    make_pki,
    requests,
    write_cmd_provider,
    write_grpc_config,
)
from support.softhsm import SOFTHSM_MODULE, Token, make_token, policy_file

NAME = "kp"


def doctor_env(tmp_path: Path, env: dict[str, str], key_files: dict[str, bytes] | None = None) -> Doctor:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    for name, data in (key_files or {}).items():
        (keys / name).write_bytes(data)
        (keys / name).chmod(0o600)
    config = write_node_config(tmp_path / "containerd.toml", keys, env)
    return run_doctor("--containerd-config", config, "--containerd", DEBIAN_CONTAINERD)


def provider_env(config: Path) -> dict[str, str]:
    return {"OCICRYPT_KEYPROVIDER_CONFIG": str(config)}


def test_cmd_provider_is_found_and_not_called(tmp_path: Path) -> None:
    config, record = write_cmd_provider(tmp_path, NAME, "ok")
    result = doctor_env(tmp_path, provider_env(config))
    assert f"key providers: {NAME}" in result.one("providers.config", "ok")["message"]
    assert str(tmp_path / f"{NAME}-provider.py") in result.one(f"providers.{NAME}", "ok")["message"]
    assert requests(record) == []
    assert result.returncode == 0, result.errors()


@pytest.mark.parametrize("mistake", ["missing", "not-executable"])
def test_cmd_provider_program_unusable(tmp_path: Path, mistake: str) -> None:
    config, _ = write_cmd_provider(tmp_path, NAME, "ok")
    script = tmp_path / f"{NAME}-provider.py"
    if mistake == "missing":
        script.unlink()
    else:
        script.chmod(0o644)
    result = doctor_env(tmp_path, provider_env(config))
    finding = result.one(f"providers.{NAME}", "error")
    assert "not found or not executable" in finding["message"]
    assert f"key-providers.{NAME}.cmd.path" in finding["fix"]
    assert result.returncode == 1


def test_provider_config_that_is_not_json(tmp_path: Path) -> None:
    config = tmp_path / "keyprovider.conf"
    config.write_text('{"key-providers": {"kp": {"cmd": ')
    result = doctor_env(tmp_path, provider_env(config))
    finding = result.one("providers.config", "error")
    assert "Error while parsing keyprovider config file" in finding["message"] and str(config) in finding["fix"]


def test_provider_without_cmd_or_grpc(tmp_path: Path) -> None:
    config = tmp_path / "keyprovider.conf"
    config.write_text(json.dumps({"key-providers": {NAME: {}}}))
    finding = doctor_env(tmp_path, provider_env(config)).one(f"providers.{NAME}", "error")
    assert '"cmd"' in finding["fix"] and '"grpc"' in finding["fix"]


def test_provider_config_named_but_missing(tmp_path: Path) -> None:
    result = doctor_env(tmp_path, provider_env(tmp_path / "nowhere.conf"))
    finding = result.one("providers.config", "warning")
    assert "does not exist" in finding["message"] and "OCICRYPT_KEYPROVIDER_CONFIG" in finding["fix"]


def test_grpc_provider_accepts_a_connection(tmp_path: Path, grpc_server: GrpcServer) -> None:
    config = write_grpc_config(tmp_path, NAME, grpc_server.target)
    result = doctor_env(tmp_path, provider_env(config))
    assert "accepts a plaintext connection" in result.one(f"providers.{NAME}", "ok")["message"]
    assert requests(grpc_server.record) == []


def test_grpc_provider_that_nobody_serves(tmp_path: Path) -> None:
    config = write_grpc_config(tmp_path, NAME, f"127.0.0.1:{free_port()}")
    finding = doctor_env(tmp_path, provider_env(config)).one(f"providers.{NAME}", "error")
    assert "could not connect" in finding["message"] and f"key-providers.{NAME}.grpc" in finding["fix"]


def _tls(pki: Path, ca: Path | None = None) -> dict[str, object]:
    return {
        "root-ca-file": str(ca or pki / "ca.pem"),
        "cert-file": str(pki / "client.pem"),
        "key-file": str(pki / "client.key"),
        "server-name": "provider.test",
    }


def test_grpc_provider_over_tls(tmp_path: Path, tls_server: tuple[GrpcServer, Path]) -> None:
    server, pki = tls_server
    config = write_grpc_config(tmp_path, NAME, server.target, _tls(pki))
    result = doctor_env(tmp_path, provider_env(config))
    assert "accepts a TLS connection" in result.one(f"providers.{NAME}", "ok")["message"]
    assert requests(server.record) == []


def test_grpc_provider_with_the_wrong_ca(tmp_path: Path, tls_server: tuple[GrpcServer, Path]) -> None:
    server, pki = tls_server
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    config = write_grpc_config(tmp_path, NAME, server.target, _tls(pki, make_pki(stranger).ca))
    finding = doctor_env(tmp_path, provider_env(config)).one(f"providers.{NAME}", "error")
    assert f"key-providers.{NAME}.grpc-tls" in finding["fix"]


def test_grpc_provider_tls_file_missing(tmp_path: Path, tls_server: tuple[GrpcServer, Path]) -> None:
    server, pki = tls_server
    config = write_grpc_config(tmp_path, NAME, server.target, _tls(pki, tmp_path / "no-ca.pem"))
    finding = doctor_env(tmp_path, provider_env(config)).one(f"providers.{NAME}", "error")
    assert "root CA" in finding["message"] and "grpc-tls" in finding["fix"]


@pytest.fixture
def token(tmp_path: Path) -> Token:
    made = make_token(tmp_path / "hsm", "doctor")
    made.generate_rsa("node-key", "01")
    return made


def test_pkcs11_key_found_on_its_token(tmp_path: Path, token: Token) -> None:
    policy = policy_file(tmp_path, [SOFTHSM_MODULE])
    result = doctor_env(tmp_path, {"OCICRYPT_CONFIG": str(policy)}, {"hsm.yaml": token.key_file("node-key")})
    assert SOFTHSM_MODULE in result.one("pkcs11.policy", "ok")["message"]
    finding = result.one("pkcs11.key", "ok")
    assert "object=node-key" in finding["message"] and "pin-value=***" in finding["message"]
    assert SOFTHSM_MODULE in finding["message"]
    assert "1234" not in json.dumps(result.findings)
    assert result.returncode == 0, result.errors()


def test_pkcs11_module_not_allowed(tmp_path: Path, token: Token) -> None:
    policy = policy_file(tmp_path, ["/usr/lib/other/libother.so"])
    result = doctor_env(tmp_path, {"OCICRYPT_CONFIG": str(policy)}, {"hsm.yaml": token.key_file("node-key")})
    finding = result.one("pkcs11.key", "error")
    assert "not allowed" in finding["message"] and "allowed-module-paths" in finding["fix"]


def test_pkcs11_key_without_pin(tmp_path: Path, token: Token) -> None:
    policy = policy_file(tmp_path, [SOFTHSM_MODULE])
    result = doctor_env(tmp_path, {"OCICRYPT_CONFIG": str(policy)}, {"hsm.yaml": token.key_file("node-key", pin=None)})
    finding = result.one("pkcs11.key", "error")
    assert "PIN" in finding["message"] and "pin-value" in finding["fix"]


def test_pkcs11_key_not_on_the_token(tmp_path: Path, token: Token) -> None:
    policy = policy_file(tmp_path, [SOFTHSM_MODULE])
    result = doctor_env(tmp_path, {"OCICRYPT_CONFIG": str(policy)}, {"hsm.yaml": token.key_file("no-such-key")})
    finding = result.one("pkcs11.key", "error")
    assert "no-such-key" in finding["message"]


def test_pkcs11_key_without_any_module_policy(tmp_path: Path, token: Token) -> None:
    assert not Path("/etc/ocicrypt.conf").exists(), "this test needs a node without /etc/ocicrypt.conf"
    result = doctor_env(tmp_path, {}, {"hsm.yaml": token.key_file("node-key")})
    finding = result.one("pkcs11.policy", "error")
    assert "No ocicrypt config file was found" in finding["message"] and "OCICRYPT_CONFIG" in finding["fix"]
