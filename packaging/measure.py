"""Measure start-up time and size of ctd-decoder builds (the figures in packaging/README.md).

    .venv/bin/python packaging/measure.py [--runs N] NAME=PATH [NAME=PATH ...]

For each executable: its on-disk size (the whole bundle directory for a one-folder build), the
median and minimum wall time of ``--help`` and of decrypting a small JWE (RSA-2048) layer with the
payload on fd 3 (what containerd pays per layer), and for zipapps the first run with an empty
extraction cache.
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

import support.decoder as decoder_module
from support.decoder import run_decoder
from support.layers import jwe_layer


def tree_size(path: Path) -> int:
    """Bytes on disk of an executable, or of its bundle directory when it has an ``_internal`` sibling."""
    path = path.resolve() if (path.resolve().parent / "_internal").is_dir() else path
    bundle = path.parent
    if (bundle / "_internal").is_dir():
        return sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())
    if path.name == "ctd-decoder" and (path.parent / "python").exists():  # a venv's console script
        venv = path.parent.parent
        return sum(p.stat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink())
    return path.stat().st_size


def timed(fn: object, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("exes", nargs="+", metavar="NAME=PATH")
    options = parser.parse_args()
    layer = jwe_layer(os.urandom(1024))
    payload = layer.payload()
    print(f"{'build':<22} {'size MB':>8} {'--help ms (median/min)':>24} {'decode ms (median/min)':>24} {'cold ms':>8}")
    for spec in options.exes:
        name, _, exe = spec.partition("=")
        path = Path(exe)
        cache = Path(tempfile.mkdtemp(prefix="ctd-measure-"))
        env = {**os.environ, "SHIV_ROOT": str(cache / "shiv"), "PEX_ROOT": str(cache / "pex")}

        def help_run(path: Path = path, env: dict[str, str] = env) -> None:
            subprocess.run([str(path), "--help"], check=True, stdout=subprocess.DEVNULL, env=env)

        cold = timed(help_run, 1)[0]

        def decode_run(path: Path = path, env: dict[str, str] = env) -> None:
            result = run_decoder(layer.blob, payload, env=env)
            assert result.returncode == 0, result.stderr

        decoder_module.DECODER = str(path)  # run_decoder() runs this executable
        helps = timed(help_run, options.runs)
        decodes = timed(decode_run, options.runs)
        shutil.rmtree(cache, ignore_errors=True)
        print(
            f"{name:<22} {tree_size(path) / 1e6:>8.1f} "
            f"{statistics.median(helps) * 1e3:>15.0f} / {min(helps) * 1e3:<6.0f} "
            f"{statistics.median(decodes) * 1e3:>15.0f} / {min(decodes) * 1e3:<6.0f} {cold * 1e3:>8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
