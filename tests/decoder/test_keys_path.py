"""The node key model through the executable: keys only in --decryption-keys-path, payload Parameters null."""

from __future__ import annotations

from pathlib import Path

from support.decoder import run_decoder
from support.keygen import new_key, private_pem, public_pem
from support.layers import jwe_layer
from support.secrets import kubernetes_secret_volume

from ctd_decoder.ocicrypt.config import DecryptConfig


def test_secret_volume_with_stray_files_still_decrypts(tmp_path: Path) -> None:
    layer = jwe_layer(b"layer bytes" * 5000)
    other = new_key("p256")
    kubernetes_secret_volume(
        tmp_path / "keys",
        {"README.md": b"# cluster keys\n", "other.pub": public_pem(other), "layer.pem": layer.private_key_pem},
    )
    result = run_decoder(
        layer.blob, layer.payload(dc=DecryptConfig()), ["--decryption-keys-path", str(tmp_path / "keys")]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


def test_failure_lists_the_skipped_files(tmp_path: Path) -> None:
    layer = jwe_layer(b"x" * 100)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "notes.txt").write_text("hello")
    (keys / "wrong.pem").write_bytes(private_pem(new_key("rsa2048")))
    result = run_decoder(layer.blob, layer.payload(dc=DecryptConfig()), ["--decryption-keys-path", str(keys)])
    assert result.returncode == 1
    assert result.stderr.startswith("call to DecryptLayer failed: no suitable key unwrapper found")
    assert "RSA-2048 key SHA256:" in result.stderr
    assert "notes.txt: not a private key" in result.stderr
    assert result.stdout == b""


def test_missing_keys_dir_does_not_block_payload_keys(tmp_path: Path) -> None:
    layer = jwe_layer(b"y" * 100)
    result = run_decoder(layer.blob, layer.payload(), ["--decryption-keys-path", str(tmp_path / "absent")])
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


def test_missing_keys_dir_and_no_payload_keys_says_so(tmp_path: Path) -> None:
    layer = jwe_layer(b"y" * 100)
    absent = tmp_path / "absent"
    result = run_decoder(layer.blob, layer.payload(dc=DecryptConfig()), ["--decryption-keys-path", str(absent)])
    assert result.returncode == 1
    assert result.stderr.startswith("call to DecryptLayer failed: missing private key needed for decryption")
    assert f"{absent} does not exist" in result.stderr
