"""Putting the self-contained bundle on the host: a copy below BUNDLE_DIR and two links in BIN_DIR
(``ctd-decoder``, the path containerd runs, and ``ocicrypt``; the bundle's executable picks its
command by the name it is started as).
"""

from __future__ import annotations

import os
import sys

from .fsops import atomic_write, make_dirs, sha256_file
from .ledger import InstallLedger
from .paths import BIN_DIR, BUNDLE_DIR, DECODER, OCICRYPT_TOOL, HostLayout

EXECUTABLE = "ctd-decoder"
LINKS = {DECODER: f"../lib/ctd-decoder/{EXECUTABLE}", OCICRYPT_TOOL: f"../lib/ctd-decoder/{EXECUTABLE}"}


class BundleError(ValueError):
    """The bundle cannot be installed (one line)."""


def default_bundle() -> str | None:
    """The bundle this process runs from, when it is the frozen executable of the node image."""
    if getattr(sys, "frozen", False):
        return os.path.dirname(os.path.realpath(sys.executable))
    return None


def _source_files(bundle: str) -> dict[str, str]:
    """Relative path -> local path of every file and symlink in the bundle."""
    if not os.path.isfile(os.path.join(bundle, EXECUTABLE)):
        raise BundleError(f"{bundle} has no {EXECUTABLE}: pass the bundle built by packaging/build.sh")
    found: dict[str, str] = {}
    for directory, dirnames, filenames in os.walk(bundle):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(directory, d))]:
            local = os.path.join(directory, name)
            found[os.path.relpath(local, bundle)] = local
    return found


def check_bundle(layout: HostLayout, bundle: str, old: InstallLedger | None) -> None:
    """Refuse before anything is written if a path the bundle goes to holds a file the previous
    install did not write."""
    previous_files = old.files if old else {}
    previous_links = old.links if old else {}
    targets = [f"{BUNDLE_DIR}/{relative}" for relative in _source_files(bundle)] + list(LINKS)
    for host_path in targets:
        local = layout.local(host_path)
        if not os.path.lexists(local):
            continue
        if os.path.islink(local):
            ours = previous_links.get(host_path) == os.readlink(local)
        else:
            ours = previous_files.get(host_path) == sha256_file(local)
        if not ours:
            raise BundleError(f"{host_path} exists and was not installed by ocicrypt node: remove it first")


def install_bundle(layout: HostLayout, bundle: str, old: InstallLedger | None, new: InstallLedger) -> bool:
    """Copy the bundle and make the links; record them in ``new``; return whether anything changed.

    A file at one of these paths that the previous install did not write is never replaced.
    """
    previous_files = old.files if old else {}
    previous_links = old.links if old else {}
    changed = False
    wanted: set[str] = set()
    for relative, source in _source_files(bundle).items():
        host_path = f"{BUNDLE_DIR}/{relative}"
        local = layout.local(host_path)
        wanted.add(host_path)
        make_dirs(os.path.dirname(local), 0o755, new.dirs, os.path.dirname(host_path))
        if os.path.islink(source):
            target = os.readlink(source)
            if os.path.lexists(local) and previous_links.get(host_path) != os.readlink(local):
                raise BundleError(f"{host_path} exists and was not installed by ocicrypt node: remove it first")
            if not os.path.islink(local) or os.readlink(local) != target:
                if os.path.lexists(local):
                    os.unlink(local)
                os.symlink(target, local)
                changed = True
            new.links[host_path] = target
            continue
        current = sha256_file(local) if not os.path.islink(local) else None
        if os.path.lexists(local) and (current is None or previous_files.get(host_path) != current):
            raise BundleError(f"{host_path} exists and was not installed by ocicrypt node: remove it first")
        digest = sha256_file(source)
        assert digest is not None
        if current != digest:
            with open(source, "rb") as handle:
                atomic_write(local, handle.read(), os.stat(source).st_mode & 0o755)
            changed = True
        new.files[host_path] = digest
    for host_path in sorted(set(previous_files) | set(previous_links)):
        if not host_path.startswith(BUNDLE_DIR + "/") or host_path in wanted:
            continue
        local = layout.local(host_path)  # a file of the previous bundle version, removed if unchanged
        if (os.path.islink(local) and os.readlink(local) == previous_links.get(host_path)) or (
            not os.path.islink(local) and sha256_file(local) == previous_files.get(host_path)
        ):
            os.unlink(local)
            changed = True
    make_dirs(layout.local(BIN_DIR), 0o755, new.dirs, BIN_DIR)
    for host_path, target in LINKS.items():
        local = layout.local(host_path)
        if os.path.lexists(local):
            if not os.path.islink(local) or previous_links.get(host_path) != os.readlink(local):
                raise BundleError(f"{host_path} exists and was not installed by ocicrypt node: remove it first")
            if os.readlink(local) == target:
                new.links[host_path] = target
                continue
            os.unlink(local)
        os.symlink(target, local)
        new.links[host_path] = target
        changed = True
    return changed
