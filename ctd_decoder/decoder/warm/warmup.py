"""OpenSSL's first-use work, done once in the server instead of once per layer.

OpenSSL 3 looks each algorithm up (and sets up its key decoders) the first time a process uses it,
and caches the result: a fresh child paid that on every layer, about a third of a small JWE layer's
decoding. The server runs each operation a JWE layer needs once, on material it makes and drops
here (never a key of anyone's: it still reads no key, payload or layer), so that every child starts
with those caches filled, in pages it shares with the server. Each child still draws its own random
bytes (OpenSSL reseeds after a fork: see :mod:`.pool`).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa


def warm_up(rsa_key: rsa.RSAPrivateKey) -> None:
    """Load ``rsa_key`` (throwaway) and an EC key from PEM, unwrap with RSA-OAEP (SHA-1, SHA-256) and ECDH,
    and run AES-GCM, AES-CTR and HMAC-SHA256 once, each on throwaway material."""
    from cryptography.hazmat.primitives import hashes, hmac
    from cryptography.hazmat.primitives._serialization import Encoding, NoEncryption, PrivateFormat
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ...ocicrypt import keyload

    def reloaded(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> object:
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        return keyload.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)

    rsa_loaded = reloaded(rsa_key)
    assert isinstance(rsa_loaded, rsa.RSAPrivateKey)
    for digest in (hashes.SHA1(), hashes.SHA256()):  # noqa: S303 (RSA-OAEP is defined with SHA-1)
        oaep = padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
        rsa_loaded.decrypt(rsa_key.public_key().encrypt(bytes(32), oaep), oaep)
    ec_loaded = reloaded(ec.generate_private_key(ec.SECP256R1()))
    assert isinstance(ec_loaded, ec.EllipticCurvePrivateKey)
    ec_loaded.exchange(ec.ECDH(), ec.generate_private_key(ec.SECP256R1()).public_key())
    gcm = AESGCM(bytes(32))
    gcm.decrypt(bytes(12), gcm.encrypt(bytes(12), bytes(32), b""), b"")
    Cipher(algorithms.AES(bytes(32)), modes.CTR(bytes(16))).decryptor().update(bytes(64))
    mac = hmac.HMAC(bytes(32), hashes.SHA256())
    mac.update(bytes(64))
    mac.finalize()
