"""A temporary directory standing in for a node's root file system, for ``ocicrypt node``: a private
containerd whose config is ``ROOT/etc/containerd/config.toml``, and a supervisor standing in for the
host's init system and ``nsenter``: the installer's ``--host-exec`` hook (a shell script) hands each
command to it through files, it restarts that containerd for ``systemctl try-restart`` and runs any
other command for real on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from ctd_decoder.tools.node.paths import FLAVOURS, Flavour
from support.keygen import new_key, private_pem, public_pem
from support.tempdirs import short_tempdir

from .client import ContainerdClient
from .daemons import CONTAINERD_1, Containerd, Registry, remove_tree
from .node import Image, verify_pulled
from .schemes import Recipient

HOOK = "host-exec"
# Runs where the installer runs (this machine, or the node image's busybox): the request is one
# argument per line, answered by NAME.out (output) and NAME.done (exit status).
HOOK_SCRIPT = """#!/bin/sh
# Stands in for `nsenter --target 1 --mount --`: the test's supervisor runs "$@" on the host.
dir=$(dirname "$0")
name=$$.$(date +%s)
: > "$dir/$name.tmp"
for arg in "$@"; do printf '%s\\n' "$arg" >> "$dir/$name.tmp"; done
mv "$dir/$name.tmp" "$dir/$name.req"
while [ ! -e "$dir/$name.done" ]; do sleep 0.1; done
cat "$dir/$name.out"
status=$(cat "$dir/$name.done")
rm -f "$dir/$name.req" "$dir/$name.out" "$dir/$name.done"
exit "$status"
"""
KEYS = "etc/containerd/ocicrypt/keys"  # the host keys directory, relative to the host root
RUNTIME = ("root", "state", "containerd.log", "c.sock", "c.sock.ttrpc")  # containerd's own, not config


@dataclass
class FakeHost:
    """A host root with a running containerd, and the supervisor serving the hook."""

    root: Path
    hooks: Path
    containerd: Containerd
    units: tuple[str, ...] = ("containerd.service",)  # what `systemctl try-restart` must name
    restarts: int = 0
    commands: list[list[str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def config(self) -> Path:
        return self.containerd.directory / "config.toml"

    @property
    def hook(self) -> Path:
        return self.hooks / HOOK

    def start_supervisor(self) -> FakeHost:
        """Start serving the hook (containerd is started already)."""
        self.hook.write_text(HOOK_SCRIPT)
        self.hook.chmod(0o755)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            for request in sorted(self.hooks.glob("*.req")):
                argv = request.read_text().splitlines()
                self.commands.append(argv)
                status, output = self._run(argv)
                name = request.name[: -len(".req")]
                (self.hooks / f"{name}.out").write_text(output)
                (self.hooks / f"{name}.done.tmp").write_text(str(status))
                os.rename(self.hooks / f"{name}.done.tmp", self.hooks / f"{name}.done")
                with contextlib.suppress(FileNotFoundError):
                    request.unlink()
            time.sleep(0.05)

    def _run(self, argv: list[str]) -> tuple[int, str]:
        if argv[:1] == ["systemctl"]:
            if argv[1:] != ["try-restart", *self.units]:
                return 1, f"unexpected systemctl call {argv}\n"
            self.containerd.stop()
            try:
                self.containerd.start(write_config=False)
            except RuntimeError as err:
                return 1, f"containerd did not restart: {err}\n"
            self.restarts += 1
            return 0, ""
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, check=False)
        return done.returncode, done.stdout.decode(errors="replace")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.containerd.stop()
        remove_tree(self.root)
        remove_tree(self.hooks)

    def snapshot(self) -> dict[str, tuple[int, bytes]]:
        """Every file, link and directory below the root except containerd's runtime state: path ->
        (mode, contents or link target)."""
        found: dict[str, tuple[int, bytes]] = {}
        skip = {self.containerd.directory / name for name in RUNTIME}
        for directory, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if Path(directory, d) not in skip]
            for name in dirnames + filenames:
                path = Path(directory, name)
                if path in skip:
                    continue
                info = path.lstat()
                if path.is_symlink():
                    content = os.readlink(path).encode()
                elif path.is_file():
                    content = path.read_bytes()
                else:
                    content = b""
                found[str(path.relative_to(self.root))] = (info.st_mode, content)
        return found


def start_fake_host(
    registry: Registry, version: str = CONTAINERD_1, flavour: Flavour = Flavour.CONTAINERD, imports: str = ""
) -> FakeHost:
    """A host root with containerd ``version`` configured as a node would be before the install: CRI
    on, the registry reachable, no stream processors of ours. For k3s or RKE2 the config is where
    they render it; ``imports`` (a host path glob, e.g. k3s#13680's drop-in directory) is added to it
    as their base template does."""
    root = short_tempdir("ctd-host-")
    hooks = short_tempdir("ctd-hook-")
    where = FLAVOURS[flavour]
    containerd = Containerd(root / where.config_dir.lstrip("/"), [], [registry.host], version=version)
    host = FakeHost(root, hooks, containerd, where.units)
    if imports:
        containerd.directory.mkdir(parents=True)
        text = containerd.config_toml()
        version_line, _, rest = text.partition("\n")
        host.config.write_text(f"{version_line}\nimports = [{json.dumps(str(root) + imports)}]\n{rest}")
    try:
        host.containerd.start(write_config=not imports)
        return host.start_supervisor()
    except BaseException:
        host.stop()
        raise


def fake_bundle(directory: Path, decoder: str) -> Path:
    """A bundle directory whose ``ctd-decoder`` runs the pip-installed commands (``ocicrypt`` when
    started under that name, as the packaged bundle does)."""
    directory.mkdir(parents=True)
    tools = Path(decoder).with_name("ocicrypt")
    exe = directory / "ctd-decoder"
    exe.write_text(
        f'#!/bin/sh\ncase "$(basename "$0")" in ocicrypt) exec \'{tools}\' "$@" ;; esac\nexec \'{decoder}\' "$@"\n'
    )
    exe.chmod(0o755)
    return directory


def jwe_recipient(directory: Path, name: str, password: bytes | None = None) -> tuple[Recipient, object]:
    """A JWE recipient whose private key file is ``name`` (encrypted with ``password`` if given)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = new_key("p256")
    public = directory / f"{name}.pub"
    public.write_bytes(public_pem(key))
    files = {name: private_pem(key, password=password)}
    if password:
        files[f"{name}.password"] = password + b"\n"
    return Recipient("jwe", files, {}, encryption_keys=[f"jwe:{public}"]), key


def pull(host: FakeHost, image: Image) -> None:
    """CRI ``PullImage`` on the host's containerd, then check every layer unpacked to its diff ID."""
    with ContainerdClient(host.containerd.socket, "k8s.io") as client:
        client.pull_image(image.ref)
        verify_pulled(client, image)


def pull_error(host: FakeHost, image: Image) -> str:
    """CRI ``PullImage`` that must fail; return containerd's error text."""
    with ContainerdClient(host.containerd.socket, "k8s.io") as client, pytest.raises(grpc.RpcError) as info:
        client.pull_image(image.ref)
    error = info.value
    return str(error.details()) if isinstance(error, grpc.Call) else str(error)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


def assert_no_secret(text: str, secrets: list[bytes]) -> None:
    """No line of a key's body (nor a one-line password) appears in ``text``."""
    for secret in secrets:
        for line in secret.decode().strip().splitlines()[1:-1] or [secret.decode().strip()]:
            assert line not in text, "key material in the output"
