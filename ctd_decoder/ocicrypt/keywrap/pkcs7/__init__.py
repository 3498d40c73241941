"""The ``pkcs7`` scheme: the layer key in a CMS EnvelopedData for X.509 recipients."""
