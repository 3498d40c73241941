"""The ocicrypt library: encrypted OCI layers, their key wrappers and block ciphers.

Usable from any Python program; it knows nothing of containerd or of the decoder's fd 3. The public
entry points are :func:`ctd_decoder.ocicrypt.layer.decrypt_layer` and
:func:`ctd_decoder.ocicrypt.layer.encrypt_layer`.
"""
