"""Benchmark of ``ocicrypt encrypt`` / ``ocicrypt decrypt`` on a large single-layer image, next to skopeo.

Both tools copy the same OCI layout (one layer of ``--size-mib`` random bytes) to a new layout on the
same file system, encrypting with one RSA-2048 JWE recipient and then decrypting. Printed per run:
wall time, throughput and peak RSS of each process, and our throughput as a multiple of skopeo's
(target: at least 3x) and our peak RSS next to the layer size (target: flat, independent of the size).

Usage: python bench/image_tools.py [--size-mib 1024] [--runs 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.keygen import write_key_pair
from support.oci import CONFIG, LAYER_GZIP, MANIFEST, REF_ANNOTATION

MIB = 1 << 20


def _write_blob(layout: Path, data_source: Path | bytes) -> dict[str, object]:
    import hashlib

    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    if isinstance(data_source, bytes):
        digest.update(data_source)
        size = len(data_source)
        name = digest.hexdigest()
        (blobs / name).write_bytes(data_source)
    else:
        with open(data_source, "rb") as handle:
            while chunk := handle.read(8 * MIB):
                digest.update(chunk)
        size = data_source.stat().st_size
        name = digest.hexdigest()
        os.replace(data_source, blobs / name)
    return {"digest": "sha256:" + name, "size": size}


def make_big_layout(layout: Path, size_mib: int) -> None:
    """Write a one-layer OCI layout whose layer is ``size_mib`` MiB of random bytes (written in chunks)."""
    import json

    layout.mkdir(parents=True)
    scratch = layout / "layer.tmp"
    block = os.urandom(4 * MIB)
    with open(scratch, "wb") as handle:
        for _ in range(size_mib // 4):
            handle.write(block)
            block = block[1:] + block[:1]
    layer = {"mediaType": LAYER_GZIP, **_write_blob(layout, scratch)}
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, **_write_blob(layout, config.encode())},
        "layers": [layer],
    }
    entry = {
        "mediaType": MANIFEST,
        **_write_blob(layout, json.dumps(manifest).encode()),
        "annotations": {REF_ANNOTATION: "v1"},
    }
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


GNU_TIME = shutil.which("time", path="/usr/bin")


def measure(command: list[str], scratch: Path) -> tuple[float, int | None]:
    """Run ``command``; return (wall seconds, peak RSS in KiB or None); fail on a non-zero exit.

    The peak RSS comes from GNU time when installed: a child forked from this interpreter would
    report the interpreter's own resident set as its high-water mark.
    """
    report = scratch / "rss"
    prefix = [GNU_TIME, "-f", "%M", "-o", str(report)] if GNU_TIME else []
    start = time.perf_counter()
    result = subprocess.run([*prefix, *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.decode()}")
    peak = int(report.read_text().split()[-1]) if GNU_TIME else None
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", help="where to put the images (default: a temporary directory under /var/tmp)")
    args = parser.parse_args()
    ocicrypt = shutil.which("ocicrypt", path=os.path.dirname(sys.executable)) or "ocicrypt"
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise SystemExit("skopeo is not installed")
    root = Path(tempfile.mkdtemp(prefix="bench-image-", dir=args.dir or "/var/tmp"))
    try:
        private, public, _ = write_key_pair(root, "k", "rsa2048")
        make_big_layout(root / "plain", args.size_mib)
        size = args.size_mib * MIB
        plain, enc = f"oci:{root / 'plain'}:v1", f"oci:{root / 'skopeo-enc'}:v1"
        subprocess.run([skopeo, "copy", "-q", "--encryption-key", f"jwe:{public}", plain, enc], check=True)
        commands = {
            "encrypt": {
                "ocicrypt": lambda out: [ocicrypt, "encrypt", "--recipient", f"jwe:{public}", plain, f"oci:{out}:v1"],
                "skopeo": lambda out: [
                    skopeo,
                    "copy",
                    "-q",
                    "--encryption-key",
                    f"jwe:{public}",
                    plain,
                    f"oci:{out}:v1",
                ],
            },
            "decrypt": {
                "ocicrypt": lambda out: [ocicrypt, "decrypt", "--key", str(private), enc, f"oci:{out}:v1"],
                "skopeo": lambda out: [skopeo, "copy", "-q", "--decryption-key", str(private), enc, f"oci:{out}:v1"],
            },
        }
        print(f"{args.size_mib} MiB single-layer image, JWE RSA-2048, {args.runs} runs each (median)")
        for operation, tools in commands.items():
            results: dict[str, tuple[float, int]] = {}
            for tool, make in tools.items():
                times, peaks = [], []
                for run in range(args.runs):
                    out = root / f"out-{tool}-{operation}-{run}"
                    elapsed, peak = measure(make(out), root)
                    shutil.rmtree(out)
                    times.append(elapsed)
                    if peak is not None:
                        peaks.append(peak)
                results[tool] = (statistics.median(times), max(peaks, default=0))
                seconds, peak = results[tool]
                rss = f"peak RSS {peak / 1024:6.0f} MiB" if peaks else "peak RSS n/a (no /usr/bin/time)"
                print(f"  {operation:8s} {tool:9s} {seconds:7.2f} s  {size / MIB / seconds:7.0f} MiB/s  {rss}")
            ratio = results["skopeo"][0] / results["ocicrypt"][0]
            print(f"  {operation:8s} ocicrypt / skopeo throughput: {ratio:.2f}x (target >= 3x)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
