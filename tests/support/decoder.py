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
from typing import IO


def installed_python_decoder() -> str | None:
    """The venv's Python ``ctd-decoder``: ``ctd-decoder-python`` where a platform wheel made ``ctd-decoder`` the
    small warm client (setup.py), else ``ctd-decoder`` itself (a pure wheel); ``$CTD_DECODER_EXE`` overrides."""
    here = os.path.dirname(sys.executable)
    return (
        os.environ.get("CTD_DECODER_EXE")
        or shutil.which("ctd-decoder-python", path=here)
        or shutil.which("ctd-decoder", path=here)
    )


DECODER = installed_python_decoder()


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


def with_fd3(fd: int, argv: list[str]) -> list[str]:
    """Return an argv that runs ``argv`` with descriptor ``fd`` moved to fd 3 (pass ``fd`` in pass_fds).

    bash moves it and execs, so the decoder keeps the pid (and parent) bash had. Not a ``preexec_fn``:
    that forces a plain fork, and with this process's gRPC channels open grpc's fork handlers can abort
    the child before it execs.
    """
    return ["bash", "-c", f'exec "$@" 3<&{fd} {fd}<&-', "bash", *argv]


def start_decoder(
    stdin: int | IO[bytes],
    payload: bytes | None,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    stdout: int | IO[bytes] | None = subprocess.PIPE,
    stderr: int | IO[bytes] | None = subprocess.PIPE,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start the decoder as containerd does and return it running: ``payload`` is written into a pipe
    whose read end is the child's fd 3 (None: fd 3 closed), ``stdin`` a file object, a descriptor or
    ``subprocess.PIPE``; the caller closes what it passed in. ``env`` is added to this environment.

    ``command`` runs another decoder executable (a Go reference, the small warm client) the same way.
    """
    argv = command or decoder_command()
    pass_fds: tuple[int, ...] = ()
    if payload is not None:
        read_end, write_end = os.pipe()
        argv, pass_fds = with_fd3(read_end, argv), (read_end,)
    try:
        process = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            pass_fds=pass_fds,
        )
    except BaseException:
        if payload is not None:
            os.close(write_end)
        raise
    finally:
        if payload is not None:
            os.close(read_end)
    if payload is not None:

        def feed() -> None:
            # suppress outermost: closing the pipe flushes, which fails too when the child never read fd 3.
            with contextlib.suppress(BrokenPipeError), os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)

        # A thread, so that a payload larger than the pipe does not block before the child reads it.
        threading.Thread(target=feed, daemon=True).start()
    return process


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
    argv = (command or decoder_command()) + (args or [])
    stdin = open(layer, "rb") if isinstance(layer, Path) else subprocess.PIPE  # noqa: SIM115
    try:
        process = start_decoder(stdin, payload, env=env, command=argv, cwd=cwd)
        stdout, stderr = process.communicate(None if isinstance(layer, Path) else layer, timeout=timeout)
    finally:
        if isinstance(layer, Path):
            stdin.close()  # type: ignore[union-attr]
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
        with_fd3(read_end, [sys.executable, "-c", _RECORD_MODULES, str(record), *decoder_command()]),
        input=layer,
        capture_output=True,
        pass_fds=(read_end,),
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )
    os.close(read_end)
    result = Result(process.returncode, process.stdout, process.stderr.decode("utf-8", "replace"))
    modules = {name.split(".")[0] for name in json.loads(record.read_text())} if record.exists() else set()
    return result, modules
