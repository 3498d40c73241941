"""A layer only pays for the backends its annotations name: heavy imports stay out of other paths."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from support.decoder import modules_imported
from support.layers import GZIP_ENCRYPTED, jwe_layer
from support.providers import write_cmd_provider
from support.softhsm import SOFTHSM_MODULE, make_token, policy_file

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.layer import encrypt_layer


def _layer(ec: EncryptConfig) -> tuple[bytes, Descriptor]:
    out = io.BytesIO()
    annotations = encrypt_layer(ec, io.BytesIO(b"layer" * 1000), out)
    blob = out.getvalue()
    return blob, Descriptor(GZIP_ENCRYPTED, "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob), annotations)


def _decrypt(tmp_path: Path, blob: bytes, payload: bytes, env: dict[str, str] | None = None) -> set[str]:
    result, modules = modules_imported(tmp_path / "modules.json", blob, payload, env)
    assert result.returncode == 0, result.stderr
    assert "cryptography" in modules, "the module record was not written"
    return modules


def test_jwe_layer_imports_no_gpg_pkcs11_grpc_yaml_or_jwcrypto(tmp_path: Path) -> None:
    layer = jwe_layer(b"x" * 4096)
    loaded = _decrypt(tmp_path, layer.blob, layer.payload())
    assert not loaded & {"gnupg", "pkcs11", "grpc", "yaml", "jwcrypto"}, sorted(loaded)


def test_jwe_layer_skips_the_protobuf_runtime_and_hashlib(tmp_path: Path) -> None:
    # The fd-3 Any is read by hand and the HMAC is cryptography's: start-up is paid once per layer.
    layer = jwe_layer(b"x" * 4096)
    loaded = _decrypt(tmp_path, layer.blob, layer.payload())
    assert not loaded & {"google", "hashlib", "_hashlib", "queue"}, sorted(loaded)


def test_cmd_provider_layer_imports_neither_pkcs11_nor_grpc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, _ = write_cmd_provider(tmp_path, "lazykp", "ok")
    env = {"OCICRYPT_KEYPROVIDER_CONFIG": str(config)}
    monkeypatch.setenv("OCICRYPT_KEYPROVIDER_CONFIG", str(config))
    blob, descriptor = _layer(EncryptConfig({"lazykp": [b"Enabled"]}))
    payload = encode_payload(Payload(DecryptConfig({"lazykp": [b"Enabled"]}), descriptor))
    loaded = _decrypt(tmp_path, blob, payload, env)
    assert not loaded & {"pkcs11", "grpc", "yaml", "gnupg"}, sorted(loaded)


def test_pkcs11_layer_does_not_import_grpc_or_gnupg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_token(tmp_path / "hsm")
    token.generate_rsa("k", "01")
    env = {"OCICRYPT_CONFIG": str(policy_file(tmp_path, [SOFTHSM_MODULE])), "OCICRYPT_OAEP_HASHALG": "sha1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    blob, descriptor = _layer(EncryptConfig({params.PKCS11_YAMLS: [token.key_file("k")]}))
    payload = encode_payload(Payload(DecryptConfig({params.PKCS11_YAMLS: [token.key_file("k")]}), descriptor))
    loaded = _decrypt(tmp_path, blob, payload, env)
    assert "pkcs11" in loaded
    assert not loaded & {"grpc", "gnupg"}, sorted(loaded)
