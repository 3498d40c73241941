"""Run the installed ``ctd-decoder`` executable exactly as containerd does.

stdin is the encrypted layer, stdout is read back, and the payload (if any) is the read end of a
pipe that appears as fd 3 in the child; with no payload, fd 3 is not open at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

DECODER = os.environ.get("CTD_DECODER_EXE") or shutil.which("ctd-decoder", path=os.path.dirname(sys.executable))


@dataclass
class Result:
    """What the decoder did."""

    returncode: int
    stdout: bytes
    stderr: str


def decoder_command() -> list[str]:
    """Return the argv prefix of the decoder under test."""
    if not DECODER:
        raise RuntimeError("ctd-decoder is not installed next to the test interpreter")
    return [DECODER]


def run_decoder(
    layer: bytes | Path,
    payload: bytes | None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    command: list[str] | None = None,
) -> Result:
    """Run the decoder on ``layer`` with ``payload`` on fd 3 (None: fd 3 closed).

    ``command`` runs another decoder executable (a Go reference) exactly the same way.
    """
    full_env = {**os.environ, **(env or {})}
    pass_fds: tuple[int, ...] = ()
    preexec = None
    writer = None
    if payload is not None:
        read_end, write_end = os.pipe()

        def preexec() -> None:
            os.dup2(read_end, 3)

        pass_fds = (3,)

        def feed() -> None:
            with os.fdopen(write_end, "wb") as pipe, contextlib.suppress(BrokenPipeError):
                pipe.write(payload)

        writer = threading.Thread(target=feed, daemon=True)
    stdin = open(layer, "rb") if isinstance(layer, Path) else subprocess.PIPE  # noqa: SIM115
    try:
        process = subprocess.Popen(
            (command or decoder_command()) + (args or []),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            pass_fds=pass_fds,
            preexec_fn=preexec,
        )
        if payload is not None:
            os.close(read_end)
            assert writer is not None
            writer.start()
        stdout, stderr = process.communicate(None if isinstance(layer, Path) else layer, timeout=timeout)
    finally:
        if isinstance(layer, Path):
            stdin.close()  # type: ignore[union-attr]
    if writer is not None:
        writer.join(timeout)
    return Result(process.returncode, stdout, stderr.decode("utf-8", "replace"))


_RECORD_MODULES = (
    "import atexit, json, runpy, sys\n"
    "record, script = sys.argv[1], sys.argv[2]\n"
    "sys.argv = sys.argv[2:]\n"
    "atexit.register(lambda: open(record, 'w').write(json.dumps(sorted(sys.modules))))\n"
    "runpy.run_path(script, run_name='__main__')\n"
)


def modules_imported(
    record: Path, layer: bytes, payload: bytes, env: dict[str, str] | None = None
) -> tuple[Result, set[str]]:
    """Run the installed decoder script, recording every top-level package it imported by exit."""
    read_end, write_end = os.pipe()
    os.write(write_end, payload)
    os.close(write_end)
    process = subprocess.run(
        [sys.executable, "-c", _RECORD_MODULES, str(record), *decoder_command()],
        input=layer,
        capture_output=True,
        pass_fds=(3,),
        preexec_fn=lambda: os.dup2(read_end, 3),
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )
    os.close(read_end)
    result = Result(process.returncode, process.stdout, process.stderr.decode("utf-8", "replace"))
    modules = {name.split(".")[0] for name in json.loads(record.read_text())} if record.exists() else set()
    return result, modules
