"""The failure path keeps stdout open until containerd has reaped the decoder (see
ctd_decoder.decoder.exit_race): containerd reads stdout to end of file before it looks at the exit
status, so an early end of file turns our message into ``wrong diff id``. The real race is tested
against containerd in tests/e2e/test_lost_diagnostics.py.
"""

from __future__ import annotations

import os
import select
import subprocess
import time

from support.decoder import decoder_command, run_decoder

from ctd_decoder.decoder.exit_race import AFTER_REAP_MARGIN, MEDIA_TYPE_ENV, REAP_WAIT_LIMIT

MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"


def start_failing_decoder(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The decoder without fd 3 (it fails at once), stdout and stderr pipes, stdin empty."""
    return subprocess.Popen(
        decoder_command(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )


def at_end_of_file(pipe: object, timeout: float) -> bool:
    readable, _, _ = select.select([pipe], [], [], timeout)
    return bool(readable) and not os.read(pipe.fileno(), 1)  # type: ignore[attr-defined]


def test_failure_under_containerd_holds_stdout_until_the_decoder_is_reaped() -> None:
    process = start_failing_decoder({MEDIA_TYPE_ENV: MEDIA_TYPE})
    assert process.stdout is not None and process.stderr is not None
    stderr = process.stderr.read()  # end of file: the decoder exited and the holder keeps no stderr
    assert b"read payload: read configFd: bad file descriptor" in stderr
    time.sleep(0.2)
    assert not at_end_of_file(process.stdout, 0), "stdout ended before the exit status was collected"
    assert process.wait(10) == 1
    assert at_end_of_file(process.stdout, AFTER_REAP_MARGIN + 2.0)
    process.stdout.close()
    process.stderr.close()


def test_unreaped_decoder_releases_stdout_after_the_bound() -> None:
    process = start_failing_decoder({MEDIA_TYPE_ENV: MEDIA_TYPE})
    assert process.stdout is not None and process.stderr is not None
    started = time.monotonic()
    assert at_end_of_file(process.stdout, REAP_WAIT_LIMIT + AFTER_REAP_MARGIN + 5.0)
    assert time.monotonic() - started >= REAP_WAIT_LIMIT * 0.9
    assert process.wait(10) == 1
    process.stdout.close()
    process.stderr.close()


def test_failure_outside_containerd_ends_stdout_at_exit() -> None:
    """Without containerd's media type variable nobody holds stdout: callers that read to end of file
    before reaping (subprocess.run) are not delayed."""
    assert MEDIA_TYPE_ENV not in os.environ
    started = time.monotonic()
    result = run_decoder(b"", None)
    assert result.returncode == 1
    assert time.monotonic() - started < REAP_WAIT_LIMIT
