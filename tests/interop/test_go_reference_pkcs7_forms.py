"""A PKCS#7 key whose ``encryptedContent`` is ``[0]`` primitive (what ``openssl cms`` writes, and ocicrypt
from 1.2.1 on): ours and the Go reference decrypt it.

Debian builds ocicrypt 1.0.3 on fullsailor/pkcs7 (a 2021 snapshot) where upstream 1.0.3 to 1.2.0 use
mozilla's fork at 432b235, whose reader takes a primitive ``[0]`` for an empty one ("PKCS7: No suitable
private key found" from the imgcrypt 1.1.x decoders). So on this input the reference is the newer
decoders' (1.2.1 on) verdict, not imgcrypt 1.1.x's; docs/differential-testing.md lists it.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from support.decoder import run_decoder
from support.keygen import new_key, private_pem
from support.layers import encrypted_layer
from support.oci import make_tar
from support.pki import certificate, certificate_pem
from support.references import TOOLCHAINS, go_reference

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.layer import unwrap_private_options

PKCS7 = "org.opencontainers.image.enc.keys.pkcs7"
CONTEXT_0_PRIMITIVE = 0x80


def _openssl_wrapped(private_options: bytes, cert_pem: bytes, directory: Path) -> bytes:
    (directory / "opts.json").write_bytes(private_options)
    (directory / "cert.pem").write_bytes(cert_pem)
    command = [
        "openssl",
        "cms",
        "-encrypt",
        "-binary",
        "-aes256",
        "-outform",
        "DER",
        "-in",
        str(directory / "opts.json"),
    ]
    return subprocess.run([*command, str(directory / "cert.pem")], capture_output=True, check=True, timeout=60).stdout


def _encrypted_content_tag(blob: bytes) -> int:
    """The tag byte after the last AlgorithmIdentifier: find the encryptedContent of a short-form DER blob."""
    content_type_data = bytes.fromhex("06092a864886f70d010701")  # OID 1.2.840.113549.1.7.1 (data)
    start = blob.rindex(content_type_data) + len(content_type_data)
    algorithm = start + 2 + blob[start + 1]  # the content-encryption AlgorithmIdentifier SEQUENCE (short length)
    return blob[algorithm]


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_primitive_encrypted_content_decrypts_with_ours_and_the_reference(toolchain: str, tmp_path: Path) -> None:
    key = new_key("rsa2048")
    cert = certificate_pem(certificate(key, "node"))
    plaintext = make_tar({"etc/motd": b"openssl-wrapped key\n" * 40})
    layer = encrypted_layer(EncryptConfig({params.X509S: [cert]}), plaintext)
    dc = DecryptConfig({params.PRIVKEYS: [private_pem(key)], params.PRIVKEYS_PASSWORDS: [None], params.X509S: [cert]})
    wrapped = _openssl_wrapped(unwrap_private_options(dc, layer.descriptor)[0], cert, tmp_path)
    assert _encrypted_content_tag(wrapped) == CONTEXT_0_PRIMITIVE
    annotations = {**layer.descriptor.annotations, PKCS7: base64.b64encode(wrapped).decode()}
    original = layer.descriptor
    payload = layer.payload(dc, Descriptor(original.media_type, original.digest, original.size, annotations))
    for command in (None, [str(go_reference(toolchain).path)]):
        result = run_decoder(layer.blob, payload, command=command)
        assert (result.returncode, result.stderr) == (0, ""), command
        assert result.stdout == plaintext
