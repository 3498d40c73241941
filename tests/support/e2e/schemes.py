"""Key-wrapping schemes for the end-to-end tests: how to encrypt an image to a recipient and which
files (keys directory) or parameters (fd-3 payload) decrypt it again.

Adding a scheme = one function returning a :class:`Recipient` and one line in :data:`SCHEMES`.
skopeo (Go ocicrypt 1.0.3) encrypts wherever it can (jwe, pkcs7, pgp); for pkcs11, which it does not
know, our own library encrypts (``encrypt_config``).
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig, Parameters
from support.keygen import new_key, private_pem, public_pem
from support.tempdirs import short_tempdir

from .daemons import require_tool


@dataclass
class Recipient:
    """One recipient of an encrypted image."""

    scheme: str
    key_files: dict[str, bytes]  # what goes into the node's keys directory
    parameters: Parameters  # what ctr-enc --key would put into the payload's DecryptConfig
    encryption_keys: list[str] = field(default_factory=list)  # skopeo --encryption-key values
    encrypt_config: EncryptConfig | None = None  # our library encrypts instead of skopeo
    encrypt_env: dict[str, str] = field(default_factory=dict)  # env for skopeo or our library
    decoder_env: dict[str, str] = field(default_factory=dict)  # env of the stream processor
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def decrypt_config(self) -> DecryptConfig:
        return DecryptConfig({name: list(values) for name, values in self.parameters.items()})

    def cleanup(self) -> None:
        for cleanup in reversed(self.cleanups):
            cleanup()


def jwe(kind: str) -> Callable[[Path], Recipient]:
    """A JWE recipient with a fresh ``kind`` key (``rsa2048``, ``p256``, ``p384``)."""

    def make(directory: Path) -> Recipient:
        directory.mkdir(parents=True, exist_ok=True)
        key = new_key(kind)
        public = directory / f"jwe-{kind}.pub.pem"
        public.write_bytes(public_pem(key))
        private = private_pem(key)
        return Recipient(
            scheme="jwe",
            key_files={f"jwe-{kind}.pem": private},
            parameters={params.PRIVKEYS: [private], params.PRIVKEYS_PASSWORDS: [None]},
            encryption_keys=[f"jwe:{public}"],
        )

    return make


def self_signed_certificate(key: object, name: str) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def pkcs7(directory: Path) -> Recipient:
    """A PKCS#7 recipient: an RSA key and its self-signed certificate (both needed to decrypt)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = new_key("rsa2048")
    certificate = self_signed_certificate(key, "ctd-decoder e2e")
    (directory / "p7.crt.pem").write_bytes(certificate)
    private = private_pem(key)
    return Recipient(
        scheme="pkcs7",
        key_files={"p7.key.pem": private, "p7.crt.pem": certificate},
        parameters={params.PRIVKEYS: [private], params.PRIVKEYS_PASSWORDS: [None], params.X509S: [certificate]},
        encryption_keys=[f"pkcs7:{directory / 'p7.crt.pem'}"],
    )


def pgp(directory: Path) -> Recipient:
    """An OpenPGP recipient: a key made by gpg in a throw-away GNUPGHOME, exported in binary."""
    gpg = require_tool("gpg", "gnupg")
    home = short_tempdir("ctd-gpg-")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    uid = "ctd-decoder e2e <e2e@ctd-decoder.test>"

    def batch(*args: str, timeout: float = 120) -> bytes:
        command = [gpg, "--batch", "--pinentry-mode", "loopback", "--passphrase", "", *args]
        return subprocess.run(command, env=env, check=True, capture_output=True, timeout=timeout).stdout

    def cleanup() -> None:
        gpgconf = shutil.which("gpgconf")
        if gpgconf:
            subprocess.run([gpgconf, "--kill", "all"], env=env, capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)

    try:
        batch("--quick-gen-key", uid, "rsa2048", "sign", "never")
        fingerprint = _gpg_fingerprint(gpg, env, uid)
        batch("--quick-add-key", fingerprint, "rsa2048", "encr", "never")
        secret = batch("--export-secret-keys", fingerprint, timeout=60)
    except BaseException:
        cleanup()
        raise
    directory.mkdir(parents=True, exist_ok=True)
    return Recipient(
        scheme="pgp",
        key_files={"gpg-e2e.sec": secret},
        parameters={params.GPG_PRIVATEKEYS: [secret], params.GPG_PRIVATEKEYS_PASSWORDS: [None]},
        encryption_keys=["pgp:e2e@ctd-decoder.test"],
        encrypt_env={"GNUPGHOME": str(home)},
        cleanups=[cleanup],
    )


def _gpg_fingerprint(gpg: str, env: dict[str, str], uid: str) -> str:
    listing = subprocess.run(
        [gpg, "--batch", "--with-colons", "--list-keys", uid], env=env, check=True, capture_output=True, text=True
    ).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def pkcs11(directory: Path) -> Recipient:
    """A PKCS#11 recipient: an RSA key pair made on a fresh SoftHSM2 token.

    skopeo 1.9.3 cannot encrypt to PKCS#11, so our library wraps to the token's public key, with
    OAEP SHA-1 (SoftHSM 2.6 supports nothing else). The node gets the YAML key file in its keys
    directory and the module policy through ``OCICRYPT_CONFIG`` in the stream processor's env.
    """
    from support.softhsm import SOFTHSM_MODULE, make_token, policy_file

    require_tool("softhsm2-util", "softhsm2")
    require_tool("pkcs11-tool", "opensc")
    directory.mkdir(parents=True, exist_ok=True)
    token = make_token(directory / "hsm", "e2e")
    token.generate_rsa("e2e-key", "01")
    key_file = token.key_file("e2e-key")
    policy = policy_file(directory, [SOFTHSM_MODULE])
    config = f"module-directories:\n- {os.path.dirname(SOFTHSM_MODULE)}/\nallowed-module-paths:\n- {SOFTHSM_MODULE}\n"
    return Recipient(
        scheme="pkcs11",
        key_files={"hsm-key.yaml": key_file},
        parameters={params.PKCS11_YAMLS: [key_file], params.PKCS11_CONFIG: [config.encode()]},
        encrypt_config=EncryptConfig({params.PKCS11_PUBKEYS: [token.public_key_der("e2e-key")]}),
        encrypt_env={"OCICRYPT_OAEP_HASHALG": "sha1"},
        decoder_env={"OCICRYPT_CONFIG": str(policy), **token.env()},
    )


PROVIDER_NAME = "e2ekp"


def provider(kind: str) -> Callable[[Path], Recipient]:
    """A key provider (``cmd`` program or ``grpc`` server on 127.0.0.1) that wraps with a toy cipher.

    Our library wraps through the provider (skopeo 1.9.3 does not know providers); the decoder finds
    the provider through ``OCICRYPT_KEYPROVIDER_CONFIG`` in the stream processor's env, so the node
    needs no key files: the payload only names the provider (``ctr-enc --key provider:e2ekp``).
    """

    def make(directory: Path) -> Recipient:
        from support.providers import start_grpc_server, write_cmd_provider, write_grpc_config

        directory.mkdir(parents=True, exist_ok=True)
        cleanups: list[Callable[[], None]] = []
        if kind == "cmd":
            config, _ = write_cmd_provider(directory, PROVIDER_NAME, "ok")
        else:
            server = start_grpc_server(directory)
            cleanups.append(server.stop)
            config = write_grpc_config(directory, PROVIDER_NAME, server.target)
        env = {"OCICRYPT_KEYPROVIDER_CONFIG": str(config)}
        return Recipient(
            scheme=f"provider.{PROVIDER_NAME}",
            key_files={},
            parameters={PROVIDER_NAME: [b"Enabled"]},
            encrypt_config=EncryptConfig({PROVIDER_NAME: [b"Enabled"]}),
            encrypt_env=env,
            decoder_env=env,
            cleanups=cleanups,
        )

    return make


def recipient_values(recipient: Recipient, directory: Path) -> list[str]:
    """The ``--recipient`` values (``ocicrypt encrypt``, spelled as ctr-enc spells them) that encrypt to
    ``recipient``; a PKCS#11 recipient's public key is written under ``directory``."""
    if recipient.scheme == f"provider.{PROVIDER_NAME}":
        return [f"provider:{PROVIDER_NAME}"]
    if recipient.scheme == "pkcs11":
        assert recipient.encrypt_config is not None
        der = recipient.encrypt_config.parameters[params.PKCS11_PUBKEYS][0]
        assert der is not None
        directory.mkdir(parents=True, exist_ok=True)
        public = directory / "hsm-key.pub.pem"
        public.write_bytes(
            serialization.load_der_public_key(der).public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return [f"pkcs11:{public}"]
    return recipient.encryption_keys


SCHEMES: dict[str, Callable[[Path], Recipient]] = {
    "jwe-rsa2048": jwe("rsa2048"),
    "jwe-p256": jwe("p256"),
    "jwe-p384": jwe("p384"),
    "pkcs7-rsa": pkcs7,
    "pgp-rsa": pgp,
    "pkcs11-softhsm": pkcs11,
    "provider-cmd": provider("cmd"),
    "provider-grpc": provider("grpc"),
}
