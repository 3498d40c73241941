"""Real signals at many points of an OpenPGP unwrap: no GnuPG home, no gpg-agent, no traceback is left.

The decoder names its homes ``<scratch.DEFAULT_PARENT>/ctd-gpg-<pid>.<start>-*``, so each run's leftovers are found by
its pid. SIGTERM, SIGHUP and SIGINT are sent at spread-out delays after the home appeared (agent
start, key import, gpg run, clean-up); SIGKILL, which no handler sees, at several delays, after
which the agent must die with the decoder and the next decoder run must remove the home.
Cost: about 30 decoder runs, 30-60 s.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.decoder import run_decoder, start_decoder
from support.fixtures import fixtures_dir
from support.gpgkeys import require_gpg
from support.layers import jwe_layer
from support.waiting import eventually

from ctd_decoder.decoder.warm.protocol import DISABLED, SOCKET_ENV
from ctd_decoder.ocicrypt.keywrap.pgp.scratch import DEFAULT_PARENT, GPG_HOME_PREFIX

FIXTURE = "pgp-no-passphrase"
# Seconds after the run's GnuPG home appeared: while the agent starts, keys are imported, gpg decrypts.
DELAYS = (0.0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.35)


def _homes_of(pid: int) -> list[str]:
    return glob.glob(os.path.join(DEFAULT_PARENT, f"{GPG_HOME_PREFIX}{pid}.*"))


def _processes_naming(prefix: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if prefix.encode() in cmdline and state != "Z":
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _wait_for_home(process: subprocess.Popen[bytes]) -> None:
    assert eventually(lambda: bool(_homes_of(process.pid)) or process.poll() is not None, timeout=30)


def _start(layer: Path, payload: bytes) -> subprocess.Popen[bytes]:
    with open(layer, "rb") as stdin:
        return start_decoder(stdin, payload, env={SOCKET_ENV: DISABLED})


@pytest.fixture(scope="module")
def pgp_case() -> tuple[Path, bytes]:
    require_gpg()
    directory = fixtures_dir() / FIXTURE
    return directory / "layer.enc", (directory / "payload.bin").read_bytes()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signal_at_any_time_during_unwrap_leaves_no_home_agent_or_traceback(
    pgp_case: tuple[Path, bytes], signum: int
) -> None:
    layer, payload = pgp_case
    interrupted = 0
    delays = DELAYS
    for _ in range(3):  # a busy machine may see the unwrap end before most delays: then closer together
        for delay in delays:
            process = _start(layer, payload)
            _wait_for_home(process)
            time.sleep(delay)
            process.send_signal(signum)
            _, stderr = process.communicate(timeout=60)
            text = stderr.decode(errors="replace")
            assert "Traceback" not in text and "internal error" not in text, text
            if process.returncode != 0:
                # -signum: the layer was done and the decoder's handlers gone when the signal came.
                assert process.returncode in (128 + signum, -signum), (delay, process.returncode, text)
                interrupted += process.returncode == 128 + signum
            assert _homes_of(process.pid) == [], f"home left after {signal.Signals(signum).name} at {delay} s"
            prefix = os.path.join(DEFAULT_PARENT, f"{GPG_HOME_PREFIX}{process.pid}.")
            assert eventually(lambda prefix=prefix: not _processes_naming(prefix)), _processes_naming(prefix)
        if interrupted >= 3:
            break
        delays = tuple(delay / 4 for delay in delays)
    assert interrupted >= 3, "the signals came too late to test anything"


def test_sigkill_mid_unwrap_leaves_no_agent_and_the_next_run_removes_the_home(pgp_case: tuple[Path, bytes]) -> None:
    layer, payload = pgp_case
    genuine = jwe_layer(b"next run")
    left_homes = 0
    for delay in DELAYS:
        process = _start(layer, payload)
        _wait_for_home(process)
        time.sleep(delay)
        process.kill()
        process.communicate(timeout=60)
        prefix = os.path.join(DEFAULT_PARENT, f"{GPG_HOME_PREFIX}{process.pid}.")
        assert eventually(lambda prefix=prefix: not _processes_naming(prefix)), (
            f"agent outlived SIGKILL: {_processes_naming(prefix)}"
        )
        left_homes += bool(_homes_of(process.pid))
        result = run_decoder(genuine.blob, genuine.payload(), env={SOCKET_ENV: DISABLED})
        assert result.returncode == 0, result.stderr
        assert _homes_of(process.pid) == [], "the next decoder run did not remove the killed run's home"
    assert left_homes >= 2, "SIGKILL never landed while a home existed"
