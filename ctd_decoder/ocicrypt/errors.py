"""The error types of ctd-decoder.

Every failure an operator can cause (bad payload, unusable keys, tampered layer) is raised as a
subclass of :class:`DecoderError`. Its text is the user-facing diagnostic: it never contains key
material or passwords. The CLI prints it after the stage prefix the Go decoder uses.
"""

from __future__ import annotations


class DecoderError(Exception):
    """Base class of every expected failure; ``str(err)`` is the diagnostic shown to operators."""


class PayloadError(DecoderError):
    """The fd-3 payload is missing, too large or not a valid ocicrypt payload."""


class KeysDirError(DecoderError):
    """The ``--decryption-keys-path`` directory cannot be used at all."""


class PrivateKeyError(DecoderError):
    """A private key could not be parsed, or its password is missing or wrong."""


class UnwrapError(DecoderError):
    """A key wrapper could not recover the layer's private options."""


class LayerError(DecoderError):
    """The layer's annotations, public options or media type are unusable."""


class IntegrityError(DecoderError):
    """The encrypted stream failed authentication or could not be read or written."""


class MissingBackendError(DecoderError):
    """An optional backend (a Python package or a program) needed for a scheme is not installed."""


class WrapError(DecoderError):
    """A layer key could not be wrapped for a recipient (encryption side)."""


class LimitError(UnwrapError):
    """A layer asked for more work than any genuine image needs (too many wrapped keys or key trials)."""
