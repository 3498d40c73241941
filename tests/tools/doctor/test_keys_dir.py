"""``ocicrypt doctor --keys-dir``: real keys directories made by the test, every key kind, a Kubernetes
Secret volume, bad modes and owners, and keys the decoder will skip. Keys are named only by type and
the fingerprint the decoder's diagnostics print; no key material or password reaches the output."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from jwcrypto import jwk
from support.doctor import DEBIAN_CONTAINERD, Doctor, run_doctor
from support.gpgkeys import GpgHome
from support.keygen import new_key, private_pem, public_pem
from support.pki import certificate, certificate_der, certificate_pem
from support.secrets import kubernetes_secret_volume

from ctd_decoder.ocicrypt.keys import describe_private_key

PASSWORD = b"correct horse battery staple"


def doctor_keys(tmp_path: Path, keys_dir: Path) -> Doctor:
    config = tmp_path / "containerd.toml"
    config.write_text("version = 2\n")
    return run_doctor("--containerd-config", config, "--containerd", DEBIAN_CONTAINERD, "--keys-dir", keys_dir)


def file_finding(result: Doctor, path: Path) -> dict[str, str]:
    found = [f for f in result.of("keys.file") if f["message"].startswith(f"{path}:")]
    assert len(found) == 1, (path, result.findings)
    return found[0]


def _secrets_in(text: str, pems: list[bytes]) -> list[str]:
    """Any base64 line of a PEM body (or the password) that shows up in ``text``."""
    leaked = [PASSWORD.decode()] if PASSWORD.decode() in text else []
    for pem in pems:
        for line in pem.decode().splitlines():
            if line and not line.startswith("-----") and len(line) > 20 and line in text:
                leaked.append(line)
    return leaked


@pytest.fixture
def gpg() -> object:
    home = GpgHome()
    yield home
    home.close()


def test_every_key_kind_is_described_by_type_and_fingerprint(tmp_path: Path, gpg: GpgHome) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    made = {
        "rsa2048-pkcs8.pem": (new_key("rsa2048"), "pkcs8"),
        "rsa3072-pkcs1.pem": (new_key("rsa3072"), "traditional"),
        "p256-sec1.pem": (new_key("p256"), "traditional"),
        "p384.der": (new_key("p384"), "der"),
    }
    secrets: list[bytes] = []
    for name, (key, fmt) in made.items():
        data = private_pem(key, fmt)
        (keys / name).write_bytes(data)
        secrets.append(data if fmt != "der" else base64.encodebytes(data))
    p521 = new_key("p521")
    (keys / "p521.jwk").write_text(jwk.JWK.from_pem(private_pem(p521)).export_private())
    encrypted = new_key("rsa2048")
    (keys / "protected.pem").write_bytes(private_pem(encrypted, password=PASSWORD))
    (keys / "protected.pem.password").write_bytes(PASSWORD + b"\n")
    pkcs7_key = new_key("rsa2048")
    (keys / "pkcs7.pem").write_bytes(private_pem(pkcs7_key))
    (keys / "pkcs7.crt").write_bytes(certificate_pem(certificate(pkcs7_key, "node")))
    (keys / "lonely.der.crt").write_bytes(certificate_der(certificate(new_key("p256"), "other")))
    gpg.generate("Node", "node@example.com")
    (keys / "node.gpg").write_bytes(gpg.export_secret("node@example.com"))
    fingerprint = gpg.fingerprint("node@example.com")
    for path in keys.iterdir():
        path.chmod(0o600)

    result = doctor_keys(tmp_path, keys)

    for name, (key, _) in made.items():
        assert file_finding(result, keys / name) == {
            "check": "keys.file",
            "status": "ok",
            "message": f"{keys / name}: loaded as private key, {describe_private_key(key)}",
            "fix": "",
        }
    assert describe_private_key(p521) in file_finding(result, keys / "p521.jwk")["message"]
    protected = file_finding(result, keys / "protected.pem")
    assert protected["status"] == "ok"
    assert describe_private_key(encrypted) in protected["message"] and "protected.pem.password" in protected["message"]
    assert "certificate for" in file_finding(result, keys / "pkcs7.crt")["message"]
    lonely = file_finding(result, keys / "lonely.der.crt")
    assert lonely["status"] == "warning" and "private key" in lonely["fix"]
    ring = file_finding(result, keys / "node.gpg")
    assert ring["status"] == "ok" and fingerprint in ring["message"]
    assert result.one("keys.dir", "ok")
    assert result.returncode == 0, result.errors()
    text = "\n".join(str(f) for f in result.findings)
    assert _secrets_in(text, secrets) == []


def test_files_the_decoder_skips_say_why_and_how_to_fix(tmp_path: Path, gpg: GpgHome) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "good.pem").write_bytes(private_pem(new_key("p256")))
    no_password = private_pem(new_key("rsa2048"), password=PASSWORD)
    (keys / "no-password.pem").write_bytes(no_password)
    (keys / "wrong-password.pem").write_bytes(private_pem(new_key("p256"), password=PASSWORD))
    (keys / "wrong-password.pem.password").write_bytes(b"not it\n")
    (keys / "orphan.pem.password").write_bytes(PASSWORD)
    (keys / "node.pub.pem").write_bytes(public_pem(new_key("rsa2048")))
    gpg.generate("Pub", "pub@example.com")
    (keys / "public.gpg").write_bytes(gpg.export_public("pub@example.com"))
    (keys / "corrupt.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    (keys / "README").write_bytes(b"node keys, see the runbook\n")
    (keys / "empty").write_bytes(b"")
    for path in keys.iterdir():
        path.chmod(0o600)

    result = doctor_keys(tmp_path, keys)

    assert result.returncode == 1
    missing = file_finding(result, keys / "no-password.pem")
    assert missing["status"] == "error" and "encrypted private key" in missing["message"]
    assert f"{keys / 'no-password.pem'}.password" in missing["fix"]
    wrong = file_finding(result, keys / "wrong-password.pem")
    assert wrong["status"] == "error" and "wrong-password.pem.password" in wrong["fix"]
    orphan = file_finding(result, keys / "orphan.pem.password")
    assert orphan["status"] == "warning" and "password file without its key" in orphan["message"]
    public = file_finding(result, keys / "node.pub.pem")
    assert public["status"] == "warning" and "public key cannot decrypt" in public["message"]
    pgp_public = file_finding(result, keys / "public.gpg")
    assert pgp_public["status"] == "warning" and "--export-secret-keys" in pgp_public["fix"]
    assert file_finding(result, keys / "corrupt.pem")["status"] == "warning"
    assert file_finding(result, keys / "README")["status"] == "ok"
    assert file_finding(result, keys / "empty")["status"] == "ok"
    assert file_finding(result, keys / "good.pem")["status"] == "ok"
    text = "\n".join(str(f) for f in result.findings)
    assert _secrets_in(text, [no_password]) == [] and "not it" not in text


def test_kubernetes_secret_volume_is_read_through_its_links(tmp_path: Path) -> None:
    keys = tmp_path / "secret"
    key = new_key("p384")
    kubernetes_secret_volume(keys, {"node.pem": private_pem(key), "node.pub.pem": public_pem(key)})
    for path in (keys / "..data").resolve().iterdir():
        path.chmod(0o644)  # the Secret volume's defaultMode when none is set

    result = doctor_keys(tmp_path, keys)

    assert "Kubernetes Secret volume" in result.one("keys.dir", "ok")["message"]
    loaded = [f for f in result.of("keys.file") if f["status"] == "ok"]
    assert [f["message"] for f in loaded] == [
        f"{keys / 'node.pem'}: loaded as private key, {describe_private_key(key)}"
    ]
    mode = [f for f in result.of("keys.file") if "mode 0644" in f["message"]]  # the loader's own warning
    assert len(mode) == 1 and "defaultMode: 0400" in mode[0]["fix"]
    assert not any("..data" in f["message"] or "..2026" in f["message"] for f in result.findings)


@pytest.mark.parametrize(
    ("dir_mode", "file_mode", "expected_fix"),
    [
        (0o755, 0o600, "chmod 700"),
        (0o777, 0o600, "chmod 700"),
        (0o700, 0o644, "chmod 600"),
        (0o700, 0o640, "chmod 600"),
    ],
)
def test_bad_modes_are_warnings_with_the_chmod(
    tmp_path: Path, dir_mode: int, file_mode: int, expected_fix: str
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "node.pem").write_bytes(private_pem(new_key("p256")))
    (keys / "node.pem").chmod(file_mode)
    keys.chmod(dir_mode)
    result = doctor_keys(tmp_path, keys)
    warnings = [f for f in result.findings if f["check"].startswith("keys.") and f["status"] == "warning"]
    assert len(warnings) == 1, result.findings
    assert expected_fix in warnings[0]["fix"]
    assert f"0{dir_mode if expected_fix == 'chmod 700' else file_mode:o}" in warnings[0]["message"]
    assert result.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_directory_owned_by_another_user(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "node.pem").write_bytes(private_pem(new_key("p256")))
    (keys / "node.pem").chmod(0o600)
    os.chown(keys, 1000, 1000)
    result = doctor_keys(tmp_path, keys)
    warning = result.one("keys.dir", "warning")
    assert "uid 1000" in warning["message"] and "chown root" in warning["fix"]


def test_missing_directory_one_key_file_and_neither(tmp_path: Path) -> None:
    missing = doctor_keys(tmp_path, tmp_path / "nowhere")
    assert "does not exist" in missing.one("keys.dir", "warning")["message"]
    assert missing.returncode == 0
    (tmp_path / "node.pem").write_bytes(private_pem(new_key("p256")))
    (tmp_path / "node.pem").chmod(0o600)
    one_file = doctor_keys(tmp_path, tmp_path / "node.pem")
    assert any("is one key file" in f["message"] for f in one_file.of("keys.dir") if f["status"] == "ok")
    assert one_file.returncode == 0
    assert "loaded as" in file_finding(one_file, tmp_path / "node.pem")["message"]
    os.mkfifo(tmp_path / "a-fifo")
    neither = doctor_keys(tmp_path, tmp_path / "a-fifo")
    assert "neither a directory nor a key file" in neither.one("keys.dir", "error")["message"]
    assert neither.returncode == 1


def test_directory_without_usable_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "README").write_bytes(b"keys go here\n")
    result = doctor_keys(tmp_path, keys)
    warning = [f for f in result.of("keys.dir") if f["status"] == "warning"]
    assert len(warning) == 1 and "no usable key" in warning[0]["message"]
