"""The ``ctr-enc ... --key`` user path for real, with imgcrypt's ``ctr-enc`` 1.1.7, containerd 1.6.20 and runc.

A runnable busybox image (Debian's busybox-static) is encrypted by ``ctr-enc images encrypt`` on one
containerd, exported, then imported with ``--key`` into a fresh containerd (its own root: no snapshot
of the plaintext exists there) whose stream processors are our decoder, and run with
``ctr-enc run --rm --key ... echo hello``. The other way, our own library encrypts and the Go decoder
(imgcrypt 1.1.7) is the stream processor. Costs about 5 s per case.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.binaries import CTR_ENC, GO_DECODER_1, require_binary
from support.oci import encrypt_layout, make_layout, skopeo

from ctd_decoder.tools.key_arguments import encrypt_config

from .daemons import CONTAINERD_1, Containerd, require_tool
from .node import Image, Node
from .schemes import Recipient, ctr_enc_arguments, ctr_enc_env

BUSYBOX = Path("/bin/busybox")
GREETING = b"decrypted by ctd-decoder, run by ctr-enc\n"
SCHEMES = ["jwe-rsa2048", "jwe-p256", "pkcs7-rsa", "pgp-rsa", "pkcs11-softhsm", "provider-cmd"]
OUR_ENCRYPTOR_SCHEMES = ["jwe-rsa2048", "jwe-p384", "pkcs7-rsa"]
PKCS11_NOTE = "Note: pkcs11 support is currently experimental\n"  # ctr-enc prints it on stdout

pytestmark = pytest.mark.parametrize("containerd_version", [CONTAINERD_1], ids=lambda v: f"containerd-{v}")


def busybox_layers() -> list[dict[str, bytes]]:
    """Two layers: busybox under the names runc executes (it dispatches on argv[0]), and a data file."""
    if not BUSYBOX.is_file():
        pytest.fail("/bin/busybox is missing: apt-get install -y busybox-static (tests/run-all.sh installs it)")
    busybox = BUSYBOX.read_bytes()
    return [{"bin/busybox": busybox, "bin/echo": busybox, "bin/cat": busybox}, {"etc/greeting": GREETING}]


EXECUTABLES = frozenset({"bin/busybox", "bin/echo", "bin/cat"})


@dataclass
class CtrEnc:
    """``ctr-enc`` against one containerd, in one namespace, with the environment the keys need."""

    exe: str
    containerd: Containerd
    env: dict[str, str]
    namespace: str = "e2e"

    def __call__(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run(
            [self.exe, "-a", self.containerd.socket, "-n", self.namespace, *args],
            capture_output=True,
            env={**os.environ, **self.env},
            timeout=timeout,
        )
        stderr = result.stderr.decode(errors="replace")
        assert result.returncode == 0, f"ctr-enc {' '.join(args)} failed ({result.returncode}): {stderr}"
        return result.stdout.decode(errors="replace").replace(PKCS11_NOTE, "")


def archive(layout: Path, path: Path, name: str) -> Path:
    """An oci-archive of ``layout`` whose image is called ``name`` when ctr imports it."""
    skopeo("copy", "-q", f"oci:{layout}:v1", f"oci-archive:{path}:{name}")
    return path


def run_hello(ctr: CtrEnc, ref: str, keys: list[str]) -> str:
    container = f"e2e-{uuid.uuid4().hex[:8]}"
    return ctr("run", "--rm", *keys, ref, container, "cat", "/etc/greeting")


@pytest.fixture
def ctr_enc_exe() -> str:
    require_tool("runc", "runc")
    require_tool("containerd-shim-runc-v2", "containerd")
    return str(require_binary(CTR_ENC))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_ctr_enc_encrypted_image_runs_through_our_decoder(
    scheme: str,
    pip_decoder: str,
    ctr_enc_exe: str,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    recipient = recipients(scheme)
    encrypt_to, decrypt_with = ctr_enc_arguments(recipient, tmp_path / "keys")
    env = ctr_enc_env(recipient)
    plain = tmp_path / "plain"
    make_layout(plain, busybox_layers(), executables=EXECUTABLES)

    builder = nodes(pip_decoder, None)
    build = CtrEnc(ctr_enc_exe, builder.containerd, env)
    build("images", "import", "--no-unpack", str(archive(plain, tmp_path / "plain.tar", "example.test/plain:v1")))
    recipients_args = [arg for value in encrypt_to for arg in ("--recipient", value)]
    if scheme == "pgp-rsa":
        recipients_args += ["--gpg-homedir", recipient.encrypt_env["GNUPGHOME"]]
    build("images", "encrypt", *recipients_args, "example.test/plain:v1", "example.test/enc:v1")
    exported = tmp_path / "enc.tar"
    build("images", "export", str(exported), "example.test/enc:v1")

    node = nodes(pip_decoder, None, {}, recipient.decoder_env)  # empty keys directory: only --key decrypts
    ctr = CtrEnc(ctr_enc_exe, node.containerd, env)
    ctr("images", "import", *decrypt_with, str(exported))
    node.assert_decoded_once_per_layer(Image("example.test/enc:v1", plain, busybox_layers()))
    assert run_hello(ctr, "example.test/enc:v1", decrypt_with).encode() == GREETING
    output = ctr("run", "--rm", *decrypt_with, "example.test/enc:v1", f"e2e-{uuid.uuid4().hex[:8]}", "echo", "hello")
    assert output == "hello\n"


@pytest.mark.parametrize("scheme", OUR_ENCRYPTOR_SCHEMES)
def test_our_encrypted_image_runs_through_ctr_enc_and_the_go_decoder(
    scheme: str,
    ctr_enc_exe: str,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    go_decoder = str(require_binary(GO_DECODER_1))
    recipient = recipients(scheme)
    _, decrypt_with = ctr_enc_arguments(recipient, tmp_path / "keys")
    plain, encrypted = tmp_path / "plain", tmp_path / "enc"
    make_layout(plain, busybox_layers(), executables=EXECUTABLES)
    encrypt_layout(plain, encrypted, encrypt_config(recipient.encryption_keys))
    node = nodes(go_decoder, None)  # the Go decoder rejects unknown files: its keys directory stays empty
    ctr = CtrEnc(ctr_enc_exe, node.containerd, ctr_enc_env(recipient))
    ctr("images", "import", *decrypt_with, str(archive(encrypted, tmp_path / "enc.tar", "example.test/ours:v1")))
    node.assert_decoded_once_per_layer(Image("example.test/ours:v1", plain, busybox_layers()))
    output = ctr("run", "--rm", *decrypt_with, "example.test/ours:v1", f"e2e-{uuid.uuid4().hex[:8]}", "echo", "hello")
    assert output == "hello\n"
