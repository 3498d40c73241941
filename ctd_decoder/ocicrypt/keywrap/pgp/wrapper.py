"""OpenPGP key wrapping (``org.opencontainers.image.enc.keys.pgp``) through GnuPG.

The wrapped key is a binary OpenPGP message: one public-key encrypted session key packet per
recipient key, then integrity-protected encrypted data holding the private options as literal data.

Unwrapping imports each ``gpg-privatekeys`` entry (binary, or ASCII-armored as an improvement on
Go) into its own throw-away GNUPGHOME and asks ``gpg`` to decrypt with the password of the same
index in ``gpg-privatekeys-passwords`` (missing or None: no password; an empty password is treated
the same: python-gnupg cannot pass an empty one, and either way a protected key stays locked).
The first key ring that decrypts wins, as in Go. Each home is a short directory under /tmp (the
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
import functools
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from ... import config as params
from ... import keys, scope
from ...config import DecryptConfig, EncryptConfig
from ...errors import MissingBackendError, UnwrapError, WrapError
from ...stopsignals import raising_on_stop, stop_deferred
from ..base import explain_attempts
from . import scratch
from .packets import PacketError, packet_header

MAX_PLAINTEXT = 1 << 20
_GPGCONF_TIMEOUT = 10
_PKESK, _SKESK, _SED, _SEIPD, _AEAD = 1, 3, 9, 18, 20
_ENCRYPTED_DATA = {_SED, _SEIPD, _AEAD}
_GPG_ERR_BAD_PASSPHRASE = 11
_GPG_ERR_NO_SECKEY = 17
_GPG_CONF = "no-auto-key-locate\nno-auto-key-retrieve\ntrust-model always\nno-greeting\nno-autostart\n"
# max-cache-ttl 0: a passphrase must not outlive the one decryption that needed it. s2k-count: on first
# use the agent re-protects an imported key with a count calibrated to its CPU (about 1 s here); that
# buys nothing for a copy in a home deleted moments later.
_AGENT_CONF = "default-cache-ttl 0\nmax-cache-ttl 0\ndisable-scdaemon\nallow-loopback-pinentry\ns2k-count 65536\n"


def _session_key_packets(message: bytes) -> tuple[list[int], int, int]:
    """Walk the session-key packets; return (recipient key IDs, data packet tag, data body offset).

    Raises :class:`PacketError` unless ``message`` is session-key packets followed by encrypted
    data, the only shape ocicrypt writes and reads.
    """
    recipients: list[int] = []
    offset = 0
    while True:
        tag, body, length = packet_header(message, offset)
        if tag in _ENCRYPTED_DATA:
            if body >= len(message):
                raise PacketError("the encrypted data packet is empty")
            return recipients, tag, body
        if tag not in (_PKESK, _SKESK):
            raise PacketError(f"unexpected OpenPGP packet (tag {tag}) before the encrypted data")
        if length is None or body + length > len(message):
            raise PacketError(f"truncated session key packet (tag {tag})")
        if tag == _PKESK and length >= 10 and message[body] == 3:
            recipients.append(int.from_bytes(message[body + 1 : body + 9], "big"))
        offset = body + length


def message_recipients(message: bytes) -> list[int]:
    """Return the key IDs of the public-key recipients of an encrypted OpenPGP message."""
    recipients, _, _ = _session_key_packets(message)
    if not recipients:
        raise PacketError("the message has no public-key recipients")
    return recipients


def _key_id(value: int) -> str:
    """Format a key ID the way ocicrypt prints them: ``0x`` and lower-case hex."""
    return f"0x{value:x}"


@functools.cache
def _gpg_class() -> Any:
    """Import python-gnupg and return a GPG class that remembers the gpg processes it starts."""
    try:
        import gnupg
    except ImportError:
        raise MissingBackendError(
            "OpenPGP needs the python-gnupg package: install ctd-decoder[pgp] (pip install python-gnupg)"
        ) from None
    # python-gnupg logs key data at DEBUG and gpg's complaints at WARNING; neither may reach stderr.
    logger = logging.getLogger("gnupg")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False

    class TrackedGPG(gnupg.GPG):  # type: ignore[misc]
        """Keeps every gpg child so an interrupted call can kill it before its home is removed."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.children: list[subprocess.Popen[bytes]] = []
            super().__init__(*args, **kwargs)

        def _open_subprocess(self, *args: Any, **kwargs: Any) -> Any:
            child = super()._open_subprocess(*args, **kwargs)
            self.children.append(child)
            return child

    return TrackedGPG


def _programs() -> tuple[str, str]:
    gpg, gpgconf = shutil.which("gpg"), shutil.which("gpgconf")
    if gpg is None or gpgconf is None:
        raise MissingBackendError("OpenPGP needs the gpg and gpgconf programs (GnuPG 2.1 or later): install gnupg")
    return gpg, gpgconf


_PR_SET_PDEATHSIG = 1
_LISTEN_FDS_START = 3


def _exit_status(signum: int) -> SystemExit:
    """While a home exists, a stop signal nobody handles ends the program this way, after the clean-up."""
    return SystemExit(128 + signum)


def _agent_child_setup(parent: int, prctl: Any) -> None:
    """In the gpg-agent child before exec: die with us (SIGKILL included), take signals again."""
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # we were killed before the line above
        os._exit(1)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


class GpgHome:
    """A private, temporary GNUPGHOME with its own gpg-agent, torn down on exit.

    The agent is our child, not a daemon (``--supervised`` on a socket we bind): we reap it, and it
    dies with us even on SIGKILL (``PR_SET_PDEATHSIG``). The home is named after this process
    (:mod:`ctd_decoder.ocicrypt.keywrap.pgp.scratch`), so a later run removes it if we are killed; setting up
    and tearing down run with stop signals held back, so a signal cannot cut them short.
    """

    def __init__(self) -> None:
        self._gpg_class = _gpg_class()
        self._gpg_path, self._gpgconf_path = _programs()
        self.path: Path | None = None
        self._signals = raising_on_stop(_exit_status, only_unhandled=True)
        self.gpg: Any = None
        self.agent: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> GpgHome:
        self._signals.__enter__()
        try:
            with stop_deferred():
                self._set_up()
        except BaseException as err:
            with stop_deferred():
                self._teardown()
            self._signals.__exit__(type(err), err, err.__traceback__)
            if isinstance(err, (OSError, ValueError, subprocess.SubprocessError)):
                raise UnwrapError(f"could not set up a temporary GnuPG home: {type(err).__name__}") from None
            raise
        return self

    def _set_up(self) -> None:
        self.path = Path(scratch.make_private_dir())
        (self.path / "gpg.conf").write_text(_GPG_CONF)
        (self.path / "gpg-agent.conf").write_text(_AGENT_CONF)
        self.agent = self._start_agent()
        self.gpg = self._gpg_class(gpgbinary=self._gpg_path, gnupghome=str(self.path))

    def _agent_socket_path(self) -> str:
        assert self.path is not None
        if not Path(f"/run/user/{os.getuid()}").is_dir():
            return str(self.path / "S.gpg-agent")
        # gpg then looks for the agent under /run/user/<uid>/gnupg/d.<hash of the home>.
        self._gpgconf("--create-socketdir")
        return self._gpgconf("--list-dirs", "agent-socket", check=True).decode("utf-8", "replace").strip()

    def _start_agent(self) -> subprocess.Popen[bytes]:
        """Start gpg-agent in supervised mode on a socket we bind: our child, never a daemon."""
        import ctypes
        import socket

        assert self.path is not None
        agent = shutil.which("gpg-agent") or os.path.join(os.path.dirname(self._gpg_path), "gpg-agent")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self._agent_socket_path())
            listener.listen(16)
            fd = listener.fileno()

            parent, prctl = os.getpid(), ctypes.CDLL(None, use_errno=True).prctl

            def child_setup() -> None:
                _agent_child_setup(parent, prctl)
                if fd == _LISTEN_FDS_START:
                    # dup2 onto itself keeps close-on-exec: the agent would start without its socket.
                    os.set_inheritable(fd, True)
                else:
                    os.dup2(fd, _LISTEN_FDS_START)
                # systemd's socket-passing protocol, which gpg-agent --supervised reads.
                os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="std")

            return subprocess.Popen(
                [agent, "--homedir", str(self.path), "--supervised", "--quiet"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Not close_fds: it would run after child_setup and close fd 3 again. Our own descriptors
                # are close-on-exec (the listener too: only its fd 3 copy reaches the agent).
                close_fds=False,
                preexec_fn=child_setup,
            )
        finally:
            listener.close()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            with stop_deferred():
                self._teardown()
        finally:
            self._signals.__exit__(kind, value, traceback)

    def _teardown(self) -> None:
        if self.path is None:
            return
        home = str(self.path)
        for child in getattr(self.gpg, "children", []):
            if child.poll() is None:  # only after an interruption (a signal) mid-call
                child.kill()
                child.wait()
        if self.agent is not None:
            self.agent.terminate()
            try:
                self.agent.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
            self.agent = None
        if Path(f"/run/user/{os.getuid()}").is_dir():
            # gpg then keeps the agent's sockets under /run/user/<uid>/gnupg/d.<hash>.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self._gpgconf("--remove-socketdir")
        scratch.remove_private_dir(home)
        self.path = None

    def _gpgconf(self, *args: str, check: bool = False) -> bytes:
        """Run gpgconf on this home; return its stdout (``check``: raise if it fails)."""
        done = subprocess.run(
            [self._gpgconf_path, "--homedir", str(self.path), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_GPGCONF_TIMEOUT,
            check=check,
        )
        return done.stdout

    def import_keys(self, data: bytes) -> Any:
        """Import key material (binary or armored); return python-gnupg's ImportResult."""
        return self.gpg.import_keys(data)

    def decrypt(self, message: bytes, password: bytes | None) -> Any:
        """Decrypt ``message``; the password, if any, goes to gpg's stdin ahead of the message."""
        extra = ["--max-output", str(MAX_PLAINTEXT)]
        if not password:
            return self.gpg.decrypt(message, extra_args=["--pinentry-mode", "loopback", *extra])
        return self.gpg.decrypt(message, passphrase=password.decode("latin-1"), extra_args=extra)


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


def _secret_fingerprints(result: Any) -> list[str]:
    """Return the fingerprints of the secret keys an import brought in (python-gnupg ImportResult)."""
    found: list[str] = []
    for entry in result.results:
        ok, fingerprint = entry.get("ok"), entry.get("fingerprint")
        if ok is not None and ok.isdigit() and int(ok) & 16 and fingerprint and fingerprint not in found:
            found.append(fingerprint)
    return found


def secret_key_fingerprints(ring: bytes) -> list[str]:
    """Return the fingerprints of the secret keys in ``ring`` (imported into a throw-away GNUPGHOME)."""
    with GpgHome() as home:
        return _secret_fingerprints(home.import_keys(ring))


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
            self.fingerprints = _secret_fingerprints(self.home.import_keys(self._ring))
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
    if keys.is_pgp_public_keyring(ring):
        return "is a public key ring; only secret keys can decrypt"
    if not keys.is_pgp_secret_keyring(ring):
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
    gpg_class = _gpg_class()
    gpg_path, _ = _programs()
    try:
        exported = gpg_class(gpgbinary=gpg_path).export_keys(recipients, armor=False)
    except (OSError, ValueError) as err:
        raise WrapError(f"PGP: could not export public keys from the user's GnuPG home: {err}") from None
    return bytes(exported or b"")


def _check_readable_by_go(message: bytes) -> None:
    """Refuse output Go's OpenPGP reader cannot decrypt (AEAD packets from newer GnuPG)."""
    try:
        _, tag, body = _session_key_packets(message)
    except PacketError as err:
        raise WrapError(f"PGP: gpg wrote an unexpected message: {err}") from None
    if tag != _SEIPD or message[body] != 1:
        raise WrapError(f"PGP: gpg wrote encrypted data (packet tag {tag}) that ocicrypt cannot read")


class PgpKeyWrapper:
    """The ``pgp`` scheme."""

    scheme = "pgp"

    def has_possible_keys(self, dc: DecryptConfig) -> bool:
        """OpenPGP needs ``gpg-privatekeys``."""
        return bool(dc.keys_of(params.GPG_PRIVATEKEYS))

    def private_key_parameter(self) -> str:
        """OpenPGP keys live in ``gpg-privatekeys``."""
        return params.GPG_PRIVATEKEYS

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
