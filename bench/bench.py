"""Benchmark of the installed ``ctd-decoder``, with references measured in the same run.

Prints:
  (a) decrypt throughput of a large JWE layer through the executable, stdin and stdout being pipes
      (fed with sendfile and drained with splice, so the harness itself costs almost nothing),
      next to ``openssl speed -hmac sha256`` on one core (target: at least 0.8x) and next to
      ``openssl dgst -sha256 -hmac`` streaming the same blob through the same pipes (HMAC alone,
      on data that is not already in the CPU cache);
  (b) median wall time of a 4 KiB layer end to end with an RSA-2048 JWE key in the payload
      (target: at most 80 ms), next to a bare ``python -c pass`` start-up;
  (c) peak RSS of the decoder during (a) (target: at most 64 MiB).

Usage: python bench/bench.py [--size-mib 1024] [--runs 21] [--decoder PATH]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.keygen import new_key, private_pem, public_pem
from support.layers import jwe_layer

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.layer import encrypt_layer

MIB = 1 << 20


class _Repeat(io.RawIOBase):
    """A readable stream of ``size`` bytes made by repeating one random block (no huge allocation)."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = os.urandom(4 * MIB)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        count = min(self._left, len(self._block) if size < 0 else min(size, len(self._block)))
        self._left -= count
        return self._block[:count]


def openssl_hmac_bytes_per_second() -> float:
    """Run ``openssl speed -hmac sha256`` on 1 MiB blocks; return bytes per second."""
    output = subprocess.run(
        ["openssl", "speed", "-seconds", "3", "-bytes", str(MIB), "-hmac", "sha256"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"hmac\(sha256\)\s+([0-9.]+)k", output)
    if match is None:
        raise RuntimeError(f"cannot read openssl speed output:\n{output}")
    return float(match.group(1)) * 1000


def make_big_layer(directory: Path, size: int) -> tuple[Path, bytes]:
    """Encrypt ``size`` bytes to a fresh RSA key; return the blob path and the payload."""
    key = new_key("rsa2048")
    blob = directory / "layer.enc"
    with open(blob, "wb") as out:
        annotations = encrypt_layer(EncryptConfig({params.PUBKEYS: [public_pem(key)]}), _Repeat(size), out)
    descriptor = Descriptor(
        "application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "sha256:" + "0" * 64, size, annotations
    )
    dc = DecryptConfig({params.PRIVKEYS: [private_pem(key)], params.PRIVKEYS_PASSWORDS: [None]})
    return blob, encode_payload(Payload(dc, descriptor))


def run_through_pipes(argv: list[str], blob: Path, payload: bytes | None) -> tuple[float, int, int]:
    """Run ``argv`` with ``blob`` piped to stdin and ``payload`` on fd 3; return (seconds, bytes out, peak RSS)."""
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    payload_r, payload_w = os.pipe()
    os.write(payload_w, payload or b"")
    os.close(payload_w)
    size = blob.stat().st_size
    start = time.perf_counter()
    process = subprocess.Popen(
        argv,
        stdin=stdin_r,
        stdout=stdout_w,
        pass_fds=(3,) if payload is not None else (),
        preexec_fn=lambda: os.dup2(payload_r, 3),
    )
    for fd in (stdin_r, stdout_w, payload_r):
        os.close(fd)

    def feed() -> None:
        with open(blob, "rb") as source:
            offset = 0
            while offset < size:
                offset += os.sendfile(stdin_w, source.fileno(), offset, size - offset)
        os.close(stdin_w)

    received = 0

    def drain() -> None:
        nonlocal received
        with open(os.devnull, "wb") as sink:
            while moved := os.splice(stdout_r, sink.fileno(), 4 * MIB):
                received += moved
        os.close(stdout_r)

    threads = [threading.Thread(target=feed), threading.Thread(target=drain)]
    for thread in threads:
        thread.start()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    for thread in threads:
        thread.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with status {process.returncode}")
    return elapsed, received, usage.ru_maxrss * 1024


def small_layer_median(decoder: str, runs: int) -> tuple[float, float]:
    """Median wall time of a 4 KiB layer end to end, and of a bare interpreter start-up."""
    layer = jwe_layer(os.urandom(4096))
    payload = layer.payload()
    with tempfile.TemporaryDirectory() as tmp:
        blob = Path(tmp) / "small.enc"
        blob.write_bytes(layer.blob)
        times = []
        for _ in range(runs):
            seconds, received, _ = run_through_pipes([decoder], blob, payload)
            times.append(seconds)
            assert received == 4096
    bare = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - start)
    return statistics.median(times), statistics.median(bare)


def main() -> int:
    """Run the three measurements and print them with their references and targets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--decoder", default=shutil.which("ctd-decoder", path=os.path.dirname(sys.executable)))
    args = parser.parse_args()
    if not args.decoder:
        parser.error("ctd-decoder is not installed next to this interpreter; pass --decoder")
    print(f"decoder: {args.decoder}")
    hmac_rate = openssl_hmac_bytes_per_second()
    print(f"reference: openssl speed -hmac sha256 (1 MiB blocks, one core): {hmac_rate / 1e9:.2f} GB/s")

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMPDIR")) as tmp:
        size = args.size_mib * MIB
        blob, payload = make_big_layer(Path(tmp), size)
        seconds, received, peak_rss = run_through_pipes([args.decoder], blob, payload)
        hmac_seconds, _, _ = run_through_pipes(["openssl", "dgst", "-sha256", "-hmac", "bench"], blob, None)
        streaming_rate = size / hmac_seconds
    assert received == size, f"decoder wrote {received} bytes, expected {size}"
    rate = size / seconds
    print(f"reference: openssl dgst -sha256 -hmac over the same blob, same pipes: {streaming_rate / 1e9:.2f} GB/s")
    median, bare = small_layer_median(args.decoder, args.runs)
    steady = size / (seconds - median)
    print(
        f"(a) {args.size_mib} MiB JWE layer through pipes: {seconds:.2f} s, {rate / 1e9:.2f} GB/s, "
        f"{rate / hmac_rate:.2f}x openssl speed HMAC-SHA256 (target >= 0.80x), "
        f"{rate / streaming_rate:.2f}x streaming openssl HMAC; "
        f"without the start-up of (b): {steady / 1e9:.2f} GB/s, {steady / hmac_rate:.2f}x"
    )
    print(
        f"(b) 4 KiB layer, RSA-2048 JWE key in the payload: median {median * 1000:.1f} ms over {args.runs} runs "
        f"(target <= 80 ms); bare python start-up {bare * 1000:.1f} ms"
    )
    print(f"(c) peak RSS during (a): {peak_rss / MIB:.1f} MiB (target <= 64 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
