"""CTD_DECODER_VERIFY_DIGEST=1 on real skopeo images, whose recorded digest is of the layer skopeo read.

When skopeo gzips an uncompressed layer while encrypting it, ocicrypt records the digest of the source
descriptor, i.e. of the uncompressed tar, not of the gzip stream the layer decrypts to.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
from support.decoder import run_decoder
from support.keygen import write_key_pair
from support.oci import diff_ids, make_layout, read_layers, skopeo

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig
from ctd_decoder.ocicrypt.layer import decrypt_layer

VERIFY = {"CTD_DECODER_VERIFY_DIGEST": "1"}
LAYERS = [{"etc/motd": b"an uncompressed source layer\n" * 200}]


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("compress", [False, True], ids=["uncompressed-source", "gzip-source"])
def test_skopeo_encrypted_layer_passes_digest_verification(compress: bool, tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS, compress=compress)
    private, public, _ = write_key_pair(tmp_path, "key", "rsa2048")
    source, target = f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1"
    skopeo("copy", "-q", "--encryption-key", f"jwe:{public}", source, target)
    [original], [layer] = read_layers(tmp_path / "plain"), read_layers(tmp_path / "enc")
    assert layer.descriptor["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"
    dc = DecryptConfig({params.PRIVKEYS: [private.read_bytes()], params.PRIVKEYS_PASSWORDS: [None]})
    recorded = decrypt_layer(dc, layer.ocicrypt_descriptor()).digest
    assert recorded == original.descriptor["digest"], "skopeo records the digest of the blob it read"
    result = run_decoder(layer.blob, encode_payload(Payload(dc, layer.ocicrypt_descriptor())), env=VERIFY)
    assert result.returncode == 0, result.stderr
    assert _sha256(gzip.decompress(result.stdout)) == diff_ids(tmp_path / "plain")[0]
    if not compress:  # the case that used to fail: the stream is skopeo's gzip, the digest is of the tar
        assert _sha256(result.stdout) != recorded
