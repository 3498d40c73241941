"""The throwaway layer a waiting child decodes before it waits (ctd_decoder/decoder/warm/rehearsal.py).

What it is for: a child forked from the server writes to (and so copies) hundreds of the server's pages on its
first layer. Here the real pool is compared with children forked on request: the page faults a layer costs a
rehearsed child, counted from /proc while the layer waits for the end of its input, against what a child forked
for the layer has taken by the same point. And the rehearsal itself, in a process of its own: it decodes through
the decoder's path, lends fds 0-3 out and gives them back, prints nothing, and keeps nothing of its key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.layer_memory import waits_for_input
from support.layers import jwe_layer
from support.proc import minor_faults
from support.waiting import eventually
from support.warm import WarmServer, start_blocked_client, waits_in_epoll

from ctd_decoder.decoder.warm.pool import DEFAULT_SIZE, POOL_ENV

SCRIPT = r"""
import contextlib, json, os, sys, time
from ctd_decoder.decoder.warm.handshake import REQUEST_TIMEOUT
from ctd_decoder.decoder.warm.rehearsal import Rehearsal, make_rehearsal, rehearse
from ctd_decoder.ocicrypt.keys import parse_private_key

def identities():
    found = {}
    for fd in range(4):
        try:
            info = os.fstat(fd)
        except OSError:
            found[fd] = None
        else:
            found[fd] = [info.st_dev, info.st_ino]
    return found

fd3, which, report = sys.argv[1:]
if fd3 == "fd3-open":  # as a server under systemd has it (its listening socket, before it is moved)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 3)
else:  # as a waiting child has it
    with contextlib.suppress(OSError):
        os.close(3)
before = identities()
rehearsal = make_rehearsal()
if which == "broken":
    rehearsal = Rehearsal(rehearsal.blob, rehearsal.payload[: len(rehearsal.payload) // 2], rehearsal.key_pem)
started = time.monotonic()
decoded = rehearse(rehearsal)
# It serves itself a handshake up to a go-ahead that never comes: it must not wait for a client's time-out.
assert time.monotonic() - started < REQUEST_TIMEOUT / 2, time.monotonic() - started
result = {"decoded": decoded, "same": identities() == before, "cached_keys": parse_private_key.cache_info().currsize}
with open(report, "w") as out:
    json.dump(result, out)
"""


def _rehearse_in_a_process(tmp_path: Path, fd3: str, which: str) -> tuple[dict[str, object], bytes, bytes]:
    report = tmp_path / f"{fd3}-{which}.json"
    with open(os.devnull, "rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, fd3, which, str(report)],
            stdin=stdin,
            capture_output=True,
            timeout=120,
            cwd=tmp_path,  # the installed package, not the checkout's
        )
    assert done.returncode == 0, done.stderr
    return json.loads(report.read_text()), done.stdout, done.stderr


def test_rehearsal_decodes_prints_nothing_keeps_no_key_and_gives_fds_0_to_3_back(tmp_path: Path) -> None:
    for fd3 in ("fd3-open", "fd3-closed"):
        result, stdout, stderr = _rehearse_in_a_process(tmp_path, fd3, "whole")
        assert result == {"decoded": True, "same": True, "cached_keys": 0}, (fd3, result, stderr)
        assert (stdout, stderr) == (b"", b""), fd3


def test_rehearsal_that_cannot_decode_says_so_and_still_gives_fds_back(tmp_path: Path) -> None:
    result, stdout, stderr = _rehearse_in_a_process(tmp_path, "fd3-open", "broken")
    assert result == {"decoded": False, "same": True, "cached_keys": 0}, (result, stderr)
    assert (stdout, stderr) == (b"", b"")


def _faults_of_a_layer(server: WarmServer, idle_faults: dict[int, int]) -> tuple[int, int]:
    """Start a layer whose stdin stays open; once its child has read what there is and waits, return that
    child's pid and its page faults since it was idle (since its fork if it was not in ``idle_faults``)."""
    layer = jwe_layer(os.urandom(8192))
    client, stdin_write = start_blocked_client(layer, server.env, head=4096)
    try:
        assert eventually(lambda: len(server.children()) == 1, timeout=20), server.lines
        (child,) = server.children()
        waited = eventually(lambda: waits_for_input(child, stdin_write), timeout=20)
        assert waited, "the layer's child never waited for more input"
        faults = minor_faults(child) - idle_faults.get(child, 0)
        os.write(stdin_write, layer.blob[4096:])
    finally:
        os.close(stdin_write)
    stdout, stderr = client.communicate(timeout=30)
    assert (client.returncode, stdout) == (0, layer.plaintext), stderr
    return child, faults


def test_a_rehearsed_waiting_child_takes_the_client_itself_and_copies_few_pages(tmp_path: Path) -> None:
    pooled = WarmServer(tmp_path / "pool")
    unpooled = WarmServer(tmp_path / "no-pool", {POOL_ENV: "0"})
    try:
        assert eventually(lambda: len(pooled.waiting_children()) == DEFAULT_SIZE, timeout=20), pooled.lines
        waiting = pooled.waiting_children()
        rehearsed_all = eventually(lambda: all(waits_in_epoll(pid) for pid in waiting), timeout=20)
        assert rehearsed_all, "the pool never finished rehearsing"
        idle_faults = {pid: minor_faults(pid) for pid in waiting}
        child, rehearsed = _faults_of_a_layer(pooled, idle_faults)
        assert child in waiting, "the layer did not go to a waiting child"
        _, forked = _faults_of_a_layer(unpooled, {})
    finally:
        pooled.stop()
        unpooled.stop()
    # Measured: ~100 against ~800 (the child forked on request copies the server's pages as it goes).
    assert rehearsed * 3 < forked, (rehearsed, forked)
