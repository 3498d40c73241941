"""Collect the licence texts of everything a built bundle redistributes (run by build.sh, with the build
venv's interpreter).

- Python distributions: ctd-decoder[all] and everything it requires, and PyInstaller alone (its
  bootloader starts the bundle; nothing else of it or its requirements is bundled): the licence files
  each installed distribution ships in its metadata.
- Shared libraries copied into the bundle from the build machine (libpython, OpenSSL, libffi, zlib,
  libstdc++ ...): the Debian package that owns each one (``dpkg -S``) and its
  ``/usr/share/doc/<package>/copyright``.

Writes ``OUT/<name>/<file>`` per component and ``OUT/README`` listing them with their versions; fails if a
library in the bundle cannot be attributed, so nothing is shipped without its licence.

    python licenses.py --bundle DIR --out DIR
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOTS = ["ctd-decoder[all]"]
BOOTLOADER = "pyinstaller"
LICENSE_NAME = re.compile(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS|COPYRIGHT)", re.IGNORECASE)
SHARED_LIBRARY = re.compile(r"\.so(\.\d+)*$")
EXTENSION_MODULE = re.compile(r"\.(cpython-\d+[^.]*|abi3)\.so$")  # from a wheel: its distribution covers it
SYSTEM_LIBRARY_DIR = re.compile(r"^/(usr/)?lib(64)?/([^/]+-linux-gnu/)?[^/]+$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_distributions() -> list[metadata.Distribution]:
    """The installed distributions reachable from :data:`ROOTS`, following extras and markers."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    pending = [Requirement(root) for root in ROOTS]
    while pending:
        requirement = pending.pop()
        key = (_normalise(requirement.name), frozenset(requirement.extras))
        if key in done:
            continue
        done.add(key)
        dist = metadata.distribution(requirement.name)
        found[key[0]] = dist
        environments = [{"extra": extra} for extra in requirement.extras or {""}]
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate(env) for env in environments):
                pending.append(sub)
    found[BOOTLOADER] = metadata.distribution(BOOTLOADER)
    return sorted(found.values(), key=lambda d: _normalise(d.metadata["Name"]))


def licence_files(dist: metadata.Distribution) -> list[Path]:
    """The licence files a distribution's metadata holds (``License-File`` entries, else by name)."""
    files = [f for f in dist.files or [] if ".dist-info" in str(f) and LICENSE_NAME.search(f.name)]
    return [Path(str(f.locate())) for f in files if Path(str(f.locate())).is_file()]


def bundled_libraries(bundle: Path) -> list[Path]:
    """Shared libraries PyInstaller copied from the system (not those that came inside a wheel)."""
    internal = bundle / "_internal"
    found = []
    for path in sorted(internal.iterdir()) if internal.is_dir() else []:
        if path.is_file() and SHARED_LIBRARY.search(path.name) and not EXTENSION_MODULE.search(path.name):
            found.append(path)
    return found


def debian_package(library: str) -> str | None:
    """The Debian package owning a file called ``library`` in a library directory, if any."""
    result = subprocess.run(["dpkg", "-S", f"*/{library}"], capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        package, _, path = line.partition(": ")
        if SYSTEM_LIBRARY_DIR.match(path) and Path(path).name == library:
            return package.split(",")[0].strip()
    return None


def debian_version(package: str) -> str:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False)
    return result.stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    index = ["Licences of the components in this bundle, one directory each.", ""]

    for dist in python_distributions():
        name = _normalise(dist.metadata["Name"])
        if name == "ctd-decoder":
            continue  # the project's own LICENSE sits beside the bundle
        files = licence_files(dist)
        if not files:
            print(f"licenses.py: {name} {dist.version} ships no licence file", file=sys.stderr)
            return 1
        target = out / name
        target.mkdir()
        for path in files:
            shutil.copyfile(path, target / path.name)
        licence = dist.metadata.get("License-Expression") or dist.metadata.get("License") or ""
        summary = licence.splitlines()[0] if licence else "see the files"
        summary = summary if len(summary) <= 60 else summary[:57] + "..."
        names = ", ".join(sorted(path.name for path in files))
        index.append(f"{name} {dist.version} (Python distribution; {summary}): {names}")

    packages: dict[str, list[str]] = {}
    for library in bundled_libraries(args.bundle):
        package = debian_package(library.name)
        if package is None:
            print(f"licenses.py: no Debian package owns {library.name}; cannot ship its licence", file=sys.stderr)
            return 1
        packages.setdefault(package, []).append(library.name)
    for package, libraries in sorted(packages.items()):
        base = package.split(":")[0]
        copyright_file = Path("/usr/share/doc") / base / "copyright"
        if not copyright_file.is_file():
            print(f"licenses.py: {copyright_file} is missing (for {', '.join(libraries)})", file=sys.stderr)
            return 1
        target = out / f"debian-{base}"
        target.mkdir()
        shutil.copyfile(copyright_file, target / "copyright")
        index.append(f"{base} {debian_version(package)} (Debian package; {', '.join(libraries)}): copyright")

    (out / "README").write_text("\n".join(index) + "\n")
    print(f"licenses.py: {len(index) - 2} components in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
