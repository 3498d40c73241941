"""The ``pkcs11`` scheme: the layer key wrapped with RSA-OAEP by a key held in a PKCS#11 token."""
