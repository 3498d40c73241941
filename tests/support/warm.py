"""A real ``ocicrypt serve`` process for tests, and a look at what it has running."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ctd_decoder.decoder.warm.pool import IDLE_NAME, LAYER_NAME
from ctd_decoder.decoder.warm.protocol import SOCKET_ENV
from support.decoder import start_decoder
from support.layers import EncryptedLayer

OCICRYPT = shutil.which("ocicrypt", path=os.path.dirname(sys.executable))
SMALL_CLIENT_SOURCE = Path(__file__).resolve().parents[2] / "packaging" / "warm-client" / "ctd-decoder-client.c"
COLD_ENV = "CTD_DECODER_COLD"


def build_small_client(directory: Path) -> Path:
    """Compile packaging/warm-client's C client into ``directory`` (it needs a C compiler: gcc)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler for the small warm client: apt-get install gcc")
    output = directory / "ctd-decoder-client"
    compile_script = SMALL_CLIENT_SOURCE.with_name("compile.sh")
    subprocess.run(["sh", str(compile_script), str(output)], check=True, env={**os.environ, "CC": compiler})
    return output


def _name(pid: int) -> bytes:
    """A process's comm; b"" once it is gone or a zombie (a zombie's comm is no longer what it ran as)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""
    if stat.rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
        return b""
    return stat[stat.index(b"(") + 1 : stat.rindex(b")")]


def waits_in_epoll(pid: int) -> bool:
    """Whether ``pid`` sleeps in epoll_wait (a waiting child does, once it has rehearsed)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text() == "do_epoll_wait"
    except OSError:
        return False


class WarmServer:
    """A warm server child listening on ``socket``; its stderr lines are collected in ``lines``.

    By default ``ocicrypt serve``. With ``command`` (an installed ``ctd-decoder-warm``, as a unit's
    ``ExecStart`` names it) the server is started the way its systemd socket unit starts it:
    ``systemd-socket-activate`` listens on ``socket`` and execs ``command`` with the listening socket
    on the first connection (one connection is made here, so that the first layer finds it running).
    """

    def __init__(
        self, directory: Path, extra_env: dict[str, str] | None = None, command: list[str] | None = None
    ) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket = directory / "warm.sock"
        self.lines: list[str] = []
        self._ready = threading.Event()
        if command is None:
            if not OCICRYPT:
                raise RuntimeError("ocicrypt is not installed next to the test interpreter")
            argv, env = [OCICRYPT, "serve", "--socket", str(self.socket)], {**os.environ, **(extra_env or {})}
        else:
            activate = shutil.which("systemd-socket-activate")
            if activate is None:
                raise RuntimeError("systemd-socket-activate is needed (Debian: systemd)")
            settings = [f"--setenv={name}={value}" for name, value in (extra_env or {}).items()]
            # Like a systemd service, the server gets a near-empty environment (PATH, HOME, TERM).
            argv, env = [activate, f"--listen={self.socket}", *settings, *command], dict(os.environ)
        self.process = subprocess.Popen(
            argv, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if command is not None:
            self._activate()
        if not self._ready.wait(60):
            self.stop()
            raise RuntimeError(f"the warm server did not start: {self.lines}")

    def _activate(self) -> None:
        """Connect once, as the first client would, so that the socket's listener execs the server."""
        deadline = time.monotonic() + 30
        # The socket's file exists once bound, a moment before it listens: retry a refused connect.
        while self.process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(self.socket))  # the server logs it as a client that closed mid-request
                return
            time.sleep(0.02)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if "listening on" in line:
                self._ready.set()

    @property
    def env(self) -> dict[str, str]:
        """The environment that sends ``ctd-decoder`` to this server."""
        return {SOCKET_ENV: str(self.socket)}

    def layer_lines(self) -> list[str]:
        """The per-layer log lines so far."""
        return [line for line in self.lines if line.startswith("ctd-decoder-warm: layer ")]

    def wait_for_layers(self, count: int, timeout: float = 30) -> list[str]:
        """Wait until at least ``count`` layer lines were logged; return them."""
        deadline = time.monotonic() + timeout
        while len(self.layer_lines()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.layer_lines()

    def wait_for_ok_layers(self, count: int) -> list[str]:
        """Wait until ``count`` layer lines were logged; assert there are that many and all are ok."""
        lines = self.wait_for_layers(count)
        assert len(lines) == count and all(" ok " in line for line in lines), self.lines
        return lines

    def all_children(self) -> list[int]:
        """The pids of the server's live (or unreaped) children: waiting ones and layers' ones."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def children(self) -> list[int]:
        """The pids of the server's children that have a layer (named ctd-decoder, or gone unreaped)."""
        return [pid for pid in self.all_children() if _name(pid) in (LAYER_NAME, b"")]

    def waiting_children(self) -> list[int]:
        """The pids of the server's children waiting for a layer (the pool)."""
        return [pid for pid in self.all_children() if _name(pid) == IDLE_NAME]

    def ready_children(self) -> list[int]:
        """The waiting children that have rehearsed and wait on the socket for a client."""
        return [pid for pid in self.waiting_children() if waits_in_epoll(pid)]

    def open_fds(self) -> int:
        """How many descriptors the server holds."""
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stop(self) -> None:
        """SIGTERM, then wait (it finishes running layers first)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)


def start_blocked_client(
    layer: EncryptedLayer, env: dict[str, str], head: int = 100
) -> tuple[subprocess.Popen[bytes], int]:
    """A ``ctd-decoder`` given the first ``head`` bytes of ``layer`` and a stdin that stays open (the layer
    is not finished until the caller writes the rest and closes it); returns it and the stdin writer."""
    stdin_read, stdin_write = os.pipe()
    process = start_decoder(stdin_read, layer.payload(), env=env)
    os.close(stdin_read)
    os.write(stdin_write, layer.blob[:head])
    return process, stdin_write
