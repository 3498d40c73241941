"""Private containerd and docker-registry daemons for end-to-end tests, loopback only.

Every daemon gets its own temp dir (root, state, sockets, logs), is started by the caller and is
stopped by its pid: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

PROCESSOR_TAR = "io.containerd.ocicrypt.decoder.v1.tar"
PROCESSOR_TAR_GZIP = "io.containerd.ocicrypt.decoder.v1.tar.gzip"
PROCESSOR_TAR_ZSTD = "io.containerd.ocicrypt.decoder.v1.tar.zstd"

LAYER_MEDIA_TYPES = {
    PROCESSOR_TAR: "application/vnd.oci.image.layer.v1.tar",
    PROCESSOR_TAR_GZIP: "application/vnd.oci.image.layer.v1.tar+gzip",
    PROCESSOR_TAR_ZSTD: "application/vnd.oci.image.layer.v1.tar+zstd",
}

# Plugins that cannot work in a temp dir or are not needed; disabling them keeps start-up quiet and fast.
DISABLED_PLUGINS = [
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
]


def require_tool(name: str, package: str) -> str:
    """Return the path of ``name``; fail (never skip) with an install hint if it is missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not path:
        raise RuntimeError(f"{name} is not installed: apt-get install -y {package} (the e2e tests need it)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop one process we started, by its pid: SIGTERM, wait, then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(grace)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Registry:
    """A ``docker-registry serve`` on 127.0.0.1 with its storage in a temp dir."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "registry.log"

    def start(self, timeout: float = 30.0) -> Registry:
        exe = require_tool("docker-registry", "docker-registry")
        self.port = self.port or free_port()
        config = self.directory / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.directory / 'data'}\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )
        with open(self.log, "wb") as log:
            env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
            self.process = subprocess.Popen([exe, "serve", str(config)], stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.process.returncode}:\n{_log_tail(self.log)}")
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer within {timeout} s:\n{_log_tail(self.log)}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


@dataclass
class Processor:
    """One ``[stream_processors]`` entry."""

    processor_id: str
    path: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def toml(self) -> str:
        returns = LAYER_MEDIA_TYPES[self.processor_id]
        accepts = returns + "+encrypted"
        env = [f"{k}={v}" for k, v in self.env.items()]
        return (
            f'[stream_processors."{self.processor_id}"]\n'
            f"  accepts = [{_toml_str(accepts)}]\n"
            f"  returns = {_toml_str(returns)}\n"
            f"  path = {_toml_str(self.path)}\n"
            f"  args = [{', '.join(_toml_str(a) for a in self.args)}]\n"
            f"  env = [{', '.join(_toml_str(e) for e in env)}]\n"
        )


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def decoder_processors(
    decoder: str,
    keys_dir: Path | None,
    env: dict[str, str] | None = None,
    ids: tuple[str, ...] = (PROCESSOR_TAR_GZIP, PROCESSOR_TAR),
) -> list[Processor]:
    """The ocicrypt decoder entries, all pointing at ``decoder``."""
    args = ["--decryption-keys-path", str(keys_dir)] if keys_dir is not None else []
    return [Processor(pid, decoder, list(args), dict(env or {})) for pid in ids]


CONTAINERD_1 = "1.6"  # Debian's containerd 1.6.20 (config version 2)
CONTAINERD_2_LINE = "2.3"  # the opt-in containerd 2.x of $CTD_REFERENCE_BIN (config version 3)
CONTAINERD_VERSIONS = (CONTAINERD_1, CONTAINERD_2_LINE)


def containerd_executable(version: str) -> str:
    """The daemon of one containerd line: Debian's for 1.6, the opt-in containerd 2.x for 2.3 (tests that
    need it are deselected without one: tests/conftest.py)."""
    if version == CONTAINERD_1:
        return require_tool("containerd", "containerd")
    from support.references import REFERENCE_BIN_ENV, containerd_2

    path = containerd_2()
    if path is None:
        raise RuntimeError(
            f"containerd 2.x is not given: set {REFERENCE_BIN_ENV} to a directory holding it and its ctr"
        )
    return str(path)


def write_hosts_toml(config_path: Path, host: str) -> None:
    """A ``certs.d/<host>/hosts.toml`` that reaches ``host`` over plain HTTP (pull and resolve).

    This, not a ``registry.mirrors`` entry, is how the registry is configured: a mirrors entry
    silently switches containerd 2.x to the local pull path and would hide its default path.
    """
    directory = config_path / host
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.toml").write_text(
        f'server = "http://{host}"\n\n[host."http://{host}"]\n  capabilities = ["pull", "resolve"]\n'
    )


@dataclass
class Containerd:
    """A containerd with a private root, state and socket, CRI enabled with ``key_model = "node"``.

    ``version`` picks the line (:data:`CONTAINERD_VERSIONS`) and with it the config format; on 2.x,
    ``local_pull`` sets ``use_local_image_pull`` (False: the default transfer-service path).
    """

    directory: Path
    processors: list[Processor]
    registry_hosts: list[str] = field(default_factory=list)
    snapshotter: str = "overlayfs"
    env: dict[str, str] = field(default_factory=dict)
    extra_toml: str = ""  # appended as is (e.g. an operator's snippet); then set image_decryption=False
    image_decryption: bool = True
    key_model: str = "node"  # "" is the CRI's other model: it sends the decoder no payload
    version: str = CONTAINERD_1
    local_pull: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return str(self.directory / "c.sock")

    @property
    def log(self) -> Path:
        return self.directory / "containerd.log"

    @property
    def config_path(self) -> Path:
        """The ``certs.d`` directory of the registry hosts."""
        return self.directory / "certs.d"

    def config_toml(self) -> str:
        d = self.directory
        head = [
            f"root = {_toml_str(str(d / 'root'))}",
            f"state = {_toml_str(str(d / 'state'))}",
            f"disabled_plugins = [{', '.join(_toml_str(p) for p in DISABLED_PLUGINS)}]",
            "",
            "[grpc]",
            f"  address = {_toml_str(self.socket)}",
            "[ttrpc]",
            f"  address = {_toml_str(self.socket + '.ttrpc')}",
            "[debug]",
            '  level = "info"',
            "",
        ]
        body = self._cri_v2() if self.version == CONTAINERD_1 else self._cri_v3()
        lines = [f"version = {2 if self.version == CONTAINERD_1 else 3}", *head, *body, ""]
        return "\n".join(lines) + "\n" + "\n".join(p.toml() for p in self.processors) + self.extra_toml

    def _cri_v2(self) -> list[str]:
        d = self.directory
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        lines = [
            f"[{cri}]",
            '  stream_server_address = "127.0.0.1"',
            '  stream_server_port = "0"',
            f"[{cri}.containerd]",
            f"  snapshotter = {_toml_str(self.snapshotter)}",
            f"[{cri}.cni]",
            f"  bin_dir = {_toml_str(str(d / 'cni' / 'bin'))}",
            f"  conf_dir = {_toml_str(str(d / 'cni' / 'conf'))}",
            f"[{cri}.registry]",
            f"  config_path = {_toml_str(str(self.config_path))}",
        ]
        if self.image_decryption:
            lines += [f"[{cri}.image_decryption]", f"  key_model = {_toml_str(self.key_model)}"]
        return lines

    def _cri_v3(self) -> list[str]:
        d = self.directory
        images = "plugins.'io.containerd.cri.v1.images'"
        # Only sub-tables of the images plugin when an operator's snippet (extra_toml) owns the table.
        lines = [
            f"[{images}.registry]",
            f"  config_path = {_toml_str(str(self.config_path))}",
            "[plugins.'io.containerd.cri.v1.runtime'.cni]",
            f"  bin_dir = {_toml_str(str(d / 'cni' / 'bin'))}",
            f"  conf_dir = {_toml_str(str(d / 'cni' / 'conf'))}",
            "[plugins.'io.containerd.grpc.v1.cri']",
            '  stream_server_address = "127.0.0.1"',
            '  stream_server_port = "0"',
        ]
        if self.image_decryption:
            lines += [
                f"[{images}]",
                f"  snapshotter = {_toml_str(self.snapshotter)}",
                f"  use_local_image_pull = {'true' if self.local_pull else 'false'}",
                f"[{images}.image_decryption]",
                f"  key_model = {_toml_str(self.key_model)}",
            ]
        return lines

    def start(self, timeout: float = 30.0, write_config: bool = True) -> Containerd:
        """Start containerd; ``write_config`` False restarts it with its config.toml as it is now."""
        exe = containerd_executable(self.version)
        require_tool("runc", "runc")
        self.directory.mkdir(parents=True, exist_ok=True)
        for host in self.registry_hosts:
            write_hosts_toml(self.config_path, host)
        config = self.directory / "config.toml"
        if write_config:
            config.write_text(self.config_toml())
        env = {**os.environ, **self.env}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([exe, "--config", str(config)], stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"containerd exited with {self.process.returncode}:\n{_log_tail(self.log)}")
            if os.path.exists(self.socket) and self._cri_ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"containerd did not come up within {timeout} s:\n{_log_tail(self.log)}")

    def _cri_ready(self) -> bool:
        from .client import ContainerdClient

        with ContainerdClient(self.socket, "k8s.io") as client:
            return client.cri_ready()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def log_tail(self, lines: int = 40) -> str:
        return _log_tail(self.log, lines)

    def ctr(self, namespace: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run ``ctr`` against this daemon; raise with its stderr on failure."""
        exe = require_tool("ctr", "containerd")
        result = subprocess.run(
            [exe, "-a", self.socket, "-n", namespace, *args], input=stdin, capture_output=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
        return result


Daemon = TypeVar("Daemon", Containerd, Registry)


@contextlib.contextmanager
def running(daemon: Daemon, base: Path) -> Iterator[Daemon]:
    """Start ``daemon`` and yield it; stop it by pid and remove ``base``, its temp dir, when the block ends.

    A start that fails (RuntimeError) fails the test; its temp dir is removed then too.
    """
    try:
        daemon.start()
    except RuntimeError as err:
        remove_tree(base)
        import pytest

        pytest.fail(str(err))
    except BaseException:  # also pytest.skip (a 2.3 daemon without its binary)
        remove_tree(base)
        raise
    try:
        yield daemon
    finally:
        daemon.stop()
        remove_tree(base)


def remove_tree(path: Path) -> None:
    """Remove a daemon's temp dir once the daemon is stopped (nothing is left mounted)."""
    shutil.rmtree(path, ignore_errors=True)
