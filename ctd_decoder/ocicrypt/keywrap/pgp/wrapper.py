"""OpenPGP key wrapping (``org.opencontainers.image.enc.keys.pgp``) through GnuPG.

The wrapped key is a binary OpenPGP message: one public-key encrypted session key packet per
recipient key, then integrity-protected encrypted data holding the private options as literal data.

Unwrapping imports each ``gpg-privatekeys`` entry (binary, or ASCII-armored as an improvement on
Go) into its own throw-away GNUPGHOME and asks ``gpg`` to decrypt with the password of the same
index in ``gpg-privatekeys-passwords`` (missing or None: no password; an empty password is treated
the same: python-gnupg cannot pass an empty one, and either way a protected key stays locked).
The first key ring that decrypts wins, as in Go. Each home (:mod:`.home`) is a short directory under /tmp (the
agent's socket path must fit in ``sun_path``), mode 0700, and on every exit path, SIGTERM and
SIGHUP included, its gpg children are killed, its gpg-agent is stopped with ``gpgconf --kill all``
and the directory is removed. Passwords reach gpg on its stdin pipe (``--passphrase-fd 0``),
never in argv or the environment. The message's packet headers are checked before any gpg runs,
and ``gnupg`` (python-gnupg) is imported only when a layer really needs this scheme.

Wrapping imports ``gpg-pubkeyringfile`` (or the recipients' keys exported from the user's own
GnuPG home) into a throw-away home, matches ``gpg-recipients`` exactly as Go does (user ID name or
e-mail; key IDs and fingerprints too) and writes a binary, uncompressed message.
"""

from __future__ import annotations

import contextlib
import email.utils
from dataclasses import dataclass, field
from typing import Any

from ... import config as params
from ... import scope
from ...config import DecryptConfig, EncryptConfig
from ...errors import UnwrapError, WrapError
from ..base import KeyWrapperBase, explain_attempts
from .home import GpgHome, gpg_class, programs, secret_fingerprints
from .packets import (
    SEIPD_TAG,
    PacketError,
    is_pgp_public_keyring,
    is_pgp_secret_keyring,
    message_recipients,
    session_key_packets,
)

_GPG_ERR_BAD_PASSPHRASE = 11
_GPG_ERR_NO_SECKEY = 17


def _key_id(value: int) -> str:
    """Format a key ID the way ocicrypt prints them: ``0x`` and lower-case hex."""
    return f"0x{value:x}"


@dataclass
class _Outcome:
    """What gpg's status lines say about one decryption attempt."""

    statuses: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, stderr: str) -> _Outcome:
        outcome = cls()
        for line in stderr.splitlines():
            if line.startswith("[GNUPG:] "):
                keyword, _, rest = line[9:].partition(" ")
                outcome.statuses.setdefault(keyword, []).append(rest)
        return outcome

    def has(self, keyword: str) -> bool:
        return keyword in self.statuses

    def succeeded(self) -> bool:
        return self.has("DECRYPTION_OKAY") and not (self.has("DECRYPTION_FAILED") or self.has("BADMDC"))

    def error_codes(self) -> set[int]:
        codes = set()
        for rest in self.statuses.get("ERROR", []):
            words = rest.split()
            if len(words) >= 2 and words[0] == "pkdecrypt_failed" and words[1].isdigit():
                codes.add(int(words[1]) & 0xFFFF)
        return codes

    def reason(self, password_given: bool) -> str:
        """Explain a failed decryption in words, from the status lines only."""
        codes = self.error_codes()
        if _GPG_ERR_BAD_PASSPHRASE in codes or self.has("BAD_PASSPHRASE"):
            return "wrong passphrase"
        if self.has("NEED_PASSPHRASE") and not password_given:
            return "its key is passphrase-protected and no passphrase was given"
        if not self.has("DECRYPTION_KEY") and (self.has("NO_SECKEY") or _GPG_ERR_NO_SECKEY in codes):
            return "holds none of the recipient keys"
        if codes:
            return "could not decrypt the session key (corrupted session key packet?)"
        if self.has("BADMDC") or self.has("DECRYPTION_FAILED") or self.has("NODATA"):
            return "the encrypted data is corrupted or truncated (integrity check failed)"
        return "gpg could not decrypt the message"


class _RingHome:
    """One key ring imported into its own GNUPGHOME, for every wrapped key of a layer."""

    def __init__(self, ring: bytes) -> None:
        self._ring = ring
        self._stack = contextlib.ExitStack()
        self.home: GpgHome | None = None
        self.fingerprints: list[str] = []
        self.key_ids: set[int] = set()

    def __enter__(self) -> _RingHome:
        with self._stack:
            self.home = self._stack.enter_context(GpgHome())
            self.fingerprints = secret_fingerprints(self.home.import_keys(self._ring))
            if self.fingerprints:
                self.key_ids = _secret_key_ids(self.home.gpg.list_keys(secret=True))
            self._stack = self._stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def addressed(self, recipients: list[int]) -> bool:
        """Tell whether the message may be for one of our keys (an anonymous recipient may be anyone)."""
        return 0 in recipients or not self.key_ids or any(key_id in self.key_ids for key_id in recipients)

    def decrypt(self, message: bytes, password: bytes | None) -> tuple[bytes | None, str]:
        """Decrypt ``message``; return (plaintext or None, why not)."""
        assert self.home is not None
        scope.spend(scope.PROCESS_RUN, "a gpg decryption")
        result = self.home.decrypt(message, password)
        outcome = _Outcome.of(result.stderr or "")
        if outcome.succeeded() and result.data:
            return bytes(result.data), ""
        return None, f"secret key {', '.join(self.fingerprints)}: {outcome.reason(bool(password))}"


def _secret_key_ids(listing: list[dict[str, Any]]) -> set[int]:
    """The 64-bit key IDs of the primary keys and subkeys in a python-gnupg key listing."""
    found: set[int] = set()
    for key in listing:
        for key_id in [key.get("keyid"), *(sub[0] for sub in key.get("subkeys", []) if sub)]:
            if isinstance(key_id, str):
                with contextlib.suppress(ValueError):
                    found.add(int(key_id, 16))
    return found


def _try_ring(
    ring: bytes, number: int, password: bytes | None, message: bytes, recipients: list[int]
) -> tuple[bytes | None, str]:
    """Decrypt ``message`` with one key ring; the ring's home is shared by all wrapped keys of the layer."""
    with contextlib.ExitStack() as own:
        shared = scope.shared(("pgp", number, ring), lambda: _RingHome(ring))
        ring_home = shared if shared is not None else own.enter_context(_RingHome(ring))
        if not ring_home.fingerprints:
            return None, "gpg imported no secret key from it"
        if not ring_home.addressed(recipients):
            return None, "the message names none of its key IDs (gpg not run)"
        return ring_home.decrypt(message, password)


def _ring_problem(ring: bytes | None, password: bytes | None) -> str | None:
    """Return why a ring cannot be tried at all, without starting gpg; None if it can."""
    if not ring:
        return "is empty"
    if is_pgp_public_keyring(ring):
        return "is a public key ring; only secret keys can decrypt"
    if not is_pgp_secret_keyring(ring):
        return "is not an OpenPGP secret key ring (binary or ASCII-armored)"
    if password and (b"\n" in password or b"\r" in password):
        return "has a passphrase with a line break, which gpg cannot read"
    return None


def _key_matches(key: dict[str, Any], wanted: str) -> bool:
    """Match a recipient as Go does (user ID name or e-mail), or by key ID / fingerprint."""
    hexed = wanted.lower().removeprefix("0x")
    if len(hexed) in (8, 16, 40) and all(c in "0123456789abcdef" for c in hexed):
        fingerprints = [key.get("fingerprint") or "", *(sub[2] or "" for sub in key.get("subkeys", []))]
        return any(fingerprint.lower().endswith(hexed) for fingerprint in fingerprints if fingerprint)
    for uid in key.get("uids", []):
        name, address = email.utils.parseaddr(uid)
        if wanted in (uid, name, address):
            return True
    return False


def _match_recipients(listing: list[dict[str, Any]], recipients: list[str]) -> list[str]:
    """Return the fingerprints of the keys the recipients name; every recipient must name one."""
    found: list[str] = []
    missing: list[str] = []
    for recipient in recipients:
        matches = [key["fingerprint"] for key in listing if recipient.strip() and _key_matches(key, recipient.strip())]
        if not matches:
            missing.append(recipient)
        found += [fingerprint for fingerprint in matches if fingerprint not in found]
    if missing:
        raise WrapError(f"PGP: No key found for the following recipients: {', '.join(missing)}")
    return found


def _export_user_keys(recipients: list[str]) -> bytes:
    """Export the recipients' public keys from the user's own GnuPG home (GNUPGHOME or ~/.gnupg)."""
    gpg_path, _ = programs()
    try:
        exported = gpg_class()(gpgbinary=gpg_path).export_keys(recipients, armor=False)
    except (OSError, ValueError) as err:
        raise WrapError(f"PGP: could not export public keys from the user's GnuPG home: {err}") from None
    return bytes(exported or b"")


def _check_readable_by_go(message: bytes) -> None:
    """Refuse output Go's OpenPGP reader cannot decrypt (AEAD packets from newer GnuPG)."""
    try:
        _, tag, body = session_key_packets(message)
    except PacketError as err:
        raise WrapError(f"PGP: gpg wrote an unexpected message: {err}") from None
    if tag != SEIPD_TAG or message[body] != 1:
        raise WrapError(f"PGP: gpg wrote encrypted data (packet tag {tag}) that ocicrypt cannot read")


class PgpKeyWrapper(KeyWrapperBase):
    """The ``pgp`` scheme; its key rings live in ``gpg-privatekeys``."""

    scheme = "pgp"
    key_parameter = params.GPG_PRIVATEKEYS

    def unwrap_key(self, dc: DecryptConfig, wrapped: bytes) -> bytes:
        """Try each key ring in order, each in its own throw-away GNUPGHOME; the first that decrypts wins."""
        rings = dc.get(params.GPG_PRIVATEKEYS)
        if not any(rings):
            raise UnwrapError("GPG: Missing private key parameter")
        passwords = dc.get(params.GPG_PRIVATEKEYS_PASSWORDS)
        try:
            key_ids = message_recipients(wrapped)
        except PacketError as err:
            raise UnwrapError(f"PGP: not an encrypted OpenPGP message: {err}") from None
        scope.check_recipients(len(key_ids), "the OpenPGP message")
        recipients = ", ".join(_key_id(key_id) for key_id in key_ids)
        attempts: list[str] = []
        for number, ring in enumerate(rings, start=1):
            password = passwords[number - 1] if number <= len(passwords) else None
            problem = _ring_problem(ring, password)
            if problem is not None:
                attempts.append(f"key ring #{number} {problem}")
                continue
            plaintext, reason = _try_ring(ring or b"", number, password, wrapped, key_ids)
            if plaintext is not None:
                return plaintext
            attempts.append(f"key ring #{number}: {reason}")
        summary = f"PGP: No suitable key found to unwrap key; recipients: {recipients}"
        raise UnwrapError(explain_attempts(summary, attempts))

    def wrap_keys(self, ec_config: EncryptConfig, opts: bytes) -> bytes | None:
        """Encrypt ``opts`` to ``gpg-recipients``, with keys from ``gpg-pubkeyringfile`` (else the user's gpg)."""
        recipients = [value.decode("utf-8", "replace") for value in ec_config.get(params.GPG_RECIPIENTS)]
        if not recipients:
            return None
        ring = b"".join(ec_config.get(params.GPG_PUBKEYRINGFILE)) or _export_user_keys(recipients)
        try:
            with GpgHome() as home:
                home.import_keys(ring)
                fingerprints = _match_recipients(home.gpg.list_keys(), recipients)
                result = home.gpg.encrypt(opts, fingerprints, armor=False, extra_args=["--compress-algo", "none"])
                if not result.ok:
                    raise WrapError(f"PGP: gpg could not encrypt: {result.status}")
                message = bytes(result.data)
        except UnwrapError as err:
            raise WrapError(str(err)) from None
        _check_readable_by_go(message)
        return message


WRAPPER = PgpKeyWrapper()


def describe_recipients(wrapped: bytes) -> list[str]:
    """Name each public-key recipient of a wrapped key by its OpenPGP key ID."""
    try:
        return [f"key ID {_key_id(key_id)}" for key_id in message_recipients(wrapped)]
    except PacketError as err:
        return [f"unreadable OpenPGP message: {err}"]
