"""ctd-decoder: containerd's image-layer decryption stream processor, and the ocicrypt library under it."""

__version__ = "0.1.0"
