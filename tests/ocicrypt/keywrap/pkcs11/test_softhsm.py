"""PKCS#11 with a real SoftHSM2 token made at test time: our encryption, the installed decoder's decryption."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from support.decoder import run_decoder
from support.keygen import new_key, private_pem, public_pem
from support.layers import GZIP_ENCRYPTED
from support.softhsm import SOFTHSM_MODULE, USER_PIN, Token, make_token, policy_file

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.layer import encrypt_layer

PKCS11_ANNOTATION = "org.opencontainers.image.enc.keys.pkcs11"
KEY_LABEL = "rsa3072"


@dataclass
class Hsm:
    """A token with one 3072-bit key pair, and a module policy that allows SoftHSM2 only."""

    token: Token
    policy: Path

    def decoder_env(self) -> dict[str, str]:
        """The decoder's environment: the policy, but no SOFTHSM2_CONF (the key file's module.env has it)."""
        return {"OCICRYPT_CONFIG": str(self.policy), "SOFTHSM2_CONF": ""}


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Hsm:
    directory = tmp_path_factory.mktemp("softhsm")
    token = make_token(directory)
    token.generate_rsa(KEY_LABEL, "01", bits=3072)
    return Hsm(token, policy_file(directory, [SOFTHSM_MODULE]))


@dataclass
class Layer:
    plaintext: bytes
    blob: bytes
    descriptor: Descriptor


def _encrypt(ec: EncryptConfig, monkeypatch: pytest.MonkeyPatch, hash_name: str | None) -> Layer:
    if hash_name is None:
        monkeypatch.delenv("OCICRYPT_OAEP_HASHALG", raising=False)
    else:
        monkeypatch.setenv("OCICRYPT_OAEP_HASHALG", hash_name)
    plaintext = os.urandom(50_000)
    out = io.BytesIO()
    annotations = encrypt_layer(ec, io.BytesIO(plaintext), out)
    blob = out.getvalue()
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    return Layer(plaintext, blob, Descriptor(GZIP_ENCRYPTED, digest, len(blob), annotations))


def _recipients(layer: Layer) -> list[dict[str, object]]:
    document = json.loads(base64.b64decode(layer.descriptor.annotations[PKCS11_ANNOTATION]))
    assert document["version"] == 0
    recipients: list[dict[str, object]] = document["recipients"]
    return recipients


def _token_public_pem(hsm: Hsm) -> bytes:
    public = serialization.load_der_public_key(hsm.token.public_key_der(KEY_LABEL))
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _node_payload(layer: Layer) -> bytes:
    return encode_payload(Payload(DecryptConfig(), layer.descriptor))


def test_sha1_from_token_public_key_decrypts_with_yaml_in_keys_dir(
    hsm: Hsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCICRYPT_CONFIG", str(hsm.policy))
    layer = _encrypt(EncryptConfig({params.PKCS11_YAMLS: [hsm.token.key_file(KEY_LABEL)]}), monkeypatch, "sha1")
    assert [r["hash"] for r in _recipients(layer)] == ["sha1"]
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "hsm-key.yaml").write_bytes(hsm.token.key_file(KEY_LABEL))
    result = run_decoder(layer.blob, _node_payload(layer), ["--decryption-keys-path", str(keys)], env=hsm.decoder_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


def test_sha1_from_pem_recipient_decrypts_with_yaml_and_config_in_payload(
    hsm: Hsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = _token_public_pem(hsm)
    other = public_pem(new_key("rsa2048"))
    layer = _encrypt(EncryptConfig({params.PKCS11_PUBKEYS: [other, pem]}), monkeypatch, "sha1")
    assert len(_recipients(layer)) == 2
    config = f"module-directories:\n- /usr/lib/softhsm/\nallowed-module-paths:\n- {SOFTHSM_MODULE}\n".encode()
    dc = DecryptConfig({params.PKCS11_YAMLS: [hsm.token.key_file(KEY_LABEL)], params.PKCS11_CONFIG: [config]})
    empty_home = tmp_path / "home"
    empty_home.mkdir()
    env = {"OCICRYPT_CONFIG": "", "HOME": str(empty_home), "XDG_CONFIG_HOME": "", "SOFTHSM2_CONF": ""}
    result = run_decoder(layer.blob, encode_payload(Payload(dc, layer.descriptor)), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


def test_sha256_is_the_default_and_softhsm_rejection_is_explained(
    hsm: Hsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = _encrypt(EncryptConfig({params.PKCS11_PUBKEYS: [_token_public_pem(hsm)]}), monkeypatch, None)
    assert [r["hash"] for r in _recipients(layer)] == ["sha256"]
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "hsm-key.yaml").write_bytes(hsm.token.key_file(KEY_LABEL))
    result = run_decoder(layer.blob, _node_payload(layer), ["--decryption-keys-path", str(keys)], env=hsm.decoder_env())
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.startswith("call to DecryptLayer failed: "), result.stderr
    assert "PKCS11: No suitable private key found for decryption" in result.stderr
    assert "does not support RSA-OAEP with SHA256" in result.stderr, result.stderr
    assert "OCICRYPT_OAEP_HASHALG=sha1" in result.stderr
    assert f"pin-value={USER_PIN}" not in result.stderr and "pin-value=***" in result.stderr


def test_wrong_key_file_then_right_one(hsm: Hsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layer = _encrypt(EncryptConfig({params.PKCS11_PUBKEYS: [_token_public_pem(hsm)]}), monkeypatch, "sha1")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "a-missing.yaml").write_bytes(hsm.token.key_file("no-such-key"))
    (keys / "b-right.yaml").write_bytes(hsm.token.key_file(KEY_LABEL))
    result = run_decoder(layer.blob, _node_payload(layer), ["--decryption-keys-path", str(keys)], env=hsm.decoder_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


def test_wrong_pin_names_the_uri_with_the_pin_redacted(
    hsm: Hsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = _encrypt(EncryptConfig({params.PKCS11_PUBKEYS: [_token_public_pem(hsm)]}), monkeypatch, "sha1")
    secret_pin = "97531864"
    dc = DecryptConfig({params.PKCS11_YAMLS: [hsm.token.key_file(KEY_LABEL, pin=secret_pin)]})
    result = run_decoder(layer.blob, encode_payload(Payload(dc, layer.descriptor)), env=hsm.decoder_env())
    assert result.returncode == 1
    assert secret_pin not in result.stderr
    assert f"pkcs11:token={hsm.token.label};object={KEY_LABEL}?module-name=softhsm2&pin-value=***" in result.stderr
    assert "PinIncorrect" in result.stderr, result.stderr


def test_module_outside_allowed_paths_is_refused_before_loading(
    hsm: Hsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = _encrypt(EncryptConfig({params.PKCS11_PUBKEYS: [_token_public_pem(hsm)]}), monkeypatch, "sha1")
    rogue = tmp_path / "rogue" / "libsofthsm2.so"
    rogue.parent.mkdir()
    shutil.copy(os.path.realpath(SOFTHSM_MODULE), rogue)
    key_file = hsm.token.key_file(KEY_LABEL, module=f"module-path={rogue}")
    dc = DecryptConfig({params.PKCS11_YAMLS: [key_file]})
    # LD_DEBUG=files makes the dynamic loader report every library it opens, dlopen included.
    env = {**hsm.decoder_env(), "LD_DEBUG": "files"}
    result = run_decoder(layer.blob, encode_payload(Payload(dc, layer.descriptor)), env=env)
    assert result.returncode == 1
    assert f"module {rogue} is not allowed, so it was not loaded" in result.stderr, result.stderr[-3000:]
    assert SOFTHSM_MODULE in result.stderr  # the policy that refused it is named
    loaded = re.findall(r"file=(\S+)\s+\[\d+\];\s+dynamically loaded", result.stderr)
    assert loaded, "LD_DEBUG output was not captured"
    assert str(rogue) not in loaded


def test_missing_policy_is_explained(hsm: Hsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layer = _encrypt(EncryptConfig({params.PKCS11_PUBKEYS: [_token_public_pem(hsm)]}), monkeypatch, "sha1")
    home = tmp_path / "home"
    home.mkdir()
    dc = DecryptConfig({params.PKCS11_YAMLS: [hsm.token.key_file(KEY_LABEL)]})
    env = {"OCICRYPT_CONFIG": "", "HOME": str(home), "XDG_CONFIG_HOME": ""}
    result = run_decoder(layer.blob, encode_payload(Payload(dc, layer.descriptor)), env=env)
    assert result.returncode == 1
    if Path("/etc/ocicrypt.conf").exists():
        pytest.fail("/etc/ocicrypt.conf exists on this machine; this test needs it absent")
    assert "No ocicrypt config file was found" in result.stderr, result.stderr
    assert "/etc/ocicrypt.conf" in result.stderr


def _policy_route(route: str, tmp_path: Path, hsm: Hsm) -> dict[str, str]:
    """The decoder's environment for each place ocicrypt (1.3.1+) looks up the module policy, in its order."""
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    home.mkdir()
    xdg.mkdir()
    env = {"OCICRYPT_CONFIG": "", "XDG_CONFIG_HOME": "", "HOME": str(home), "SOFTHSM2_CONF": ""}
    if route == "internal":
        env["OCICRYPT_CONFIG"] = "internal"  # the distributions' module directories, all of them allowed
    elif route == "xdg":
        env["XDG_CONFIG_HOME"] = str(xdg)
        shutil.copy(hsm.policy, xdg / "ocicrypt.conf")
    elif route == "home":
        (home / ".config").mkdir()
        shutil.copy(hsm.policy, home / ".config" / "ocicrypt.conf")
    elif route == "missing-file-then-xdg":
        env["OCICRYPT_CONFIG"] = str(tmp_path / "no-such.conf")  # not an error: the next place is looked at
        env["XDG_CONFIG_HOME"] = str(xdg)
        shutil.copy(hsm.policy, xdg / "ocicrypt.conf")
    return env


@pytest.mark.parametrize("route", ["internal", "xdg", "home", "missing-file-then-xdg"])
def test_yaml_in_keys_dir_finds_its_module_policy_where_ocicrypt_looks(
    route: str, hsm: Hsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Since ocicrypt 1.3.1 a PKCS#11 YAML file in the keys directory is a PKCS#11 key (before, Go's
    decoder refused the whole directory: "Unknown decryption key type"), its policy looked up in
    OCICRYPT_CONFIG (``internal`` or a file), $XDG_CONFIG_HOME/ocicrypt.conf, $HOME/.config/ocicrypt.conf."""
    layer = _encrypt(EncryptConfig({params.PKCS11_PUBKEYS: [_token_public_pem(hsm)]}), monkeypatch, "sha1")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "hsm-key.yaml").write_bytes(hsm.token.key_file(KEY_LABEL))
    env = _policy_route(route, tmp_path, hsm)
    result = run_decoder(layer.blob, _node_payload(layer), ["--decryption-keys-path", str(keys)], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


def test_yaml_in_keys_dir_without_any_policy_says_no_ocicrypt_config_file_was_found(
    hsm: Hsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if Path("/etc/ocicrypt.conf").exists():
        pytest.fail("/etc/ocicrypt.conf exists on this machine; this test needs it absent")
    layer = _encrypt(EncryptConfig({params.PKCS11_PUBKEYS: [_token_public_pem(hsm)]}), monkeypatch, "sha1")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "hsm-key.yaml").write_bytes(hsm.token.key_file(KEY_LABEL))
    env = _policy_route("none", tmp_path, hsm)
    result = run_decoder(layer.blob, _node_payload(layer), ["--decryption-keys-path", str(keys)], env=env)
    assert result.returncode == 1 and result.stdout == b""
    assert result.stderr.startswith("call to DecryptLayer failed: "), result.stderr
    assert "No ocicrypt config file was found" in result.stderr, result.stderr
    assert f"pin-value={USER_PIN}" not in result.stderr


def test_yaml_in_keys_dir_without_a_policy_does_not_stop_a_jwe_layer(
    hsm: Hsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unlike ocicrypt, which reads the policy while sorting the keys and so fails every pull when none
    is found, the policy is looked up only when a PKCS#11 key is used: other layers still decrypt."""
    key = new_key("rsa2048")
    layer = _encrypt(EncryptConfig({params.PUBKEYS: [public_pem(key)]}), monkeypatch, None)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "a-hsm-key.yaml").write_bytes(hsm.token.key_file(KEY_LABEL))
    (keys / "b-node.pem").write_bytes(private_pem(key))
    env = _policy_route("none", tmp_path, hsm)
    result = run_decoder(layer.blob, _node_payload(layer), ["--decryption-keys-path", str(keys)], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext
