"""The error types of the ocicrypt library.

Every failure an operator can cause (unusable keys, tampered layer, bad annotations) is raised as a
subclass of :class:`OcicryptError`. Its text is the user-facing diagnostic: it never contains key
material or passwords. The decoder and the tools print it after their own stage prefix.
"""

from __future__ import annotations


class OcicryptError(Exception):
    """Base class of every expected failure; ``str(err)`` is the diagnostic shown to operators."""


DecoderError = OcicryptError
"""Deprecated alias of :class:`OcicryptError`, the base error's former name; it goes in the next release."""


class KeysDirError(OcicryptError):
    """The ``--decryption-keys-path`` directory cannot be used at all."""


class PrivateKeyError(OcicryptError):
    """A private key could not be parsed, or its password is missing or wrong."""


class UnwrapError(OcicryptError):
    """A key wrapper could not recover the layer's private options."""


class LayerError(OcicryptError):
    """The layer's annotations, public options or media type are unusable."""


class IntegrityError(OcicryptError):
    """The encrypted stream failed authentication or could not be read or written."""


class MissingBackendError(OcicryptError):
    """An optional backend (a Python package or a program) needed for a scheme is not installed."""


class WrapError(OcicryptError):
    """A layer key could not be wrapped for a recipient (encryption side)."""


class FileTooLargeError(OcicryptError):
    """A file holds more bytes than any genuine one of its kind (see :func:`read_bounded`)."""


class LimitError(UnwrapError):
    """A layer asked for more work than any genuine image needs (too many wrapped keys or key trials)."""
