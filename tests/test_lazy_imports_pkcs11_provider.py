"""Heavy backends load only for the scheme that needs them: pkcs11 and grpc stay out of other layers."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.layers import GZIP_ENCRYPTED, jwe_layer
from support.providers import write_cmd_provider
from support.softhsm import SOFTHSM_MODULE, make_token, policy_file

from ctd_decoder import config as params
from ctd_decoder.config import DecryptConfig, EncryptConfig
from ctd_decoder.layer import encrypt_layer
from ctd_decoder.payload import Descriptor, Payload, encode_payload

_RUN = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: open(sys.argv[1], 'w').write(json.dumps(sorted(sys.modules))))\n"
    "from ctd_decoder.cli import main\n"
    "sys.exit(main([]))\n"
)


def _modules_loaded(tmp_path: Path, blob: bytes, payload: bytes, env: dict[str, str] | None = None) -> set[str]:
    """Decrypt in a fresh interpreter (payload on fd 3); return the top-level packages it imported."""
    out = tmp_path / "modules.json"
    read_end, write_end = os.pipe()
    os.write(write_end, payload)
    os.close(write_end)
    result = subprocess.run(
        [sys.executable, "-c", _RUN, str(out)],
        input=blob,
        capture_output=True,
        pass_fds=(3,),
        preexec_fn=lambda: os.dup2(read_end, 3),
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )
    os.close(read_end)
    assert result.returncode == 0, result.stderr.decode()
    return {name.split(".")[0] for name in json.loads(out.read_text())}


def _layer(ec: EncryptConfig) -> tuple[bytes, Descriptor]:
    out = io.BytesIO()
    annotations = encrypt_layer(ec, io.BytesIO(b"layer" * 1000), out)
    blob = out.getvalue()
    return blob, Descriptor(GZIP_ENCRYPTED, "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob), annotations)


def test_jwe_layer_imports_neither_pkcs11_nor_grpc(tmp_path: Path) -> None:
    layer = jwe_layer(b"x" * 4096)
    loaded = _modules_loaded(tmp_path, layer.blob, layer.payload())
    assert "cryptography" in loaded
    assert not loaded & {"pkcs11", "grpc", "yaml"}, sorted(loaded)


def test_cmd_provider_layer_imports_neither_pkcs11_nor_grpc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, _ = write_cmd_provider(tmp_path, "lazykp", "ok")
    monkeypatch.setenv("OCICRYPT_KEYPROVIDER_CONFIG", str(config))
    blob, descriptor = _layer(EncryptConfig({"lazykp": [b"Enabled"]}))
    payload = encode_payload(Payload(DecryptConfig({"lazykp": [b"Enabled"]}), descriptor))
    loaded = _modules_loaded(tmp_path, blob, payload, {"OCICRYPT_KEYPROVIDER_CONFIG": str(config)})
    assert not loaded & {"pkcs11", "grpc", "yaml"}, sorted(loaded)


def test_pkcs11_layer_does_not_import_grpc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_token(tmp_path / "hsm")
    token.generate_rsa("k", "01")
    policy = policy_file(tmp_path, [SOFTHSM_MODULE])
    monkeypatch.setenv("OCICRYPT_CONFIG", str(policy))
    monkeypatch.setenv("OCICRYPT_OAEP_HASHALG", "sha1")
    blob, descriptor = _layer(EncryptConfig({params.PKCS11_YAMLS: [token.key_file("k")]}))
    payload = encode_payload(Payload(DecryptConfig({params.PKCS11_YAMLS: [token.key_file("k")]}), descriptor))
    loaded = _modules_loaded(tmp_path, blob, payload, {"OCICRYPT_CONFIG": str(policy)})
    assert "pkcs11" in loaded
    assert "grpc" not in loaded, sorted(loaded)
