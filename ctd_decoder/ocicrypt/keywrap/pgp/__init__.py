"""OpenPGP (``org.opencontainers.image.enc.keys.pgp``): the wrapper, the GnuPG homes it runs gpg in, the packet reader.

Nothing is imported here: the decoder sweeps leftover GnuPG homes (:mod:`.scratch`) and the keys
directory reads packets (:mod:`.packets`) on every run, without paying for the wrapper.
"""
