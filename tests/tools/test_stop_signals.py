"""SIGTERM, SIGHUP and SIGINT in the middle of writing a 200 MiB layer: exit 128 + the signal number, one
line on stderr, no destination, no hidden directory beside it, no temporary file (TMPDIR included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.keygen import write_key_pair
from support.oci import make_layout, ocicrypt

BIG_LAYER = 200 << 20
MIDWAY = 16 << 20  # the signal is sent once this much of the new blob has been written


@dataclass
class Images:
    """A plain image with one 200 MiB layer, the same encrypted for ``public``, and the keys."""

    root: Path
    plain: Path
    encrypted: Path
    private: Path
    public: Path
    other_public: Path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    root = tmp_path_factory.mktemp("signals")
    private, public, _ = write_key_pair(root, "k", "p256")
    _, other_public, _ = write_key_pair(root, "other", "p256")
    make_layout(root / "plain", [{"blob": os.urandom(BIG_LAYER)}], compress=False)
    ocicrypt("encrypt", "--recipient", f"jwe:{public}", f"oci:{root / 'plain'}:v1", f"oci:{root / 'enc'}:v1")
    yield Images(root, root / "plain", root / "enc", private, public, other_public)


def _command(images: Images, name: str, destination: str) -> list[str]:
    plain, encrypted = f"oci:{images.plain}:v1", f"oci:{images.encrypted}:v1"
    if name == "encrypt":
        return ["encrypt", "--recipient", f"jwe:{images.public}", plain, destination]
    if name == "decrypt":
        return ["decrypt", "--key", str(images.private), encrypted, destination]
    action = name.split()[1]
    key_args = ["--key", str(images.private), "--recipient", f"jwe:{images.other_public}"]
    return ["recipients", action, *key_args, encrypted, destination]


def _largest_unfinished_blob(directory: Path) -> int:
    sizes = [0]
    for blob in directory.glob(".out*.ocicrypt-*/layout/blobs/sha256/.blob-*"):
        try:
            sizes.append(blob.stat().st_size)
        except FileNotFoundError:
            continue
    return max(sizes)


def _stopped_midway(args: list[str], work: Path, signum: int) -> tuple[int, str]:
    """Run ``ocicrypt ARGS`` with TMPDIR in ``work``, send ``signum`` once a new blob is MIDWAY bytes long."""
    exe = Path(sys.executable).parent / "ocicrypt"
    env = dict(os.environ, TMPDIR=str(work / "tmp"))
    process = subprocess.Popen([str(exe), *args], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while _largest_unfinished_blob(work) < MIDWAY and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "ocicrypt finished before the signal: nothing was tested"
    assert _largest_unfinished_blob(work) >= MIDWAY, "no blob was being written after 120 s"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


# Every image command into a directory; the two that write whole new layers into an archive too.
CASES = [(c, "oci") for c in ("encrypt", "decrypt", "recipients add", "recipients rotate")]
CASES += [(c, "oci-archive") for c in ("encrypt", "decrypt")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize(("command", "transport"), CASES)
def test_stop_signal_midway_leaves_nothing_behind(
    images: Images, tmp_path: Path, command: str, signum: signal.Signals, transport: str
) -> None:
    (tmp_path / "tmp").mkdir()
    destination = f"{transport}:{tmp_path / 'out'}"
    status, stderr = _stopped_midway(_command(images, command, destination), tmp_path, signum)
    assert status == 128 + signum, stderr
    assert stderr == f"ocicrypt: stopped by {signum.name}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"], "a destination or hidden directory was left"
    assert list((tmp_path / "tmp").iterdir()) == [], "a temporary file was left in TMPDIR"


def test_stop_signal_while_reading_an_archive_source_removes_its_unpacked_copy(images: Images, tmp_path: Path) -> None:
    archive = tmp_path / "enc.tar"
    ocicrypt("decrypt", "--key", str(images.private), f"oci:{images.encrypted}:v1", f"oci-archive:{archive}:v1")
    work = tmp_path / "work"
    (work / "tmp").mkdir(parents=True)
    args = ["encrypt", "--recipient", f"jwe:{images.public}", f"oci-archive:{archive}:v1", f"oci:{work / 'out'}"]
    status, stderr = _stopped_midway(args, work, signal.SIGTERM)
    assert (status, stderr) == (143, "ocicrypt: stopped by SIGTERM\n")
    assert sorted(p.name for p in work.iterdir()) == ["tmp"]
    assert list((work / "tmp").iterdir()) == [], "the unpacked oci-archive was left in TMPDIR"


def test_sigint_still_says_interrupted_and_an_ignored_sighup_is_left_ignored(images: Images, tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    args = _command(images, "encrypt", f"oci:{tmp_path / 'out'}")
    status, stderr = _stopped_midway(args, tmp_path, signal.SIGINT)
    assert (status, stderr) == (130, "ocicrypt: interrupted\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    # Under nohup (SIGHUP ignored) a hang-up does not stop the command: it completes.
    exe = Path(sys.executable).parent / "ocicrypt"
    process = subprocess.Popen(
        ["nohup", str(exe), *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path
    )
    deadline = time.monotonic() + 120
    while _largest_unfinished_blob(tmp_path) < MIDWAY and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert (tmp_path / "out" / "index.json").is_file()


def test_stop_signal_while_inspect_unpacks_an_archive_removes_the_unpacked_copy(images: Images, tmp_path: Path) -> None:
    archive = tmp_path / "plain.tar"
    ocicrypt("decrypt", f"oci:{images.plain}:v1", f"oci-archive:{archive}:v1")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    exe = Path(sys.executable).parent / "ocicrypt"
    env = dict(os.environ, TMPDIR=str(scratch))
    process = subprocess.Popen([str(exe), "inspect", f"oci-archive:{archive}:v1"], stderr=subprocess.PIPE, text=True,
                               stdout=subprocess.DEVNULL, env=env)  # fmt: skip
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        unpacked = [blob.stat().st_size for blob in scratch.glob("ocicrypt-archive-*/blobs/sha256/*")]
        if max(unpacked, default=0) >= MIDWAY:
            break
        time.sleep(0.01)
    assert process.poll() is None, "inspect finished before the signal: nothing was tested"
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=120)
    assert (process.returncode, stderr) == (129, "ocicrypt: stopped by SIGHUP\n")
    assert list(scratch.iterdir()) == [], "the unpacked oci-archive was left in TMPDIR"
