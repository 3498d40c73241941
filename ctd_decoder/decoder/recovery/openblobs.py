"""The content-store blobs a process holds open (containerd holds the layer it feeds the decoder)."""

from __future__ import annotations

import os
import re

CONTENT_PLUGIN_DIR = "io.containerd.content.v1.content"
# <root>/io.containerd.content.v1.content/blobs/sha256/<hex>
_BLOB_PATH = re.compile(r"^(/.*/" + re.escape(CONTENT_PLUGIN_DIR) + r")/blobs/sha256/([0-9a-f]{64})$")
MAX_FDS_EXAMINED = 65536


class OpenBlob:
    """One content-store blob open in another process, reachable through ``/proc/<pid>/fd/<n>``."""

    __slots__ = ("digest", "proc_path", "size", "store")

    def __init__(self, proc_path: str, store: str, digest: str, size: int) -> None:
        self.proc_path = proc_path
        self.store = store  # the content store's directory (the one holding blobs/)
        self.digest = digest
        self.size = size

    @property
    def blobs_dir(self) -> str:
        """The directory of the store's sha256 blobs."""
        return os.path.join(self.store, "blobs", "sha256")


def open_blobs(pid: int) -> list[OpenBlob]:
    """Every content-store blob ``pid`` holds open, once per digest; [] if its descriptors cannot be read."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return []
    found: dict[str, OpenBlob] = {}
    for name in names[:MAX_FDS_EXAMINED]:
        proc_path = f"{fd_dir}/{name}"
        try:
            target = os.readlink(proc_path)
        except OSError:
            continue
        match = _BLOB_PATH.match(target)
        if match is None:
            continue  # also a removed blob: its link ends in " (deleted)"
        digest = "sha256:" + match.group(2)
        if digest in found:
            continue
        try:
            size = os.stat(proc_path).st_size
        except OSError:
            continue
        found[digest] = OpenBlob(proc_path, match.group(1), digest, size)
    return list(found.values())
