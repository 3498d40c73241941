"""PKCS#11 (HSM) key wrapping (``org.opencontainers.image.enc.keys.pkcs11``), on python-pkcs11.

The annotation element is JSON: ``{"version":0,"recipients":[{"version":0,"blob":"<b64>",
"hash":"sha256"}, ...]}``; each blob is the private options RSA-OAEP encrypted (MGF1 with the same
hash, empty label) to one recipient. An absent or empty ``hash`` means SHA-1 (old writers).

Private keys are YAML key files (``pkcs11-yamls``)::

    pkcs11:
      uri: pkcs11:token=t;object=k?pin-value=1234&module-name=softhsm2
    module:
      env:
        SOFTHSM2_CONF: /etc/softhsm2.conf

The module a URI names is checked against the module policy (:mod:`ctd_decoder.ocicrypt.keywrap.pkcs11.policy`)
before it is loaded; ``module.env`` is set only while the module is in use and then restored.
Messages name each key by its URI with the PIN replaced by ``***``.

Wrapping (encrypt side) takes RSA public keys from ``pkcs11-pubkeys`` (PEM or DER) and from
``pkcs11-yamls`` (the public key object is read from the token) and encrypts in software, with
SHA-256 unless ``OCICRYPT_OAEP_HASHALG=sha1`` (SoftHSM2 only decrypts SHA-1 OAEP).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ... import config as params
from ... import scope
from ...config import DecryptConfig, EncryptConfig
from ...errors import MissingBackendError, OcicryptError, UnwrapError, WrapError
from ...gojson import member
from ...spec import OAEP_HASH_ENV
from ..base import KeyWrapperBase, explain_attempts
from .environment import scoped_environment
from .policy import Pkcs11Config, config_for
from .uri import Pkcs11Uri, Pkcs11UriError, parse

DEFAULT_WRAP_HASH = "sha256"
SUPPORTED_HASHES = ("sha1", "sha256")


class Pkcs11Error(UnwrapError):
    """One PKCS#11 key could not be used; the text is safe to show (no PIN)."""


@dataclass
class KeyFile:
    """A parsed PKCS#11 key file: the key's URI and the module's environment."""

    uri: Pkcs11Uri
    env: dict[str, str] = field(default_factory=dict)


def parse_key_file(data: bytes) -> KeyFile:
    """Parse an ocicrypt PKCS#11 YAML key file."""
    import yaml

    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError:
        raise Pkcs11UriError("Could not unmarshal pkcs11 keyfile: invalid YAML") from None
    if not isinstance(document, dict) or not isinstance(document.get("pkcs11"), dict):
        raise Pkcs11UriError("Could not unmarshal pkcs11 keyfile: no pkcs11 mapping")
    uri = document["pkcs11"].get("uri")
    if not isinstance(uri, str):
        raise Pkcs11UriError("Could not unmarshal pkcs11 keyfile: pkcs11.uri is not a string")
    module = document.get("module") or {}
    env = module.get("env") if isinstance(module, dict) else None
    if env is not None and not isinstance(env, dict):
        raise Pkcs11UriError("Could not unmarshal pkcs11 keyfile: module.env is not a mapping")
    return KeyFile(parse(uri), {str(name): str(value) for name, value in (env or {}).items()})


def _import_pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError:
        raise MissingBackendError(
            "PKCS11: python-pkcs11 is not installed (pip install 'ctd-decoder[pkcs11]')"
        ) from None
    return pkcs11


def _load_library(module: str) -> Any:
    """Load (dlopen) and initialize the PKCS#11 module file ``module``."""
    return _import_pkcs11().lib(module)


def _describe_error(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _open_session(lib: Any, uri: Pkcs11Uri, pin: str | None) -> Any:
    """Open a session on the slot the URI names (slot-id, else the first matching token that logs in)."""
    pkcs11 = _import_pkcs11()
    user_pin = pin or None
    slot_id = uri.slot_id()
    slots = lib.get_slots(token_present=True)
    if slot_id is not None:
        for slot in slots:
            if slot.slot_id == slot_id:
                return _login(slot.get_token(), user_pin, f"slot {slot_id}")
        raise Pkcs11Error(f"no slot with slot-id {slot_id} holds a token")
    label = uri.text("token")
    if label is None:
        raise Pkcs11Error("Missing 'token' attribute since 'slot-id' was not given")
    reasons: list[str] = []
    for slot in slots:
        try:
            token = slot.get_token()
        except pkcs11.PKCS11Error:
            continue
        if token.label != label:
            continue
        try:
            return _login(token, user_pin, f"token {label!r} in slot {slot.slot_id}")
        except Pkcs11Error as err:
            reasons.append(str(err))
    if not reasons:
        raise Pkcs11Error(f"no token labelled {label!r} (slots with a token: {len(slots)})")
    raise Pkcs11Error("Could not create session to any slot and/or log in: " + "; ".join(reasons))


def _login(token: Any, user_pin: str | None, where: str) -> Any:
    pkcs11 = _import_pkcs11()
    try:
        return token.open(user_pin=user_pin)
    except pkcs11.PKCS11Error as err:
        action = "log in to" if user_pin else "open a session on"
        raise Pkcs11Error(f"could not {action} {where}: {_describe_error(err)}") from None


@contextlib.contextmanager
def hsm_session(key: KeyFile, config: Pkcs11Config, private: bool) -> Iterator[Any]:
    """Yield a logged-in session for ``key``: policy check, then module load, under ``module.env``."""
    if private and not key.uri.has_pin():
        raise Pkcs11Error("Missing PIN for private key operation")
    module = key.uri.find_module(config)
    pin = key.uri.pin()
    pkcs11 = _import_pkcs11()
    with scoped_environment(key.env):
        try:
            lib = _load_library(module)
        except pkcs11.PKCS11Error as err:
            raise Pkcs11Error(f"could not load and initialize module {module}: {_describe_error(err)}") from None
        try:
            session = _open_session(lib, key.uri, pin)
            try:
                yield session
            finally:
                with contextlib.suppress(pkcs11.PKCS11Error):
                    session.close()
        finally:
            with contextlib.suppress(pkcs11.PKCS11Error):
                lib.finalize()


def _find_key(session: Any, uri: Pkcs11Uri, private: bool) -> Any:
    pkcs11 = _import_pkcs11()
    key_id, label = uri.key_selector()
    object_class = pkcs11.ObjectClass.PRIVATE_KEY if private else pkcs11.ObjectClass.PUBLIC_KEY
    template: dict[Any, Any] = {pkcs11.Attribute.CLASS: object_class}
    described = []
    if label:
        template[pkcs11.Attribute.LABEL] = label
        described.append(f"label {label!r}")
    if key_id:
        template[pkcs11.Attribute.ID] = key_id
        described.append(f"id {key_id.hex()}")
    kind = "private" if private else "public"
    try:
        found = list(session.get_objects(template))
    except pkcs11.PKCS11Error as err:
        raise Pkcs11Error(f"could not search the token: {_describe_error(err)}") from None
    if not found:
        raise Pkcs11Error(f"Could not find any {kind} key object with {' and '.join(described)}")
    if len(found) > 1:
        raise Pkcs11Error(f"There are too many (={len(found)}) {kind} keys with {' and '.join(described)}")
    return found[0]


def _mechanism_param(hash_name: str) -> tuple[Any, Any, None]:
    pkcs11 = _import_pkcs11()
    if hash_name == "sha256":
        return (pkcs11.Mechanism.SHA256, pkcs11.MGF.SHA256, None)
    return (pkcs11.Mechanism.SHA_1, pkcs11.MGF.SHA1, None)


def _hsm_decrypt(private_key: Any, ciphertext: bytes, hash_name: str) -> bytes:
    """RSA-OAEP decrypt on the token; raise Pkcs11Error explaining why not."""
    pkcs11 = _import_pkcs11()
    try:
        plaintext: bytes = private_key.decrypt(
            ciphertext, mechanism=pkcs11.Mechanism.RSA_PKCS_OAEP, mechanism_param=_mechanism_param(hash_name)
        )
    except (pkcs11.ArgumentsBad, pkcs11.MechanismInvalid, pkcs11.MechanismParamInvalid) as err:
        raise Pkcs11Error(
            f"the token does not support RSA-OAEP with {hash_name.upper()} ({_describe_error(err)}); SoftHSM2 "
            f"only decrypts OAEP with SHA-1: encrypt for it with {OAEP_HASH_ENV}=sha1"
        ) from None
    except pkcs11.PKCS11Error as err:
        raise Pkcs11Error(f"the key is not a recipient ({_describe_error(err)})") from None
    return plaintext


@dataclass
class _Recipient:
    number: int
    blob: bytes
    hash_name: str


def _parse_blob(wrapped: bytes) -> tuple[list[_Recipient], list[str]]:
    """Return the usable recipients of a wrapped-key JSON blob and notes on the skipped ones."""
    try:
        document = json.loads(wrapped)
    except (ValueError, UnicodeDecodeError) as err:
        raise UnwrapError(f"Could not parse Pkcs11Blob: {err}") from None
    except RecursionError:
        raise UnwrapError("Could not parse Pkcs11Blob: nested too deeply") from None
    if not isinstance(document, dict):
        raise UnwrapError("Could not parse Pkcs11Blob: not a JSON object")
    version = member(document, "version") or 0
    if version != 0:
        raise UnwrapError(f"Found Pkcs11Blob with version {str(version)[:40]} but maximum supported version is 0.")
    entries = member(document, "recipients") or []
    if not isinstance(entries, list):
        raise UnwrapError("Could not parse Pkcs11Blob: recipients is not a list")
    scope.check_recipients(len(entries), "the Pkcs11Blob")
    recipients: list[_Recipient] = []
    notes: list[str] = []
    for number, entry in enumerate(entries, start=1):
        recipient = _parse_recipient(number, entry, notes)
        if recipient is not None:
            recipients.append(recipient)
    return recipients, notes


def _parse_recipient(number: int, entry: Any, notes: list[str]) -> _Recipient | None:
    if not isinstance(entry, dict):
        raise UnwrapError(f"Could not parse Pkcs11Blob: recipient #{number} is not a JSON object")
    version = member(entry, "version") or 0
    if version != 0:
        raise UnwrapError(f"Found Pkcs11Recipient with version {str(version)[:40]} but maximum supported version is 0.")
    hash_name = member(entry, "hash") or "sha1"
    if hash_name not in SUPPORTED_HASHES:
        notes.append(f"recipient #{number}: Unsupported hash algorithm '{str(hash_name)[:40]}' for decryption")
        return None
    try:
        blob = base64.b64decode(str(member(entry, "blob") or ""), validate=True)
    except (binascii.Error, ValueError):
        blob = b""
    if not blob:
        notes.append(f"recipient #{number}: Base64 decoding failed or empty blob")
        return None
    return _Recipient(number, blob, hash_name)


def _try_key(key: KeyFile, config: Pkcs11Config, recipients: list[_Recipient]) -> bytes:
    """Open ``key``'s token once and try every recipient; raise Pkcs11Error if none opens."""
    with hsm_session(key, config, private=True) as session:
        private_key = _find_key(session, key.uri, private=True)
        reasons = []
        for recipient in recipients:
            scope.spend(scope.TOKEN_OPERATION, "a PKCS#11 decryption")
            try:
                return _hsm_decrypt(private_key, recipient.blob, recipient.hash_name)
            except Pkcs11Error as err:
                reasons.append(f"recipient #{recipient.number} (OAEP {recipient.hash_name}): {err}")
    raise Pkcs11Error("; ".join(reasons))


class Pkcs11KeyWrapper(KeyWrapperBase):
    """The ``pkcs11`` scheme; its key files live in ``pkcs11-yamls``."""

    scheme = "pkcs11"
    key_parameter = params.PKCS11_YAMLS

    def unwrap_key(self, dc: DecryptConfig, wrapped: bytes) -> bytes:
        """Try every key file against every recipient of the blob."""
        key_files = dc.keys_of(params.PKCS11_YAMLS)
        if not key_files:
            raise UnwrapError("No private keys found for PKCS11 decryption")
        recipients, attempts = _parse_blob(wrapped)
        if not recipients:
            raise UnwrapError(explain_attempts("PKCS11: the blob has no usable recipients", attempts))
        config = config_for(dc.keys_of(params.PKCS11_CONFIG))
        for number, data in enumerate(key_files, start=1):
            try:
                key = parse_key_file(data)
            except OcicryptError as err:
                attempts.append(f"pkcs11 key file #{number}: {err}")
                continue
            try:
                return _try_key(key, config, recipients)
            except OcicryptError as err:
                attempts.append(f"{key.uri.redacted()} : {err}")
        raise UnwrapError(explain_attempts("PKCS11: No suitable private key found for decryption", attempts))

    def wrap_keys(self, ec: EncryptConfig, opts: bytes) -> bytes | None:
        """RSA-OAEP encrypt ``opts`` to every PKCS#11 recipient of ``ec``."""
        pems, yamls = ec.get(params.PKCS11_PUBKEYS), ec.get(params.PKCS11_YAMLS)
        if not pems and not yamls:
            return None
        hash_name = wrap_hash()
        try:
            public_keys = [_load_public_key(data) for data in pems]
            if yamls:
                config = config_for(ec.get(params.PKCS11_CONFIG))
                public_keys += [token_public_key(parse_key_file(data), config) for data in yamls]
        except WrapError:
            raise
        except OcicryptError as err:
            raise WrapError(f"PKCS11: {err}") from None
        recipients = [
            {"version": 0, "blob": base64.b64encode(_oaep_encrypt(key, opts, hash_name)).decode(), "hash": hash_name}
            for key in public_keys
        ]
        return json.dumps({"version": 0, "recipients": recipients}, separators=(",", ":")).encode()


def wrap_hash() -> str:
    """Return the OAEP hash for wrapping: ``sha256`` unless ``OCICRYPT_OAEP_HASHALG`` says otherwise."""
    value = os.environ.get(OAEP_HASH_ENV, "").lower() or DEFAULT_WRAP_HASH
    if value not in SUPPORTED_HASHES:
        raise WrapError(f"PKCS11: Unsupported OAEP hash '{value}' in {OAEP_HASH_ENV} (use sha1 or sha256)")
    return value


def _oaep_encrypt(public_key: Any, data: bytes, hash_name: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    digest: hashes.HashAlgorithm = hashes.SHA256() if hash_name == "sha256" else hashes.SHA1()  # noqa: S303
    ciphertext: bytes = public_key.encrypt(data, padding.OAEP(padding.MGF1(digest), digest, None))
    return ciphertext


def _load_public_key(data: bytes) -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ... import keyload, keys

    block = keys.first_pem_block(data)
    try:
        key: Any = keyload.load_der_public_key(data) if block is None else keyload.load_pem_public_key(block[1])
    except (ValueError, TypeError) as err:
        raise WrapError(f"PKCS11: could not parse public key: {str(err).splitlines()[0]}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise WrapError("PKCS11: only RSA public keys can be recipients")
    return key


def token_public_key(key: KeyFile, config: Pkcs11Config) -> Any:
    """Read the RSA public key object a key file names from its token."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    pkcs11 = _import_pkcs11()
    try:
        with hsm_session(key, config, private=False) as session:
            public = _find_key(session, key.uri, private=False)
            modulus = public[pkcs11.Attribute.MODULUS]
            exponent = public[pkcs11.Attribute.PUBLIC_EXPONENT]
    except pkcs11.PKCS11Error as err:
        raise WrapError(f"PKCS11: {key.uri.redacted()} : {_describe_error(err)}") from None
    except OcicryptError as err:
        raise WrapError(f"PKCS11: {key.uri.redacted()} : {err}") from None
    return rsa.RSAPublicNumbers(int.from_bytes(exponent, "big"), int.from_bytes(modulus, "big")).public_key()


WRAPPER = Pkcs11KeyWrapper()


def locate_private_key(key: KeyFile, config: Pkcs11Config) -> str:
    """Load the key's module, log in and find its private key object, without using it; return the module.

    Raises :class:`Pkcs11Error` (or another UnwrapError) saying what is wrong, never the PIN.
    """
    module = key.uri.find_module(config)
    with hsm_session(key, config, private=True) as session:
        _find_key(session, key.uri, private=True)
    return module


def describe_recipients(wrapped: bytes) -> list[str]:
    """Describe each recipient of a wrapped key by its OAEP hash (ocicrypt records no key URI)."""
    try:
        recipients, notes = _parse_blob(wrapped)
    except UnwrapError as err:
        return [f"unreadable PKCS#11 blob: {err}"]
    return [f"RSA-OAEP-{r.hash_name.upper()} recipient #{r.number}" for r in recipients] + notes
