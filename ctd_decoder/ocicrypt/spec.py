"""The names the ocicrypt format and its configuration give things, each defined once.

Media types of (encrypted) image layers, the annotations an encrypted layer carries, the parameter
names of decrypt and encrypt configs and the environment variables the library reads. Nothing here
imports anything: the tools, the decoder and the library's own modules all take these names from here.
"""

from __future__ import annotations

# Media types (OCI image-spec; ocicrypt appends ENCRYPTED_SUFFIX to the type of the plain layer).
LAYER_MEDIA_TYPE_PREFIX = "application/vnd.oci.image.layer.v1."
TAR = LAYER_MEDIA_TYPE_PREFIX + "tar"
TAR_GZIP = LAYER_MEDIA_TYPE_PREFIX + "tar+gzip"
TAR_ZSTD = LAYER_MEDIA_TYPE_PREFIX + "tar+zstd"
ENCRYPTED_SUFFIX = "+encrypted"
TAR_ENCRYPTED = TAR + ENCRYPTED_SUFFIX
TAR_GZIP_ENCRYPTED = TAR_GZIP + ENCRYPTED_SUFFIX
TAR_ZSTD_ENCRYPTED = TAR_ZSTD + ENCRYPTED_SUFFIX
ENCRYPTED_MEDIA_TYPES = frozenset((TAR_GZIP_ENCRYPTED, TAR_ZSTD_ENCRYPTED, TAR_ENCRYPTED))

# Annotations of an encrypted layer: one wrapped-keys annotation per scheme, and the public options.
ENC_ANNOTATION_PREFIX = "org.opencontainers.image.enc."
ANNOTATION_PREFIX = ENC_ANNOTATION_PREFIX + "keys."  # + jwe, pkcs7, pgp, pkcs11 or provider.<name>
PUBOPTS_ANNOTATION = ENC_ANNOTATION_PREFIX + "pubopts"
PROVIDER_PREFIX = "provider."  # a key provider's scheme is provider.<name>

# Parameters of a decrypt config (private keys and their passwords, certificates, key files) ...
PRIVKEYS = "privkeys"
PRIVKEYS_PASSWORDS = "privkeys-passwords"
X509S = "x509s"
GPG_PRIVATEKEYS = "gpg-privatekeys"
GPG_PRIVATEKEYS_PASSWORDS = "gpg-privatekeys-passwords"
PKCS11_YAMLS = "pkcs11-yamls"
PKCS11_CONFIG = "pkcs11-config"
# ... and of an encrypt config (recipients). A key provider's parameter is its name.
PUBKEYS = "pubkeys"
GPG_RECIPIENTS = "gpg-recipients"
GPG_PUBKEYRINGFILE = "gpg-pubkeyringfile"
PKCS11_PUBKEYS = "pkcs11-pubkeys"

# Environment variables the library reads (the first three are Go ocicrypt's, the provider ones ours).
KEYPROVIDER_CONFIG_ENV = "OCICRYPT_KEYPROVIDER_CONFIG"
OCICRYPT_CONFIG_ENV = "OCICRYPT_CONFIG"
OAEP_HASH_ENV = "OCICRYPT_OAEP_HASHALG"
PROVIDER_TIMEOUT_ENV = "CTD_DECODER_PROVIDER_TIMEOUT"
PROVIDER_SEND_ALL_ENV = "CTD_DECODER_PROVIDER_SEND_ALL_KEYS"
# The ones that change how a layer's key is unwrapped (OAEP_HASH_ENV only changes wrapping).
UNWRAP_ENVIRONMENT = (KEYPROVIDER_CONFIG_ENV, OCICRYPT_CONFIG_ENV, PROVIDER_TIMEOUT_ENV, PROVIDER_SEND_ALL_ENV)
