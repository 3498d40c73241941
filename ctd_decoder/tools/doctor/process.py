"""containerd's own process environment, which is what its stream processors inherit.

containerd starts a processor with its own environment plus the entry's ``env``, and finds a bare
``path`` on its own PATH. The doctor reads that environment from ``/proc/<pid>/environ`` of the
running containerd that uses the checked config file, else from the systemd unit, else says it
could not tell.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass

DEFAULT_CONFIG = "/etc/containerd/config.toml"
# The PATH systemd gives services whose unit sets none (systemd's built-in default).
SYSTEMD_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class ContainerdProcess:
    """A running containerd: its pid, executable, config file and environment (None if unreadable)."""

    pid: int
    exe: str
    config_path: str
    environ: dict[str, str] | None


@dataclass
class Environment:
    """The environment containerd runs with, and where it was learned; ``values`` None: unknown."""

    values: dict[str, str] | None
    source: str


def _config_from_argv(argv: list[str]) -> str:
    for index, arg in enumerate(argv[1:], start=1):
        for flag in ("--config", "-c"):
            if arg == flag and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith(flag + "="):
                return arg[len(flag) + 1 :]
    return DEFAULT_CONFIG


def _read_proc(pid: str, name: str) -> bytes | None:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _parse_environ(data: bytes) -> dict[str, str]:
    values: dict[str, str] = {}
    for entry in data.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name:
            values[name.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return values


def _is_containerd(argv0: str) -> bool:
    name = os.path.basename(argv0)
    return name.startswith("containerd") and not name.startswith(("containerd-shim", "containerd-stress"))


def running_containerds() -> list[ContainerdProcess]:
    """Return every running containerd daemon this user can see, lowest pid first."""
    found = []
    try:
        pids = sorted((name for name in os.listdir("/proc") if name.isdigit()), key=int)
    except OSError:
        return []
    for pid in pids:
        cmdline = _read_proc(pid, "cmdline")
        if not cmdline:
            continue
        argv = [part.decode("utf-8", "surrogateescape") for part in cmdline.rstrip(b"\0").split(b"\0")]
        if not _is_containerd(argv[0]) or any(arg in ("config", "--version", "-v") for arg in argv[1:2]):
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = argv[0]
        environ = _read_proc(pid, "environ")
        config = _config_from_argv(argv)
        cwd = _cwd(pid)
        config_path = os.path.realpath(os.path.join(cwd, config)) if cwd else os.path.realpath(config)
        found.append(
            ContainerdProcess(int(pid), exe, config_path, None if environ is None else _parse_environ(environ))
        )
    return found


def _cwd(pid: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def process_for_config(config_path: str | None) -> ContainerdProcess | None:
    """Return the running containerd that reads ``config_path`` (the default file when None)."""
    wanted = os.path.realpath(config_path or DEFAULT_CONFIG)
    for process in running_containerds():
        if process.config_path == wanted:
            return process
    return None


K3S_CONFIG = "/var/lib/rancher/k3s/agent/etc/containerd/config.toml"
_UNITS = {DEFAULT_CONFIG: "containerd.service", K3S_CONFIG: "k3s.service"}


def systemd_unit_for(config_path: str | None) -> str | None:
    """Name the systemd unit that runs containerd with ``config_path``; None for a config of no unit."""
    return _UNITS.get(config_path or DEFAULT_CONFIG)


def systemd_environment(unit: str) -> dict[str, str] | None:
    """Return the environment systemd gives ``unit`` (its PATH filled in), or None if not known."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None
    try:
        result = subprocess.run(
            [systemctl, "show", unit, "--property=LoadState", "--property=Environment"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    properties = dict(line.partition("=")[::2] for line in result.stdout.splitlines())
    if result.returncode != 0 or properties.get("LoadState") != "loaded":
        return None
    values = {"PATH": SYSTEMD_DEFAULT_PATH}
    for entry in shlex.split(properties.get("Environment", "")):
        name, sep, value = entry.partition("=")
        if sep:
            values[name] = value
    return values


def containerd_environment(config_path: str | None, process: ContainerdProcess | None) -> Environment:
    """Learn containerd's environment: the running process, else its systemd unit, else unknown."""
    if process is not None:
        if process.environ is not None:
            return Environment(process.environ, f"/proc/{process.pid}/environ of the running containerd")
        return Environment(
            None, f"containerd pid {process.pid} runs, but its /proc/{process.pid}/environ is unreadable"
        )
    unit = systemd_unit_for(config_path)
    if unit is None:
        return Environment(None, "no running containerd uses this config")
    values = systemd_environment(unit)
    if values is not None:
        return Environment(values, f"the systemd unit {unit} (containerd is not running)")
    return Environment(None, f"no running containerd uses this config and no systemd unit {unit} was found")
