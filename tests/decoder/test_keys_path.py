"""The node key model through the executable: keys only in --decryption-keys-path, payload Parameters null."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.decoder import Result, decoder_command, run_decoder
from support.gpgkeys import GpgHome
from support.keygen import new_key, private_pem, public_pem
from support.layers import EncryptedLayer, encrypted_layer, jwe_layer
from support.pki import certificate, certificate_pem
from support.references import TOOLCHAINS, go_reference
from support.secrets import kubernetes_secret_volume

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig


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


def test_key_after_5000_small_files_in_sub_directories_decrypts(tmp_path: Path) -> None:
    """The walk is bounded by time and bytes, not by a count of entries: the key, lexically after 5,000
    small non-key files in 50 sub-directories, is found (the Go decoders walk any number too)."""
    layer = jwe_layer(b"layer bytes" * 5000)
    keys = tmp_path / "keys"
    for directory in range(50):
        sub = keys / f"notes-{directory:02d}"
        sub.mkdir(parents=True)
        for number in range(100):
            (sub / f"note-{number:03d}.txt").write_text(f"note {directory}/{number}\n")
    (keys / "zz-node-key.pem").write_bytes(layer.private_key_pem)
    result = run_decoder(layer.blob, layer.payload(dc=DecryptConfig()), ["--decryption-keys-path", str(keys)])
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


def test_one_key_file_as_the_keys_path_decrypts_like_the_go_reference(tmp_path: Path) -> None:
    layer = jwe_layer(b"one key file" * 100)
    key_file = tmp_path / "layer.pem"
    key_file.write_bytes(layer.private_key_pem)
    args = ["--decryption-keys-path", str(key_file)]
    payload = layer.payload(dc=DecryptConfig())
    for command in [None, *([str(go_reference(toolchain).path)] for toolchain in TOOLCHAINS)]:
        result = run_decoder(layer.blob, payload, args, command=command)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout == layer.plaintext


@pytest.mark.parametrize(
    "spelling",
    [["--decryption-keys-path={keys}"], ["-decryption-keys-path", "{keys}"], ["--decryption-keys-path", "{keys}", "x"]],
    ids=["equals", "one-dash", "positional-ignored"],
)
def test_keys_path_spellings_decrypt_like_the_go_reference(spelling: list[str], tmp_path: Path) -> None:
    layer = jwe_layer(b"spelled" * 100)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "layer.pem").write_bytes(layer.private_key_pem)
    args = [word.format(keys=keys) for word in spelling]
    payload = layer.payload(dc=DecryptConfig())
    for command in [None, *([str(go_reference(toolchain).path)] for toolchain in TOOLCHAINS)]:
        result = run_decoder(layer.blob, payload, args, command=command)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout == layer.plaintext


def _node_decode(layer: EncryptedLayer, keys: Path, **kwargs: object) -> Result:
    """Decrypt with keys only in ``keys`` (the node key model)."""
    payload = layer.payload(dc=DecryptConfig())
    return run_decoder(layer.blob, payload, ["--decryption-keys-path", str(keys)], **kwargs)  # type: ignore[arg-type]


def test_public_key_in_the_keys_dir_is_called_a_public_key(tmp_path: Path) -> None:
    layer = jwe_layer(b"z" * 100)
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "layer.pub").write_bytes(public_pem(new_key("p256")))
    result = _node_decode(layer, keys)
    assert result.returncode == 1
    assert f"skipping {keys / 'layer.pub'}: a PEM PUBLIC KEY, which cannot decrypt; put the private key here" in (
        result.stderr
    )


def test_pkcs7_key_without_its_certificate_says_where_the_certificate_goes(tmp_path: Path) -> None:
    key = new_key("rsa2048")
    cert = certificate_pem(certificate(key))
    layer = encrypted_layer(EncryptConfig({params.X509S: [cert]}), b"pkcs7 layer" * 100)
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "p7.key.pem").write_bytes(private_pem(key))
    result = _node_decode(layer, keys)
    assert result.returncode == 1
    assert "pkcs7: no x509 certificates found needed for PKCS7 decryption: " in result.stderr
    assert "put the recipient's X.509 certificate (PEM or DER) into the keys directory beside its private key" in (
        result.stderr
    )
    (keys / "p7.crt.pem").write_bytes(cert)
    result = _node_decode(layer, keys)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


@pytest.fixture(scope="module")
def protected_pgp() -> Iterator[tuple[EncryptedLayer, bytes]]:
    """A layer for an OpenPGP key with passphrase PASSPHRASE, and that key's armored secret key ring."""
    home = GpgHome(cheap_s2k=True)
    try:
        home.generate("Node", "node@example.com", PASSPHRASE, curve=True)
        ring = home.export_secret("node@example.com", PASSPHRASE, armor=True)
        ec = EncryptConfig(
            {params.GPG_RECIPIENTS: [b"node@example.com"], params.GPG_PUBKEYRINGFILE: [home.export_public()]}
        )
        yield encrypted_layer(ec, b"pgp layer" * 100), ring
    finally:
        home.close()


PASSPHRASE = "node passphrase"


def test_protected_pgp_key_without_password_file_names_the_file_to_create(
    tmp_path: Path, protected_pgp: tuple[EncryptedLayer, bytes]
) -> None:
    layer, ring = protected_pgp
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "node.asc").write_bytes(ring)
    result = _node_decode(layer, keys)
    assert result.returncode == 1
    password_file = keys / "node.asc.password"
    assert f"passphrase-protected OpenPGP secret key and no node.asc.password file: create {password_file}" in (
        result.stderr
    )
    assert PASSPHRASE not in result.stderr
    password_file.write_text(PASSPHRASE + "\n")
    result = _node_decode(layer, keys)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext


NOBODY = 65534


def test_one_unreadable_key_file_is_a_note_not_the_end_of_every_pull(tmp_path: Path) -> None:
    layer = jwe_layer(b"readable key" * 100)
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    unreadable, closed = keys / "a-not-mine.pem", keys / "a-not-mine.d"
    unreadable.write_bytes(private_pem(new_key("p256")))
    closed.mkdir()
    (closed / "k.pem").write_bytes(private_pem(new_key("p256")))
    unreadable.chmod(0o000)
    closed.chmod(0o000)
    command = decoder_command()
    if os.geteuid() == 0:  # root reads everything: take away that privilege, as for files of another owner
        for path, mode in ((unreadable, 0o600), (closed, 0o700)):
            os.chown(path, NOBODY, NOBODY)
            path.chmod(mode)
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    (keys / "b-layer.pem").write_bytes(layer.private_key_pem)
    result = _node_decode(layer, keys, command=command)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext
    (keys / "b-layer.pem").unlink()
    result = _node_decode(layer, keys, command=command)
    assert result.returncode == 1
    assert result.stderr.startswith("call to DecryptLayer failed: missing private key needed for decryption")
    assert f"skipping {unreadable}: cannot read it: Permission denied" in result.stderr
    assert f"skipping {closed}: cannot list it: Permission denied" in result.stderr


def test_exposed_keys_get_a_note(tmp_path: Path) -> None:
    layer = jwe_layer(b"q" * 100)
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o755)
    keys.chmod(0o755)
    (keys / "other.pem").write_bytes(private_pem(new_key("p256")))
    (keys / "other.pem").chmod(0o644)
    result = _node_decode(layer, keys)
    assert result.returncode == 1
    assert f"keys directory {keys} is open to group or others (mode 0755): chmod 700 it" in result.stderr
    assert f"key file {keys / 'other.pem'} is open to group or others (mode 0644): chmod 600 it" in result.stderr
    if os.geteuid() == 0:
        os.chown(keys / "other.pem", NOBODY, NOBODY)
        result = _node_decode(layer, keys)
        assert f"key file {keys / 'other.pem'} is owned by uid {NOBODY}, not root: chown root it" in result.stderr
