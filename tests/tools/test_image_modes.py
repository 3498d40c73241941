"""The files of the layouts and archives we write have the modes skopeo gives them, from the umask, and
another user reads our images with skopeo exactly when it can read skopeo's own copies.

skopeo (containers/image) creates index.json, oci-layout, manifests and directories 0666/0777 less the
umask; layer and config blobs it chmods to 0644 whatever the umask (under umask 077 they sit in 0700
directories, so nobody else reads them either). We create every file 0666 less the umask.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.keygen import write_key_pair
from support.oci import layer_digests, make_layout, skopeo

LAYERS = [{"etc/hello.txt": b"hello\n"}, {"bin/tool": bytes(range(256)) * 2000}]
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user may enter (pytest's own tmp directories are 0700)."""
    if os.geteuid() != 0:
        pytest.skip("running as another user needs root")
    root = Path(tempfile.mkdtemp(prefix="ocicrypt-modes-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def _with_umask(umask: int, tool: str, *args: str) -> None:
    """Run ``tool ARGS`` under ``umask`` (a shell sets it, so the test process keeps its own)."""
    exe = str(Path(sys.executable).parent / "ocicrypt") if tool == "ocicrypt" else tool
    command = ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", exe, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr


def _modes(layout: Path) -> dict[str, set[int]]:
    """The permission bits in ``layout``, per kind: directories, the top files, the blobs."""
    modes: dict[str, set[int]] = {"directories": {stat.S_IMODE(layout.stat().st_mode)}, "top": set(), "blobs": set()}
    for path in layout.rglob("*"):
        kind = "directories" if path.is_dir() else "blobs" if path.parent.name == "sha256" else "top"
        modes[kind].add(stat.S_IMODE(path.stat().st_mode))
    return modes


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AS_NOBODY, *args], capture_output=True, text=True, timeout=120, check=False)


def test_umask_022_gives_skopeos_modes_and_another_user_copies_our_images(shared: Path) -> None:
    make_layout(shared / "plain", LAYERS)
    _, public, _ = write_key_pair(shared, "k", "p256")
    private = shared / "k.pem"
    _with_umask(0o022, "ocicrypt", "encrypt", "--recipient", f"jwe:{public}", f"oci:{shared / 'plain'}:v1",
                f"oci:{shared / 'enc'}:v1")  # fmt: skip
    _with_umask(0o022, "ocicrypt", "decrypt", "--key", str(private), f"oci:{shared / 'enc'}:v1",
                f"oci:{shared / 'dec'}:v1")  # fmt: skip
    _with_umask(0o022, "skopeo", "copy", "-q", f"oci:{shared / 'enc'}:v1", f"oci:{shared / 'skopeo'}:v1")
    expected = {"directories": {0o755}, "top": {0o644}, "blobs": {0o644}}
    assert _modes(shared / "skopeo") == expected, "skopeo itself writes other modes: this test's premise is wrong"
    assert _modes(shared / "enc") == expected
    assert _modes(shared / "dec") == expected
    inspected = _as_nobody("skopeo", "inspect", f"oci:{shared / 'enc'}:v1")
    assert inspected.returncode == 0, inspected.stderr
    (shared / "theirs").mkdir(mode=0o777)
    (shared / "theirs").chmod(0o777)
    copied = _as_nobody("skopeo", "copy", "-q", f"oci:{shared / 'dec'}:v1", f"oci:{shared / 'theirs' / 'copy'}:v1")
    assert copied.returncode == 0, copied.stderr
    assert layer_digests(shared / "theirs" / "copy") == layer_digests(shared / "plain")


def test_umask_077_keeps_our_image_as_private_as_skopeos(shared: Path) -> None:
    make_layout(shared / "plain", LAYERS)
    _with_umask(0o077, "ocicrypt", "decrypt", f"oci:{shared / 'plain'}:v1", f"oci:{shared / 'ours'}:v1")
    _with_umask(0o077, "skopeo", "copy", "-q", f"oci:{shared / 'plain'}:v1", f"oci:{shared / 'skopeo'}:v1")
    ours, theirs = _modes(shared / "ours"), _modes(shared / "skopeo")
    assert ours == {"directories": {0o700}, "top": {0o600}, "blobs": {0o600}}
    assert theirs["directories"] == ours["directories"] and theirs["top"] == ours["top"]
    for layout in ("ours", "skopeo"):
        refused = _as_nobody("skopeo", "inspect", f"oci:{shared / layout}:v1")
        assert refused.returncode != 0 and "permission denied" in refused.stderr, (layout, refused.stderr)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_oci_archive_file_and_members_follow_the_umask_as_skopeos(shared: Path, umask: int) -> None:
    make_layout(shared / "plain", LAYERS)
    _with_umask(umask, "ocicrypt", "decrypt", f"oci:{shared / 'plain'}:v1", f"oci-archive:{shared / 'ours.tar'}:v1")
    _with_umask(umask, "skopeo", "copy", "-q", f"oci:{shared / 'plain'}:v1", f"oci-archive:{shared / 'skopeo.tar'}:v1")
    for name in ("ours.tar", "skopeo.tar"):
        assert stat.S_IMODE((shared / name).stat().st_mode) == 0o666 & ~umask, name
    with tarfile.open(shared / "ours.tar") as archive:
        members = {member.name: (member.isdir(), member.mode) for member in archive}
    assert {mode for is_dir, mode in members.values() if not is_dir} == {0o666 & ~umask}
    assert {mode for is_dir, mode in members.values() if is_dir} == {0o777 & ~umask}
    assert members["blobs/sha256"][0] and len(members) > 5
    if umask == 0o022:
        with tarfile.open(shared / "skopeo.tar") as archive:
            assert {(m.isdir(), stat.S_IMODE(m.mode)) for m in archive} == set(members.values())
    skopeo("inspect", f"oci-archive:{shared / 'ours.tar'}:v1")
