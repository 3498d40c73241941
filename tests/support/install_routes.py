"""The install routes and the paths their documents name: the node README's table (tarball and Debian
package), the snippets each route installs, and the absolute paths in a doctor's fix lines."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .snippets import PACKAGING

NODE_README = PACKAGING / "NODE-README.md"
ROUTES = ("tarball", "deb")  # the node README's path columns, in its order
PREFIXES = {"tarball": "/usr/local", "deb": "/usr"}
EXAMPLES = "share/doc/ctd-decoder/examples"  # below the prefix: the README's EXAMPLES
# An absolute path in prose: a slash not inside a word (so not the one in application/vnd...).
_ABSOLUTE = re.compile(r"(?<![\w.+-])/(?:[\w.+-]+/)*[\w.+-]*")
_CODE = re.compile(r"`([^`]+)`")
_EXAMPLE = re.compile(r"`EXAMPLES/([^`]+)`")


def named_paths(text: str) -> list[str]:
    """The absolute paths named in ``text``, in order, without a sentence's trailing full stop or comma."""
    return [match.rstrip(".,") for match in _ABSOLUTE.findall(text) if len(match) > 1]


def node_readme_paths() -> dict[str, list[str]]:
    """Every path of the node README's route table, per route column."""
    paths: dict[str, list[str]] = {route: [] for route in ROUTES}
    for line in NODE_README.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 1 + len(ROUTES) or not cells[1].startswith("`/"):
            continue
        for route, cell in zip(ROUTES, cells[1:], strict=True):
            paths[route] += [code for code in _CODE.findall(cell) if code.startswith("/")]
    assert all(paths.values()), f"no route table in {NODE_README}"
    return paths


def in_stage(stage: Path, path: str) -> Path:
    """Where the absolute ``path`` of an installed system is in the staged tree ``stage``."""
    return stage / path.lstrip("/")


def exists_in_stage(stage: Path, path: str) -> bool:
    """Whether ``path`` exists in ``stage``, a symbolic link counting only if it resolves inside the stage."""
    staged = in_stage(stage, path)
    if not os.path.lexists(staged):
        return False
    if staged.is_symlink():
        target = os.readlink(staged)
        if os.path.isabs(target):
            return exists_in_stage(stage, target)
        resolved = Path(os.path.normpath(staged.parent / target))
        return resolved.is_relative_to(stage) and resolved.exists()
    return True


def node_readme_examples(route: str) -> list[str]:
    """The snippet files the node README names as ``EXAMPLES/...``, as absolute paths of ``route``."""
    names = sorted(set(_EXAMPLE.findall(NODE_README.read_text())))
    assert names, f"no EXAMPLES/ paths in {NODE_README}"
    return [f"{PREFIXES[route]}/{EXAMPLES}/{name}" for name in names]


def fake_bundle(directory: Path) -> Path:
    """A stand-in for the PyInstaller bundle in ``directory/bundle`` (install.sh only runs it with --help
    and --version), with the small client build.sh compiles, which runs the bundle when no server answers."""
    bundle = directory / "bundle"
    bundle.mkdir()
    executable = bundle / "ctd-decoder"
    executable.write_text("#!/bin/sh\necho ctd-decoder usage\n")
    executable.chmod(0o755)
    client = bundle / "ctd-decoder-client"
    client.write_text('#!/bin/sh\nexec "$(dirname "$(readlink -f "$0")")/ctd-decoder" "$@"\n')
    client.chmod(0o755)
    (bundle / "licenses").mkdir()
    (bundle / "licenses" / "README").write_text("licence index\n")
    return bundle


def run_script(script: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``packaging/<script>`` with bash; the result, whatever its status."""
    return subprocess.run(
        ["bash", str(PACKAGING / script), *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def stage_route(route: str, bundle: Path, work: Path) -> Path:
    """Install ``bundle`` as ``route`` does into a staged tree below ``work``; return the tree's root.

    tarball: ``install.sh --warm`` with its default prefix; deb: the package deb.sh makes, unpacked with
    ``dpkg-deb -x`` (what apt-get would put on the node, without running its maintainer scripts)."""
    stage = work / f"stage-{route}"
    if route == "tarball":
        result = run_script("install.sh", "--from", bundle, "--destdir", stage, "--warm")
        assert result.returncode == 0, result.stderr
        return stage
    out = work / "deb-out"
    out.mkdir()
    result = run_script("deb.sh", bundle, "0.0.1", work / "deb-root", out)
    assert result.returncode == 0, result.stderr
    (deb,) = out.glob("*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(stage)], check=True, timeout=300)
    return stage
