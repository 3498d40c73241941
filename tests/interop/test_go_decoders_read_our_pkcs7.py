"""Our PKCS#7-wrapped layers open with the Go reference decoder (ocicrypt 1.0.3 on Debian's fullsailor/pkcs7),
built by both toolchains.

imgcrypt 1.1.x (ocicrypt <= 1.2.0, what containerd 1.6 nodes run) reads ``encryptedContent`` only as
``[0]`` constructed; 2.x reads both forms; our writer uses the constructed form, which the imgcrypt 1.1.7
and 2.0.2 decoders both opened when they were run here. Debian builds ocicrypt 1.0.3 on fullsailor/pkcs7
(upstream 1.0.3 uses mozilla's fork); its decrypt path is the same code, its BER reader parses indefinite
lengths properly where mozilla's searched for the last end-of-contents marker.
"""

from __future__ import annotations

import pytest
from support.decoder import run_decoder
from support.keygen import new_key, private_pem
from support.layers import encrypted_layer
from support.oci import make_tar
from support.pki import certificate, certificate_pem
from support.references import NO_USABLE_KEY_1_0_3, TOOLCHAINS, go_reference

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig


def _node_keys(key_pem: bytes, cert: bytes) -> DecryptConfig:
    return DecryptConfig({params.PRIVKEYS: [key_pem], params.PRIVKEYS_PASSWORDS: [None], params.X509S: [cert]})


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_go_reference_decrypts_our_pkcs7_layer(toolchain: str) -> None:
    exe = go_reference(toolchain).path
    keys = [new_key("rsa2048") for _ in range(2)]
    certs = [certificate_pem(certificate(key, f"node-{number}")) for number, key in enumerate(keys)]
    plaintext = make_tar({"etc/motd": b"hello from a PKCS#7 layer\n" * 50})
    layer = encrypted_layer(EncryptConfig({params.X509S: certs}), plaintext)
    for key, cert in zip(keys, certs, strict=True):  # every recipient opens it, each with its own key only
        result = run_decoder(layer.blob, layer.payload(_node_keys(private_pem(key), cert)), command=[str(exe)])
        assert result.returncode == 0, result.stderr
        assert result.stdout == plaintext


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_go_reference_refuses_our_pkcs7_layer_with_an_unrelated_key(toolchain: str) -> None:
    exe = go_reference(toolchain).path
    recipient, stranger = new_key("rsa2048"), new_key("rsa2048")
    cert = certificate_pem(certificate(recipient, "node"))
    layer = encrypted_layer(EncryptConfig({params.X509S: [cert]}), make_tar({"a": b"secret"}))
    result = run_decoder(layer.blob, layer.payload(_node_keys(private_pem(stranger), cert)), command=[str(exe)])
    assert result.returncode == 1 and result.stdout == b""
    # ocicrypt 1.0.3 gives no reason; the imgcrypt 1.1.7 and 2.0.2 decoders (ocicrypt 1.1.x, 1.2.x) added
    # "PKCS7: No suitable private key found for decryption" to the same sentence.
    assert result.stderr == f"call to DecryptLayer failed: {NO_USABLE_KEY_1_0_3}\n"
