"""Running the installed ``ocicrypt doctor`` and reading its JSON findings."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OCICRYPT = shutil.which("ocicrypt", path=os.path.dirname(sys.executable))
# The command containerd runs (a platform wheel's small client; the doctor names it): not the Python entry.
DECODER = shutil.which("ctd-decoder", path=os.path.dirname(sys.executable))
DEBIAN_CONTAINERD = "/usr/bin/containerd"


@dataclass
class Doctor:
    """One run: exit status, the findings (``--json``), stderr."""

    returncode: int
    findings: list[dict[str, str]]
    stderr: str

    def of(self, check: str) -> list[dict[str, str]]:
        """The findings whose check is ``check`` or starts with ``check.``."""
        return [f for f in self.findings if f["check"] == check or f["check"].startswith(check + ".")]

    def statuses(self, check: str) -> set[str]:
        """The statuses of the findings of ``check``."""
        return {f["status"] for f in self.of(check)}

    def errors(self) -> list[dict[str, str]]:
        """Every error finding."""
        return [f for f in self.findings if f["status"] == "error"]

    def one(self, check: str, status: str) -> dict[str, str]:
        """The single finding of ``check`` with ``status``; fail with all findings otherwise."""
        found = [f for f in self.of(check) if f["status"] == status]
        assert len(found) == 1, f"expected one {status} for {check}, got: {json.dumps(self.findings, indent=1)}"
        return found[0]


def run_doctor(*args: str | Path, stdin: bytes | None = None) -> Doctor:
    """Run ``ocicrypt doctor --json ARGS`` in this process (the installed package; a fresh interpreter per
    run would cost most of the matrix tests' time); the JSON must parse whatever the exit status."""
    from ctd_decoder.tools.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin or b""))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                returncode = main(["doctor", "--json", *map(str, args)])
            except SystemExit as exit_:  # argparse's usage errors
                returncode = int(exit_.code or 0)
    finally:
        sys.stdin = saved_stdin
    stderr = err.getvalue()
    assert "Traceback" not in stderr, stderr
    findings = json.loads(out.getvalue()) if returncode in (0, 1) else []
    return Doctor(returncode, findings, stderr)


def run_doctor_command(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the installed ``ocicrypt doctor ARGS`` as a command (text output)."""
    assert OCICRYPT, "ocicrypt is not installed next to the test interpreter"
    return subprocess.run(
        [OCICRYPT, "doctor", *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def write_node_config(path: Path, keys_dir: Path | None, env: dict[str, str] | None = None) -> Path:
    """A containerd config (version 2) whose two payload IDs run the installed decoder with ``keys_dir``/``env``."""
    lines = ["version = 2", ""]
    args = f'["--decryption-keys-path", {json.dumps(str(keys_dir))}]' if keys_dir is not None else "[]"
    env_list = ", ".join(json.dumps(f"{k}={v}") for k, v in (env or {}).items())
    layer = "application/vnd.oci.image.layer.v1.tar"
    for processor_id, accepts, returns in (
        ("io.containerd.ocicrypt.decoder.v1.tar.gzip", [f"{layer}+gzip+encrypted"], f"{layer}+gzip"),
        ("io.containerd.ocicrypt.decoder.v1.tar", [f"{layer}+encrypted", f"{layer}+zstd+encrypted"], f"{layer}+zstd"),
    ):
        lines += [
            f'[stream_processors."{processor_id}"]',
            f"  accepts = {json.dumps(accepts)}",
            f"  returns = {json.dumps(returns)}",
            f"  path = {json.dumps(DECODER)}",
            f"  args = {args}",
            f"  env = [{env_list}]",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path
