"""Running a command on the host from the installer's pod: restarting containerd through the host's
init system, and ``ocicrypt doctor`` with the host's view of its files.

The default prefix enters the mount namespace of the host's PID 1 (the pod runs with hostPID), as
kata-deploy does; a test passes its own prefix (``--host-exec``) standing in for the init system.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

DEFAULT_HOST_EXEC = "nsenter --target 1 --mount --"
TIMEOUT = 300.0


@dataclass(frozen=True)
class HostResult:
    """What a host command returned (its output has no secrets: doctor prints none)."""

    status: int
    output: str


@dataclass(frozen=True)
class HostExec:
    """The prefix that runs an argv on the host."""

    prefix: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> HostExec:
        """Split ``--host-exec`` the way a shell would."""
        return cls(tuple(shlex.split(text)))

    def run(self, argv: list[str]) -> HostResult:
        """Run ``argv`` on the host; stdout and stderr together."""
        try:
            done = subprocess.run(
                [*self.prefix, *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT,
                check=False,
            )
        except FileNotFoundError as err:
            return HostResult(127, f"cannot run {err.filename}: not found\n")
        except subprocess.TimeoutExpired:
            return HostResult(124, f"{shlex.join(argv)} did not finish within {TIMEOUT:.0f} s\n")
        return HostResult(done.returncode, done.stdout.decode(errors="replace"))

    def restart(self, units: tuple[str, ...]) -> HostResult:
        """Restart those of ``units`` that are running (``systemctl try-restart``)."""
        return self.run(["systemctl", "try-restart", *units])
