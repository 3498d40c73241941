"""The keys directory: what Go accepts, plus Secret-volume symlinks and notes instead of failures."""

from __future__ import annotations

import os
from datetime import UTC
from pathlib import Path

import pytest
from support.keygen import new_key, private_pem, public_pem
from support.secrets import kubernetes_secret_volume

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt import keysdir
from ctd_decoder.ocicrypt.errors import KeysDirError
from ctd_decoder.ocicrypt.keysdir import load_keys_dir


def test_kubernetes_secret_volume_loads_each_key_once(tmp_path: Path) -> None:
    key = private_pem(new_key("rsa2048"))
    kubernetes_secret_volume(tmp_path, {"rsa.pem": key})
    loaded = load_keys_dir(tmp_path)
    assert loaded.config.get(params.PRIVKEYS) == [key]
    assert loaded.config.get(params.PRIVKEYS_PASSWORDS) == [None]
    assert loaded.notes == []


def test_symlinked_root_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "k.pem").write_bytes(private_pem(new_key("p256")))
    (tmp_path / "link").symlink_to(real)
    assert len(load_keys_dir(tmp_path / "link").config.get(params.PRIVKEYS)) == 1


def test_directory_symlink_loop_terminates(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)
    (tmp_path / "k.pem").write_bytes(private_pem(new_key("p256")))
    assert len(load_keys_dir(tmp_path).config.get(params.PRIVKEYS)) == 1


def test_fifo_in_keys_dir_is_skipped_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "trap")
    loaded = load_keys_dir(tmp_path)
    assert any("not a regular file" in note for note in loaded.notes)


def test_dangling_symlink_is_a_note(tmp_path: Path) -> None:
    (tmp_path / "gone.pem").symlink_to(tmp_path / "nowhere")
    assert any("gone.pem" in note for note in load_keys_dir(tmp_path).notes)


def test_unusable_files_are_skipped_with_a_note(tmp_path: Path) -> None:
    key = new_key("rsa2048")
    (tmp_path / "README").write_text("keys for the cluster\n")
    (tmp_path / "rsa.pub.pem").write_bytes(public_pem(key))
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "rsa.pem").write_bytes(private_pem(key))
    loaded = load_keys_dir(tmp_path)
    assert len(loaded.config.get(params.PRIVKEYS)) == 1
    assert len(loaded.notes) == 3
    assert all("skipping" in note for note in loaded.notes)


def test_sec1_ec_pem_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "ec.pem").write_bytes(private_pem(new_key("p256"), "traditional"))
    assert len(load_keys_dir(tmp_path).config.get(params.PRIVKEYS)) == 1


def test_encrypted_key_takes_its_password_from_a_sibling_file(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_bytes(private_pem(new_key("rsa2048"), "pkcs8", password=b"s3cret"))
    (tmp_path / "k.pem.password").write_bytes(b"s3cret\n")
    loaded = load_keys_dir(tmp_path)
    assert loaded.config.get(params.PRIVKEYS_PASSWORDS) == [b"s3cret"]
    assert loaded.notes == []


def test_encrypted_key_without_password_is_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_bytes(private_pem(new_key("rsa2048"), "traditional", password=b"pw"))
    loaded = load_keys_dir(tmp_path)
    assert loaded.config.get(params.PRIVKEYS) == []
    assert "k.pem.password" in loaded.notes[0]
    assert "pw" not in " ".join(loaded.notes).replace("password", "")


def test_wrong_sibling_password_is_a_note_without_the_password(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_bytes(private_pem(new_key("rsa2048"), "pkcs8", password=b"right-one"))
    (tmp_path / "k.pem.password").write_bytes(b"wrong-one")
    loaded = load_keys_dir(tmp_path)
    assert loaded.config.get(params.PRIVKEYS) == []
    assert "Wrong password" in loaded.notes[0] and "wrong-one" not in loaded.notes[0]


def test_certificates_and_lexical_order(tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = new_key("rsa2048")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder(name, name, key.public_key(), 7, now, now + timedelta(days=1)).sign(  # type: ignore[arg-type]
            key, hashes.SHA256()
        )  # type: ignore[arg-type]
    )
    (tmp_path / "b.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "a.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.pem").write_bytes(private_pem(key))
    loaded = load_keys_dir(tmp_path)
    assert [c[:1] for c in loaded.config.get(params.X509S)] == [b"\x30", b"-"]
    assert len(loaded.config.get(params.PRIVKEYS)) == 1


def test_one_key_file_as_root_is_loaded_with_its_password_file(tmp_path: Path) -> None:
    key = private_pem(new_key("p256"), "pkcs8", password=b"pw")
    (tmp_path / "k.pem").write_bytes(key)
    (tmp_path / "k.pem.password").write_text("pw\n")
    loaded = load_keys_dir(tmp_path / "k.pem")
    assert loaded.config.get(params.PRIVKEYS) == [key]
    assert loaded.config.get(params.PRIVKEYS_PASSWORDS) == [b"pw"]


def test_root_that_is_neither_file_nor_directory_is_an_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f")
    with pytest.raises(KeysDirError, match="neither a directory nor a key file"):
        load_keys_dir(tmp_path / "f")


def test_public_keys_are_named_as_such(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = new_key("rsa2048")
    public = key.public_key()
    (tmp_path / "a.pem").write_bytes(public_pem(key))
    (tmp_path / "b.der").write_bytes(
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "c.pub").write_bytes(
        public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b" me@host\n"
    )
    (tmp_path / "d.jwk").write_text('{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}')
    notes = load_keys_dir(tmp_path).notes
    kinds = ["a PEM PUBLIC KEY", "a DER public key", "an OpenSSH public key", "a JWK public key"]
    assert notes == [
        f"skipping {tmp_path / name}: {kind}, which cannot decrypt; put the private key here"
        for name, kind in zip(["a.pem", "b.der", "c.pub", "d.jwk"], kinds, strict=True)
    ]


def test_key_material_open_to_others_is_warned_about_and_public_material_is_not(tmp_path: Path) -> None:
    key = new_key("p256")
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "k.pem").write_bytes(private_pem(key))
    (keys / "k.pem").chmod(0o640)
    (keys / "k.pub").write_bytes(public_pem(key))
    (keys / "k.pub").chmod(0o644)
    loaded = load_keys_dir(keys)
    assert loaded.notes == [
        f"skipping {keys / 'k.pub'}: a PEM PUBLIC KEY, which cannot decrypt; put the private key here"
    ]
    assert [str(warning) for warning in loaded.warnings] == [
        f"key file {keys / 'k.pem'} is open to group or others (mode 0640): chmod 600 it"
    ]
    (keys / "k.pem").chmod(0o600)
    assert load_keys_dir(keys).warnings == []


def test_oversized_file_is_skipped_unread(tmp_path: Path) -> None:
    (tmp_path / "huge").write_bytes(b"\0" * (4 * 1024 * 1024 + 1))
    assert "larger than" in load_keys_dir(tmp_path).notes[0]


def test_secret_volume_modes_are_the_kubelets_so_the_fix_is_its_default_mode(tmp_path: Path) -> None:
    kubernetes_secret_volume(tmp_path / "keys", {"k.pem": private_pem(new_key("p256"))})
    (tmp_path / "keys").chmod(0o1777)
    (tmp_path / "keys" / "k.pem").resolve().chmod(0o644)
    loaded = load_keys_dir(tmp_path / "keys")
    assert loaded.secret_volume
    (warning,) = loaded.warnings
    assert (warning.subject, warning.path, warning.fix) == (
        keysdir.EXPOSED_KEY,
        str(tmp_path / "keys" / "k.pem"),
        "set defaultMode: 0400 on the Secret volume",
    )
    assert [str(warning)] == [
        f"key file {tmp_path / 'keys' / 'k.pem'} is open to group or others (mode 0644): "
        "set defaultMode: 0400 on the Secret volume"
    ]
