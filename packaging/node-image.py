"""Build the node image (an oci-archive) from a built bundle and Debian's busybox-static, without
pulling any base image: ``ocicrypt node install`` runs from it in a Kubernetes pod.

    python3 packaging/node-image.py --bundle DIR --busybox /bin/busybox --version V --out FILE

The image has one layer: the bundle in /opt/ctd-decoder (``ocicrypt`` is a link to its executable,
which runs the operator tools under that name), busybox-static in /bin with the applets the manifests
and the installer use (sh, sleep, nsenter for the host's init system), the build machine's C library
files the bundle still links against (PyInstaller bundles libpython and the extension modules'
libraries, not glibc: found with ldd, copied from the installed Debian packages with their copyright
files), and /tmp. The layer is reproducible: sorted entries, owner root, mtime 0.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

BUSYBOX_APPLETS = ("sh", "sleep", "nsenter", "cat", "date", "dirname", "mv", "rm", "printf", "ls")
BUNDLE_IN_IMAGE = "opt/ctd-decoder"
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
IMAGE_NAME = "ctd-decoder-node"


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def _is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def system_libraries(bundle: Path) -> list[Path]:
    """The shared libraries (and the dynamic loader) the bundle's ELF files need from the system: what
    ldd resolves outside the bundle; for the libraries in the bundle, less those it carries itself
    (found through the bootloader's LD_LIBRARY_PATH), but all of the top-level executables' needs (the
    bootloader is loaded before that path is set)."""
    files = [p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink() and _is_elf(p)]
    carried = {p.name for p in bundle.rglob("*")}
    found: set[str] = set()
    for path in files:
        done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
        for line in done.stdout.splitlines():
            match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            top_level = path.parent == bundle
            if match and (top_level or Path(match.group(1)).name not in carried):
                found.add(match.group(1))
    return sorted(Path(p) for p in found)


def copyright_files(libraries: list[Path]) -> list[Path]:
    """The Debian copyright files of the packages that own ``libraries``."""
    packages: set[str] = set()
    for library in libraries:
        for candidate in (library, library.resolve()):
            done = subprocess.run(["dpkg", "-S", str(candidate)], capture_output=True, text=True, check=False)
            if done.returncode == 0:
                packages.update(line.split(":")[0] for line in done.stdout.splitlines())
                break
        else:
            raise SystemExit(f"node-image.py: no Debian package owns {library}: cannot ship its licence")
    return [Path(f"/usr/share/doc/{name}/copyright") for name in sorted(packages)]


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def layer_tar(bundle: Path, busybox: Path, busybox_copyright: Path | None) -> bytes:
    """The image's single layer as an uncompressed tar."""
    libraries = system_libraries(bundle)
    extra = [*libraries, *copyright_files(libraries)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = {"bin", "opt", "tmp", "usr/share/doc/busybox-static"}
        for path in extra:
            directories.add(str(path.parent).lstrip("/"))
        for directory in sorted({parent for d in directories for parent in [*_parents(d + "/x")]}):
            tar.addfile(_info(directory, tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755))
        for path in extra:  # the resolved file under the name the loader looks for
            data = path.resolve().read_bytes()
            mode = 0o644 if path.suffix == "" and "doc" in path.parts else 0o755
            tar.addfile(_info(str(path).lstrip("/"), tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
        tar.addfile(_info("bin/busybox", tarfile.REGTYPE, 0o755, busybox.stat().st_size), busybox.open("rb"))
        for applet in BUSYBOX_APPLETS:
            tar.addfile(_info(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"))
        if busybox_copyright is not None:
            data = busybox_copyright.read_bytes()
            tar.addfile(
                _info("usr/share/doc/busybox-static/copyright", tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data)
            )
        tar.addfile(_info(BUNDLE_IN_IMAGE, tarfile.DIRTYPE, 0o755))
        for path in sorted(bundle.rglob("*")):
            name = f"{BUNDLE_IN_IMAGE}/{path.relative_to(bundle)}"
            if path.is_symlink():
                tar.addfile(_info(name, tarfile.SYMTYPE, 0o777, link=os.readlink(path)))
            elif path.is_dir():
                tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
            else:
                mode = 0o755 if os.access(path, os.X_OK) else 0o644
                with path.open("rb") as handle:
                    tar.addfile(_info(name, tarfile.REGTYPE, mode, path.stat().st_size), handle)
        tar.addfile(_info(f"{BUNDLE_IN_IMAGE}/ocicrypt", tarfile.SYMTYPE, 0o777, link="ctd-decoder"))
    return buffer.getvalue()


def _blob(blobs: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}"


def build(bundle: Path, busybox: Path, copyright_file: Path | None, version: str, out: Path) -> None:
    """Write the oci-archive ``out`` (its index names the image ``ctd-decoder-node:VERSION``)."""
    if not (bundle / "ctd-decoder").is_file():
        raise SystemExit(f"node-image.py: {bundle} has no ctd-decoder")
    arch = ARCHITECTURES.get(platform.machine(), platform.machine())
    raw = layer_tar(bundle, busybox, copyright_file)
    compressed = gzip.compress(raw, mtime=0)
    with tempfile.TemporaryDirectory() as scratch:
        layout = Path(scratch)
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        layer_digest = _blob(blobs, compressed)
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {
                "Entrypoint": ["/opt/ctd-decoder/ocicrypt"],
                "Cmd": ["node", "status"],
                "Env": ["PATH=/opt/ctd-decoder:/bin"],
                "WorkingDir": "/",
                "Labels": {"org.opencontainers.image.title": IMAGE_NAME, "org.opencontainers.image.version": version},
            },
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(raw).hexdigest()}"]},
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _blob(blobs, config_bytes),
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(compressed),
                }
            ],
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _blob(blobs, manifest_bytes),
                    "size": len(manifest_bytes),
                    "platform": {"architecture": arch, "os": "linux"},
                    "annotations": {
                        "org.opencontainers.image.ref.name": version,
                        "io.containerd.image.name": f"{IMAGE_NAME}:{version}",
                    },
                }
            ],
        }
        (layout / "index.json").write_text(json.dumps(index, sort_keys=True))
        (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as archive:
            for path in sorted(layout.rglob("*")):
                info = archive.gettarinfo(str(path), str(path.relative_to(layout)))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                if path.is_file():
                    with path.open("rb") as handle:
                        archive.addfile(info, handle)
                else:
                    archive.addfile(info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--busybox", type=Path, required=True)
    parser.add_argument("--busybox-copyright", type=Path)
    parser.add_argument("--version", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    build(args.bundle, args.busybox, args.busybox_copyright, args.version, args.out)


if __name__ == "__main__":
    main()
