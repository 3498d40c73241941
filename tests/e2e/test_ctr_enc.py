"""The ``ctr-enc ... --key`` user path, driven by the project's own client against Debian's containerd 1.6.20.

``ctr-enc images import --key`` and ``ctr-enc run --key`` (imgcrypt) do three things to containerd: content
Write of the image's blobs, image Create, and per layer a snapshot Prepare and a Diff ``Apply`` whose
``payloads`` map holds one payload (the private keys and the layer descriptor) under both ocicrypt processor
IDs, then Commit. :func:`e2e.node.import_with_payload` does exactly that over gRPC; the keys directory of the
node stays empty, so only the payload can decrypt. Debian's ``ctr run`` then starts a container from the
unpacked snapshots with runc (a runnable busybox image, Debian's busybox-static).

The images come from the Go toolchain where it can make them (skopeo 1.9.3, Go ocicrypt 1.0.3: JWE, PKCS#7,
OpenPGP; it always gzips before encrypting) and from our own library otherwise (PKCS#11 and key providers,
which skopeo 1.9.3 does not know, and uncompressed ``tar+encrypted`` layers, which no Go tool in Debian
writes: ``buildah push --disable-compression --encryption-key`` also gives ``tar+gzip+encrypted``). The
other way, our library encrypts and the project's Go reference decoder (Debian's ocicrypt 1.0.3) is the
stream processor. About 3 s per case.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support.e2e.client import ContainerdClient
from support.e2e.daemons import Containerd, require_tool
from support.e2e.fixtures import ON_CONTAINERD_1
from support.e2e.node import Image, Node, import_with_payload, verify_pulled
from support.e2e.schemes import Recipient
from support.oci import LAYER_GZIP, LAYER_TAR, encrypt_layout, make_layout, skopeo
from support.references import fastest_go_reference

from ctd_decoder.ocicrypt.keywrap.pkcs11.environment import scoped_environment
from ctd_decoder.tools.key_arguments import encrypt_config

BUSYBOX = Path("/bin/busybox")
GREETING = b"decrypted by ctd-decoder, unpacked with the keys in the payload\n"
EXECUTABLES = frozenset({"bin/busybox", "bin/echo", "bin/cat"})
# skopeo (Go ocicrypt 1.0.3) encrypts these; the others only our library can encrypt.
GO_ENCRYPTED_SCHEMES = ["jwe-rsa2048", "jwe-p256", "pkcs7-rsa", "pgp-rsa"]
LIBRARY_ENCRYPTED_SCHEMES = ["pkcs11-softhsm", "provider-cmd"]
OUR_ENCRYPTOR_SCHEMES = ["jwe-rsa2048", "jwe-p384", "pkcs7-rsa", "pgp-rsa"]

pytestmark = ON_CONTAINERD_1


def busybox_layers() -> list[dict[str, bytes]]:
    """Two layers: busybox under the names runc executes (it dispatches on argv[0]), and a data file."""
    if not BUSYBOX.is_file():
        pytest.fail("/bin/busybox is missing: apt-get install -y busybox-static (tests/run-all.sh installs it)")
    busybox = BUSYBOX.read_bytes()
    return [{"bin/busybox": busybox, "bin/echo": busybox, "bin/cat": busybox}, {"etc/greeting": GREETING}]


@pytest.fixture
def runc() -> None:
    try:
        require_tool("runc", "runc")
        require_tool("containerd-shim-runc-v2", "containerd")
    except RuntimeError as err:
        pytest.fail(str(err))


def ctr_run(containerd: Containerd, namespace: str, image: str, *command: str) -> str:
    """Debian's ``ctr run --rm``: a container on the already unpacked snapshots (ctr sends no payload,
    so it would fail if it had to unpack anything itself)."""
    ctr = require_tool("ctr", "containerd")
    container = f"e2e-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [ctr, "-a", containerd.socket, "-n", namespace, "run", "--rm", image, container, *command],
        capture_output=True,
        timeout=180,
    )
    assert result.returncode == 0, f"ctr run {image} {command} failed: {result.stderr.decode(errors='replace')}"
    return result.stdout.decode(errors="replace")


def library_encrypt(plain: Path, encrypted: Path, recipient: Recipient) -> None:
    """Encrypt every layer of ``plain`` to ``recipient`` with our library (the ``ocicrypt`` recipients syntax)."""
    gpg_home = recipient.encrypt_env.get("GNUPGHOME")
    ec = recipient.encrypt_config or encrypt_config(recipient.encryption_keys, gpg_homedir=gpg_home)
    with scoped_environment(recipient.encrypt_env):
        encrypt_layout(plain, encrypted, ec)


def encrypted_busybox(workdir: Path, recipient: Recipient, compress: bool, by_go: bool) -> tuple[Path, Path]:
    """The busybox image, plain and encrypted to ``recipient`` by skopeo (``by_go``) or by our library."""
    plain, encrypted = workdir / "plain", workdir / "enc"
    make_layout(plain, busybox_layers(), compress=compress, executables=EXECUTABLES)
    if by_go:
        keys = [arg for key in recipient.encryption_keys for arg in ("--encryption-key", key)]
        env = {**os.environ, **recipient.encrypt_env}
        skopeo("copy", "-q", *keys, f"oci:{plain}:v1", f"oci:{encrypted}:v1", env=env)
    else:
        library_encrypt(plain, encrypted, recipient)
    return plain, encrypted


def unpack_and_run(node: Node, recipient: Recipient, plain: Path, encrypted: Path, media_type: str) -> None:
    """Import and unpack ``encrypted`` with the recipient's keys in the payload, check containerd's records
    and the unpacked files, then run busybox from it."""
    namespace, name = f"e2e-{uuid.uuid4().hex[:8]}", "example.test/enc:v1"
    client: ContainerdClient = node.client(namespace)
    applied = import_with_payload(client, encrypted, name, recipient.decrypt_config())
    image = Image(name, plain, busybox_layers())
    assert applied == image.diff_ids
    verify_pulled(client, image)
    node.assert_decoded_once_per_layer(image)
    assert {call.media_type for call in node.decoder_calls()} == {media_type + "+encrypted"}
    assert ctr_run(node.containerd, namespace, name, "cat", "/etc/greeting").encode() == GREETING
    assert ctr_run(node.containerd, namespace, name, "echo", "hello") == "hello\n"


@pytest.mark.parametrize("scheme", GO_ENCRYPTED_SCHEMES + LIBRARY_ENCRYPTED_SCHEMES)
def test_keys_in_the_payload_unpack_and_run_through_our_decoder(
    scheme: str,
    runc: None,
    pip_decoder: str,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    """tar+gzip+encrypted layers (processor ``...decoder.v1.tar.gzip``), encrypted by skopeo where it can."""
    recipient = recipients(scheme)
    plain, encrypted = encrypted_busybox(tmp_path, recipient, compress=True, by_go=scheme in GO_ENCRYPTED_SCHEMES)
    node = nodes(pip_decoder, None, {}, recipient.decoder_env)  # empty keys directory: only the payload decrypts
    unpack_and_run(node, recipient, plain, encrypted, LAYER_GZIP)


@pytest.mark.parametrize("scheme", ["jwe-p256", "pkcs7-rsa", "pgp-rsa", "pkcs11-softhsm"])
def test_keys_in_the_payload_unpack_uncompressed_layers_through_our_decoder(
    scheme: str,
    runc: None,
    pip_decoder: str,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    """tar+encrypted layers go to the other processor ID, ``...decoder.v1.tar``, with the same payload."""
    recipient = recipients(scheme)
    plain, encrypted = encrypted_busybox(tmp_path, recipient, compress=False, by_go=False)
    node = nodes(pip_decoder, None, {}, recipient.decoder_env)
    unpack_and_run(node, recipient, plain, encrypted, LAYER_TAR)


@pytest.mark.parametrize("scheme", OUR_ENCRYPTOR_SCHEMES)
def test_our_encrypted_image_unpacks_and_runs_through_the_go_reference(
    scheme: str,
    runc: None,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    """Our library encrypts; the Go reference decoder (ocicrypt 1.0.3) is the stream processor."""
    reference = fastest_go_reference()
    recipient = recipients(scheme)
    plain, encrypted = encrypted_busybox(tmp_path, recipient, compress=True, by_go=False)
    node = nodes(str(reference.path), None)
    unpack_and_run(node, recipient, plain, encrypted, LAYER_GZIP)
