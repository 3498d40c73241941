"""Key wrappers, registered by annotation scheme and imported only when a layer uses them.

``org.opencontainers.image.enc.keys.<scheme>`` names the scheme: ``jwe``, ``pkcs7``, ``pgp``,
``pkcs11`` or ``provider.<name>`` for a key provider configured in
``OCICRYPT_KEYPROVIDER_CONFIG``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .. import spec
from ..spec import ANNOTATION_PREFIX, PROVIDER_PREFIX, PUBOPTS_ANNOTATION
from .base import KeyWrapper

# Cheap, local schemes first; schemes that start processes or talk to devices and services last.
_BUILTIN: dict[str, str] = {
    "jwe": "ctd_decoder.ocicrypt.keywrap.jwe",
    "pkcs7": "ctd_decoder.ocicrypt.keywrap.pkcs7.wrapper",
    "pkcs11": "ctd_decoder.ocicrypt.keywrap.pkcs11.wrapper",
    "pgp": "ctd_decoder.ocicrypt.keywrap.pgp.wrapper",
}


# The encrypt-side parameters each built-in scheme wraps for; a scheme is imported only if one is set.
_RECIPIENT_PARAMETERS: dict[str, tuple[str, ...]] = {
    "jwe": (spec.PUBKEYS,),
    "pkcs7": (spec.X509S,),
    "pkcs11": (spec.PKCS11_PUBKEYS, spec.PKCS11_YAMLS),
    "pgp": (spec.GPG_RECIPIENTS,),
}


def schemes_for_recipients(parameter_names: set[str]) -> list[str]:
    """Return the schemes that wrap for the given encrypt-side parameters, providers included.

    A parameter that belongs to no built-in scheme names a key provider (``provider.<name>``).
    """
    known = {name for names in _RECIPIENT_PARAMETERS.values() for name in names}
    known.update((spec.GPG_PUBKEYRINGFILE, spec.PKCS11_CONFIG))
    schemes = [scheme for scheme, names in _RECIPIENT_PARAMETERS.items() if parameter_names & set(names)]
    schemes += [PROVIDER_PREFIX + name for name in sorted(parameter_names - known)]
    return schemes


def get_wrapper(scheme: str) -> KeyWrapper:
    """Return the wrapper for ``scheme`` (one that :func:`schemes_in` or :func:`schemes_for_recipients`
    returned), importing its module now; KeyError for another name.

    A ``provider.<name>`` scheme always has one; if ``<name>`` is not configured, it explains why.
    """
    if scheme.startswith(PROVIDER_PREFIX):
        from .provider.wrapper import provider_wrapper

        return provider_wrapper(scheme[len(PROVIDER_PREFIX) :])
    module = importlib.import_module(_BUILTIN[scheme])
    wrapper: KeyWrapper = module.WRAPPER
    return wrapper


def describe_recipients(scheme: str, wrapped: bytes) -> list[str]:
    """Describe the recipients one wrapped key is for, as far as the scheme records them.

    Key providers' wrapped keys are opaque: an empty list.
    """
    module_name = _BUILTIN.get(scheme)
    if module_name is None:
        return []
    describe: Callable[[bytes], list[str]] = importlib.import_module(module_name).describe_recipients
    return describe(wrapped)


def schemes_in(annotations: dict[str, str]) -> list[str]:
    """Return the schemes with a non-empty key annotation, built-ins in trial order, then providers."""
    present = {
        key[len(ANNOTATION_PREFIX) :]
        for key, value in annotations.items()
        if key.startswith(ANNOTATION_PREFIX) and value
    }
    ordered = [scheme for scheme in _BUILTIN if scheme in present]
    ordered += sorted(scheme for scheme in present if scheme.startswith(PROVIDER_PREFIX))
    return ordered


__all__ = [
    "ANNOTATION_PREFIX",
    "PROVIDER_PREFIX",
    "PUBOPTS_ANNOTATION",
    "KeyWrapper",
    "describe_recipients",
    "get_wrapper",
    "schemes_for_recipients",
    "schemes_in",
]
