"""A private, temporary GnuPG home with its own gpg-agent, and python-gnupg loaded on first use.

Each home is a short directory under /tmp (the agent's socket path must fit in ``sun_path``), mode
0700, named after this process (:mod:`.scratch`); on every exit path, SIGTERM and SIGHUP included,
its gpg children are killed, its gpg-agent is stopped and the directory is removed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

from ...errors import MissingBackendError, UnwrapError
from ...stopsignals import raising_on_stop, stop_deferred
from . import scratch

MAX_PLAINTEXT = 1 << 20
_GPGCONF_TIMEOUT = 10
_GPG_CONF = "no-auto-key-locate\nno-auto-key-retrieve\ntrust-model always\nno-greeting\nno-autostart\n"
# max-cache-ttl 0: a passphrase must not outlive the one decryption that needed it. s2k-count: on first
# use the agent re-protects an imported key with a count calibrated to its CPU (about 1 s here); that
# buys nothing for a copy in a home deleted moments later.
_AGENT_CONF = "default-cache-ttl 0\nmax-cache-ttl 0\ndisable-scdaemon\nallow-loopback-pinentry\ns2k-count 65536\n"


@functools.cache
def gpg_class() -> Any:
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


def programs() -> tuple[str, str]:
    """Return the paths of gpg and gpgconf; MissingBackendError if either is not installed."""
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
        self._gpg_class = gpg_class()
        self._gpg_path, self._gpgconf_path = programs()
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


def secret_fingerprints(result: Any) -> list[str]:
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
        return secret_fingerprints(home.import_keys(ring))
