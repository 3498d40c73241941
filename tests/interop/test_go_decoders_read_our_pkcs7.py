"""Our PKCS#7-wrapped layers open with both Go decoder generations (imgcrypt 1.1.7 and 2.0.2).

imgcrypt 1.1.x (ocicrypt <= 1.2.0, what containerd 1.6 nodes run) reads ``encryptedContent`` only as
``[0]`` constructed; 2.x reads both forms. Each case runs two Go decoders once (well under a second each).
"""

from __future__ import annotations

import pytest
from support.binaries import GO_DECODER_1, GO_DECODER_2, require_binary
from support.decoder import run_decoder
from support.keygen import new_key, private_pem
from support.layers import encrypted_layer
from support.oci import make_tar
from support.pki import certificate, certificate_pem

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig


def _node_keys(key_pem: bytes, cert: bytes) -> DecryptConfig:
    return DecryptConfig({params.PRIVKEYS: [key_pem], params.PRIVKEYS_PASSWORDS: [None], params.X509S: [cert]})


@pytest.mark.parametrize("go_decoder", [GO_DECODER_1, GO_DECODER_2])
def test_go_decoder_decrypts_our_pkcs7_layer(go_decoder: str) -> None:
    exe = require_binary(go_decoder)
    keys = [new_key("rsa2048") for _ in range(2)]
    certs = [certificate_pem(certificate(key, f"node-{number}")) for number, key in enumerate(keys)]
    plaintext = make_tar({"etc/motd": b"hello from a PKCS#7 layer\n" * 50})
    layer = encrypted_layer(EncryptConfig({params.X509S: certs}), plaintext)
    for key, cert in zip(keys, certs, strict=True):  # every recipient opens it, each with its own key only
        result = run_decoder(layer.blob, layer.payload(_node_keys(private_pem(key), cert)), command=[str(exe)])
        assert result.returncode == 0, result.stderr
        assert result.stdout == plaintext


@pytest.mark.parametrize("go_decoder", [GO_DECODER_1, GO_DECODER_2])
def test_go_decoder_refuses_our_pkcs7_layer_with_an_unrelated_key(go_decoder: str) -> None:
    exe = require_binary(go_decoder)
    recipient, stranger = new_key("rsa2048"), new_key("rsa2048")
    cert = certificate_pem(certificate(recipient, "node"))
    layer = encrypted_layer(EncryptConfig({params.X509S: [cert]}), make_tar({"a": b"secret"}))
    result = run_decoder(layer.blob, layer.payload(_node_keys(private_pem(stranger), cert)), command=[str(exe)])
    assert result.returncode != 0 and result.stdout == b""
    assert "PKCS7: No suitable private key found" in result.stderr
