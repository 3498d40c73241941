"""The warm path around the decoder: a real ``ocicrypt serve``, real clients, real descriptors.

Decoding itself is checked both ways by the attack and Go-fixture tests (``decoder_path``); here:
who may connect, what happens when the client or the server dies, parallel layers, and a soak.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.decoder import run_decoder, start_decoder
from support.layers import GZIP_ENCRYPTED, EncryptedLayer, jwe_layer
from support.proc import state, tracer
from support.waiting import eventually
from support.warm import COLD_ENV, OCICRYPT, WarmServer, start_blocked_client

from ctd_decoder.decoder import MEDIA_TYPE_ENV
from ctd_decoder.decoder.warm.client import ANSWER_TIMEOUT, SERVER_GONE, hand_off
from ctd_decoder.decoder.warm.pool import DEFAULT_SIZE, POOL_ENV
from ctd_decoder.decoder.warm.priority import serving_policy
from ctd_decoder.decoder.warm.protocol import DISABLED, SOCKET_ENV
from ctd_decoder.ocicrypt.config import DecryptConfig

OTHER_UID = 65534
SOAK_LAYERS = int(os.environ.get("CTD_WARM_SOAK_LAYERS", "10000"))


@pytest.fixture(scope="module")
def layer() -> EncryptedLayer:
    return jwe_layer(os.urandom(4096))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WarmServer]:
    """A server of this test's own, free to be killed."""
    warm = WarmServer(tmp_path / "run")
    yield warm
    warm.stop()


def test_warm_layer_is_decoded_by_the_server_and_logged_without_secrets(
    server: WarmServer, layer: EncryptedLayer
) -> None:
    result = run_decoder(layer.blob, layer.payload(), env=server.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == layer.plaintext
    (line,) = server.wait_for_layers(1)
    assert line.startswith(f"ctd-decoder-warm: layer {layer.descriptor.digest} ok ")
    *_, milliseconds, ms, peak, mib = line.split()
    assert (ms, mib) == ("ms", "MiB") and int(milliseconds) >= 0
    assert 1 < float(peak) < 1024, "the child's peak RSS"
    key_body = layer.private_key_pem.splitlines()[1].decode()
    assert all(key_body not in logged for logged in server.lines)


def test_handing_off_imports_nothing_of_the_decoder(server: WarmServer, layer: EncryptedLayer) -> None:
    # The process containerd starts only passes its descriptors on: every import there is start-up
    # the server has already paid (the decoder, its diagnostics, ``re``, ``signal``'s ``enum``).
    # The entry point is called as the console script calls it, without the script: older pips'
    # script template imports ``re`` itself.
    entry = "import sys\nfrom ctd_decoder.decoder import main\nsys.exit(main())\n"
    command = [sys.executable, "-X", "importtime", "-c", entry]
    result = run_decoder(layer.blob, layer.payload(), env=server.env, command=command)
    assert (result.returncode, result.stdout) == (0, layer.plaintext), result.stderr
    (line,) = server.wait_for_layers(1)
    assert line.startswith(f"ctd-decoder-warm: layer {layer.descriptor.digest} ok "), line
    imported = {
        line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert "ctd_decoder.decoder.warm.client" in imported, "the import record is missing"
    ours = {name for name in imported if name.startswith("ctd_decoder")}
    assert ours == {"ctd_decoder", "ctd_decoder.decoder", "ctd_decoder.decoder.warm"} | {
        "ctd_decoder.decoder.warm.client",
        "ctd_decoder.decoder.warm.protocol",
    }
    assert not imported & {"cryptography", "re", "enum", "signal", "typing", "socket"}, sorted(imported)


def test_no_server_or_a_stale_socket_decodes_in_process(tmp_path: Path, layer: EncryptedLayer) -> None:
    missing = run_decoder(layer.blob, layer.payload(), env={SOCKET_ENV: str(tmp_path / "none.sock")})
    assert (missing.returncode, missing.stdout) == (0, layer.plaintext), missing.stderr
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(stale))  # bound, never listening: connect is refused
    refused = run_decoder(layer.blob, layer.payload(), env={SOCKET_ENV: str(stale)})
    assert (refused.returncode, refused.stdout) == (0, layer.plaintext), refused.stderr


def test_server_that_never_answers_is_given_up_on_and_the_layer_decoded_in_process(
    tmp_path: Path, layer: EncryptedLayer
) -> None:
    path = tmp_path / "mute.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(8)  # accepts connections in the backlog, never answers
        started = time.monotonic()
        result = run_decoder(layer.blob, layer.payload(), env={SOCKET_ENV: str(path)})
        elapsed = time.monotonic() - started
    assert (result.returncode, result.stdout) == (0, layer.plaintext), result.stderr
    assert ANSWER_TIMEOUT <= elapsed < 20, "the client gave up without waiting for an answer"


def _hand_off_as_other_uid(layer: EncryptedLayer, server: WarmServer) -> bool:
    """In a forked child that becomes OTHER_UID, try to hand a layer over; True if the server took it."""
    pid = os.fork()
    if pid == 0:  # only async-signal-safe-ish work here: setuid, the client's syscalls, _exit
        taken = 2
        try:
            os.setgroups([])
            os.setgid(OTHER_UID)
            os.setuid(OTHER_UID)
            taken = int(_hand_off_one(layer, layer.payload(), {**os.environ, **server.env})[0] is not None)
        finally:
            os._exit(taken)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), f"the other-uid child failed ({code})"
    return code == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another uid")
def test_client_of_another_uid_is_refused_and_logged(layer: EncryptedLayer) -> None:
    # Outside pytest's own (private) temporary tree, so that only the server's directory stands in the way.
    top = Path(tempfile.mkdtemp(prefix="ctd-warm-uid-"))
    server = WarmServer(top / "run")
    try:
        _check_other_uid_refused(server, top, layer)
    finally:
        server.stop()
        shutil.rmtree(top)


def _check_other_uid_refused(server: WarmServer, top: Path, layer: EncryptedLayer) -> None:
    top.chmod(0o755)
    # First line of defence: the 0700 directory keeps the other user from reaching the socket at all.
    assert not _hand_off_as_other_uid(layer, server)
    # Second: with the directory and socket opened up by mistake, SO_PEERCRED still refuses it.
    server.socket.parent.chmod(0o755)
    server.socket.chmod(0o666)
    assert not _hand_off_as_other_uid(layer, server)
    assert eventually(lambda: any(f"refused a client of uid {OTHER_UID}" in line for line in server.lines))
    assert server.layer_lines() == [], "the other uid's layer must not have been run by the server"
    assert _hand_off_one(layer, layer.payload(), {**os.environ, **server.env}) == (0, layer.plaintext)


def test_a_waiting_child_serves_a_layer_while_the_server_is_stopped_and_the_line_counts_its_time(
    server: WarmServer, layer: EncryptedLayer
) -> None:
    """The server is not on a layer's path (a waiting child takes the client); the child reports when it took
    the client and when it was done, so the line's milliseconds are the layer's however late they are read."""
    assert eventually(lambda: len(server.ready_children()) == DEFAULT_SIZE), server.lines
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        client, stdin_write = start_blocked_client(layer, server.env)
        try:
            time.sleep(0.4)
            os.write(stdin_write, layer.blob[100:])
        finally:
            os.close(stdin_write)
        stdout, stderr = client.communicate(timeout=30)
        assert (client.returncode, stdout) == (0, layer.plaintext), stderr
        assert server.layer_lines() == []
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    (line,) = server.wait_for_layers(1)
    milliseconds = int(line.split(" ok ")[1].split()[0])
    assert 300 <= milliseconds < 30_000, line  # the 0.4 s the layer's end was held back, less the client's start


def test_cancelled_client_leaves_no_child(server: WarmServer, layer: EncryptedLayer) -> None:
    client, stdin_write = start_blocked_client(layer, server.env)
    try:
        assert eventually(lambda: len(server.children()) == 1), server.lines
        client.kill()  # what containerd does when a pull is cancelled
        client.wait()
        killed_at = time.monotonic()
        assert eventually(lambda: server.children() == [], timeout=5)
        assert time.monotonic() - killed_at < 1.0
        (line,) = server.wait_for_layers(1)
        assert "killed: the client went away" in line
    finally:
        os.close(stdin_write)


def test_server_killed_mid_layer_fails_that_layer_cleanly_and_the_next_decodes_in_process(
    server: WarmServer, layer: EncryptedLayer
) -> None:
    client, stdin_write = start_blocked_client(layer, server.env)
    try:
        assert eventually(lambda: len(server.children()) == 1), server.lines
        (child,) = server.children()
        waiting = server.waiting_children()
        assert waiting, "no child was waiting"
        server.process.kill()
        server.process.wait()
        _, stderr = client.communicate(timeout=30)
    finally:
        os.close(stdin_write)
    assert client.returncode == 1
    assert stderr.decode() == SERVER_GONE.format(env=SOCKET_ENV, off=DISABLED)
    assert eventually(lambda: not Path(f"/proc/{child}").exists() or _is_zombie(child)), "the child outlived its server"
    assert eventually(lambda: all(not Path(f"/proc/{pid}").exists() or _is_zombie(pid) for pid in waiting)), waiting
    after = run_decoder(layer.blob, layer.payload(), env=server.env)  # stale socket: decoded in-process
    assert (after.returncode, after.stdout) == (0, layer.plaintext), after.stderr


def _is_zombie(pid: int) -> bool:
    return state(pid) in ("Z", "")


def test_eight_layers_in_parallel(server: WarmServer) -> None:
    layers = [jwe_layer(os.urandom(1024 * (n + 1))) for n in range(8)]
    barrier = threading.Barrier(8)

    def decode(one: EncryptedLayer) -> bytes:
        barrier.wait()
        result = run_decoder(one.blob, one.payload(), env=server.env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    with ThreadPoolExecutor(8) as pool:
        outputs = list(pool.map(decode, layers))
    assert outputs == [one.plaintext for one in layers]
    logged = server.wait_for_layers(8)
    assert sorted(line.split()[2] for line in logged) == sorted(one.descriptor.digest for one in layers)
    assert eventually(lambda: server.children() == [])


def test_pool_drained_by_eight_parallel_layers_is_refilled(server: WarmServer) -> None:
    assert eventually(lambda: len(server.ready_children()) == DEFAULT_SIZE), server.lines
    before = set(server.waiting_children())
    layers = [jwe_layer(os.urandom(512 * (n + 1))) for n in range(8)]
    barrier = threading.Barrier(8)

    def decode(one: EncryptedLayer) -> tuple[int, bytes]:
        barrier.wait()
        result = run_decoder(one.blob, one.payload(), env=server.env)
        return result.returncode, result.stdout

    with ThreadPoolExecutor(8) as pool:
        outputs = list(pool.map(decode, layers))
    assert outputs == [(0, one.plaintext) for one in layers]
    assert len(server.wait_for_layers(8)) == 8
    assert eventually(lambda: server.children() == [] and len(server.waiting_children()) == DEFAULT_SIZE)
    assert not before & set(server.waiting_children()), "a child that took a layer is waiting again"
    assert len(server.all_children()) == DEFAULT_SIZE


def test_waiting_child_killed_is_replaced(server: WarmServer, layer: EncryptedLayer) -> None:
    assert eventually(lambda: len(server.waiting_children()) == DEFAULT_SIZE), server.lines
    victim = server.waiting_children()[0]
    os.kill(victim, signal.SIGKILL)
    assert eventually(lambda: any(f"waiting child {victim} died (signal 9); replacing it" in x for x in server.lines))
    assert eventually(lambda: len(server.waiting_children()) == DEFAULT_SIZE and victim not in server.all_children())
    assert not _is_zombie_of(victim, server.process.pid)
    result = run_decoder(layer.blob, layer.payload(), env=server.env)
    assert (result.returncode, result.stdout) == (0, layer.plaintext), result.stderr
    (line,) = server.wait_for_layers(1)
    assert line.startswith(f"ctd-decoder-warm: layer {layer.descriptor.digest} ok "), line


def _is_zombie_of(pid: int, parent: int) -> bool:
    """``pid`` is still an (unreaped) child of ``parent``."""
    return str(pid) in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()


def test_a_variable_of_the_servers_environment_is_not_the_layers(tmp_path: Path, layer: EncryptedLayer) -> None:
    """The child takes the client's environment, including what it lacks: a server started with containerd's
    media-type variable must not make a bad command line print its usage where containerd's output goes."""
    warm = WarmServer(tmp_path / "run", extra_env={MEDIA_TYPE_ENV: GZIP_ENCRYPTED})
    try:
        assert MEDIA_TYPE_ENV not in os.environ
        through_server = run_decoder(layer.blob, layer.payload(), args=["--bogus"], env=warm.env)
        assert " ok " not in "".join(warm.wait_for_layers(1)) and len(warm.layer_lines()) == 1, warm.lines
    finally:
        warm.stop()
    cold = run_decoder(layer.blob, layer.payload(), args=["--bogus"], env={SOCKET_ENV: DISABLED})
    assert (through_server.returncode, through_server.stdout, through_server.stderr) == (
        cold.returncode,
        cold.stdout,
        cold.stderr,
    )
    assert through_server.stdout.startswith(b"Incorrect Usage: flag provided but not defined: -bogus")


def test_ready_waiting_children_have_left_idle_priority(server: WarmServer) -> None:
    """They rehearse at SCHED_IDLE (the tests run as root, which may come back from it) and must take their
    layer at the server's own scheduling policy."""
    assert serving_policy() is not None, "the tests run without CAP_SYS_NICE: the idle rehearsal is not used"
    assert eventually(lambda: len(server.ready_children()) == DEFAULT_SIZE), server.lines
    policies = {os.sched_getscheduler(pid) for pid in server.ready_children()}
    assert policies == {os.sched_getscheduler(server.process.pid)} == {os.SCHED_OTHER}


def test_the_pool_is_refilled_on_idle_cpu_only(server: WarmServer, layer: EncryptedLayer, tmp_path: Path) -> None:
    """A refill must take no CPU that a client or containerd wants: the server's own system calls (traced by
    strace) show every fork it makes after a layer between a switch to SCHED_IDLE and one back to its policy."""
    assert serving_policy() is not None, "the tests run without CAP_SYS_NICE: the idle refill is not used"
    strace = shutil.which("strace")
    assert strace, "strace is needed (Debian: strace)"
    assert eventually(lambda: len(server.ready_children()) == DEFAULT_SIZE), server.lines
    trace = tmp_path / "server.trace"
    calls = "trace=sched_setscheduler,fork,vfork,clone,clone3"
    command = [strace, "-qq", "-e", calls, "-e", "signal=none", "-o", str(trace), "-p", str(server.process.pid)]
    tracing = subprocess.Popen(command)
    try:
        assert eventually(lambda: tracer(server.process.pid) == tracing.pid)
        result = run_decoder(layer.blob, layer.payload(), env=server.env)
        assert (result.returncode, result.stdout) == (0, layer.plaintext), result.stderr
        assert eventually(lambda: len(server.ready_children()) == DEFAULT_SIZE), server.lines
    finally:
        tracing.terminate()
        tracing.wait()
    # One entry per call: the policy a sched_setscheduler set, else the call's name.
    lines = trace.read_text().splitlines()
    made = [line.split(", ")[1] if line.startswith("sched_setscheduler(0, ") else line.split("(")[0] for line in lines]
    forks = [index for index, call in enumerate(made) if call in ("fork", "vfork", "clone", "clone3")]
    assert forks, made
    for index in forks:
        assert made[index - 1 : index + 2] == ["SCHED_IDLE", made[index], "SCHED_OTHER"], made
    # Forked at idle priority, each child is back at the server's policy before it waits for a client.
    assert {os.sched_getscheduler(pid) for pid in server.ready_children()} == {os.SCHED_OTHER}


def test_no_pool_forks_one_child_per_layer(tmp_path: Path, layer: EncryptedLayer) -> None:
    warm = WarmServer(tmp_path / "run", extra_env={POOL_ENV: "0"})
    try:
        assert any("pool 0)" in line for line in warm.lines), warm.lines
        time.sleep(0.2)
        assert warm.all_children() == []
        result = run_decoder(layer.blob, layer.payload(), env=warm.env)
        assert (result.returncode, result.stdout) == (0, layer.plaintext), result.stderr
        assert " ok " in warm.wait_for_layers(1)[0]
        assert eventually(lambda: warm.all_children() == [])
    finally:
        warm.stop()


def test_sigterm_while_the_pool_fills_stops_the_server_and_its_children(tmp_path: Path) -> None:
    """SIGTERM as soon as the server listens lands among the pool's first forks: none may be left waiting."""
    for attempt in range(5):
        warm = WarmServer(tmp_path / f"run-{attempt}")
        children = warm.all_children()
        warm.process.terminate()
        try:
            assert warm.process.wait(20) == 0, warm.lines
        finally:
            warm.stop()
        assert eventually(lambda pids=children: all(not Path(f"/proc/{pid}").exists() for pid in pids)), children
        assert warm.lines[-1] == "ctd-decoder-warm: stopped", warm.lines


def test_bad_pool_size_is_one_line_and_exit_1(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    started = subprocess.run(
        [str(OCICRYPT), "serve", "--socket", str(run / "warm.sock"), "--pool", "many"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 1
    assert started.stderr == "ctd-decoder-warm: the pool size must be a number from 0 to 64, not 'many'\n"


def _hand_off_one(layer: EncryptedLayer, payload: bytes, environ: dict[str, str]) -> tuple[int | None, bytes]:
    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    payload_read, payload_write = os.pipe()
    os.write(stdin_write, layer.blob)  # small layers fit in the pipe buffers
    os.close(stdin_write)
    os.write(payload_write, payload)
    os.close(payload_write)
    try:
        status = hand_off(["ctd-decoder"], environ, fds=(stdin_read, stdout_write, stdout_write, payload_read))
    finally:
        for fd in (stdin_read, stdout_write, payload_read):
            os.close(fd)
    with os.fdopen(stdout_read, "rb") as output:
        return status, output.read()


def test_soak_leaks_no_descriptor_and_no_process(server: WarmServer) -> None:
    """SOAK_LAYERS small layers (default 10,000; CTD_WARM_SOAK_LAYERS) through one server, four at a time."""
    layer = jwe_layer(b"s" * 512, kind="p256")
    payload = layer.payload()
    environ = {**os.environ, **server.env}
    assert _hand_off_one(layer, payload, environ) == (0, layer.plaintext)
    assert server.wait_for_layers(1)
    assert eventually(lambda: len(server.waiting_children()) == DEFAULT_SIZE)
    baseline_fds = server.open_fds()
    started = time.monotonic()

    def one(_: int) -> tuple[int | None, bytes] | None:
        """None if the layer came back whole, else (status, the start of its output: stderr goes there too)."""
        status, output = _hand_off_one(layer, payload, environ)
        return None if (status, output) == (0, layer.plaintext) else (status, output[:300])

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(SOAK_LAYERS)))
    elapsed = time.monotonic() - started
    failed = [result for result in results if result is not None]
    unusual = [line for line in server.lines if " ok " not in line]
    assert not failed, f"{len(failed)} of {SOAK_LAYERS} layers failed: {failed[:10]}; server: {unusual[-10:]}"
    assert len(server.wait_for_layers(SOAK_LAYERS + 1, timeout=60)) == SOAK_LAYERS + 1
    assert eventually(lambda: server.children() == [] and len(server.waiting_children()) == DEFAULT_SIZE)
    assert len(server.all_children()) == DEFAULT_SIZE
    assert server.open_fds() == baseline_fds
    print(f"soak: {SOAK_LAYERS} layers in {elapsed:.1f} s ({elapsed / SOAK_LAYERS * 1000:.2f} ms per layer)")


def test_server_imports_no_backend_before_forking() -> None:
    code = (
        "import json, sys\n"
        "from ctd_decoder.decoder.warm.server import preload\n"
        "preload()\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout))
    assert "cryptography" in loaded and "ctd_decoder" in loaded
    assert not loaded & {"grpc", "gnupg", "pkcs11", "yaml", "jwcrypto", "google"}, sorted(loaded)


def test_server_stops_on_sigterm_after_its_running_layer(server: WarmServer, layer: EncryptedLayer) -> None:
    client, stdin_write = start_blocked_client(layer, server.env)
    assert eventually(lambda: len(server.children()) == 1), server.lines
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert server.process.poll() is None, "the server left before its running layer was done"
    os.write(stdin_write, layer.blob[100:])
    os.close(stdin_write)
    stdout, stderr = client.communicate(timeout=30)
    assert (client.returncode, stdout) == (0, layer.plaintext), stderr
    assert server.process.wait(30) == 0
    assert not server.socket.exists()


def test_small_client_without_a_server_runs_the_decoder_in_process(
    small_client: Path, layer: EncryptedLayer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import support.decoder as decoder_support

    cold = decoder_support.decoder_command()[0]
    monkeypatch.setattr(decoder_support, "DECODER", str(small_client))
    for socket_path in (str(tmp_path / "none.sock"), DISABLED):
        result = run_decoder(layer.blob, layer.payload(), env={SOCKET_ENV: socket_path, COLD_ENV: cold})
        assert (result.returncode, result.stdout) == (0, layer.plaintext), result.stderr
    missing_fd3 = run_decoder(layer.blob, None, env={SOCKET_ENV: DISABLED, COLD_ENV: cold})
    assert missing_fd3.returncode == 1
    assert missing_fd3.stderr.startswith("read payload: read configFd: bad file descriptor")


STDIN_IS_A_DIRECTORY = (
    "ctd-decoder: stdin is a directory, not a readable stream: containerd pipes the encrypted layer to "
    "ctd-decoder's stdin\n"
)


@pytest.mark.parametrize("warm", [False, True], ids=["no-server", "server"])
def test_small_client_refuses_a_directory_as_stdin_in_one_line(
    warm: bool, small_client: Path, warm_server: WarmServer, tmp_path: Path
) -> None:
    """Before the server or the bundle sees it: started with a directory as stdin, the bundle's interpreter
    aborts in its start-up (see the next test), whatever the arguments."""
    import support.decoder as decoder_support

    cold = decoder_support.decoder_command()[0]
    before = len(warm_server.layer_lines())
    socket_path = str(warm_server.socket) if warm else str(tmp_path / "none.sock")
    directory = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for args in ([], ["--decryption-keys-path", str(tmp_path)], ["--version"]):
            env = {SOCKET_ENV: socket_path, COLD_ENV: cold}
            # No payload: nothing reads it (its pipe would break as the process exits).
            process = start_decoder(directory, None, env=env, command=[str(small_client), *args])
            stdout, stderr = process.communicate(timeout=30)
            assert (process.returncode, stdout, stderr.decode()) == (1, b"", STDIN_IS_A_DIRECTORY), args
    finally:
        os.close(directory)
    assert len(warm_server.layer_lines()) == before, "the layer went to the server"


def test_python_entry_point_with_a_directory_as_stdin_is_stopped_by_the_interpreter(tmp_path: Path) -> None:
    """What an operator sees from ``ctd-decoder`` of a pip install (and from the bundle started directly):
    Python aborts in its start-up, before any of our code runs, with exit status 1. The README quotes this."""
    directory = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        process = start_decoder(directory, None, env={SOCKET_ENV: DISABLED})  # fd 3 is never read
        stdout, stderr = process.communicate(timeout=30)
    finally:
        os.close(directory)
    assert (process.returncode, stdout) == (1, b"")
    lines = stderr.decode().splitlines()
    assert lines[:2] == [
        "Fatal Python error: init_sys_streams: <stdin> is a directory, cannot continue",
        "Python runtime state: core initialized",
    ], lines


@pytest.mark.parametrize("client", ["python", "small-client"])
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_closed_stdin_is_one_line_not_an_internal_error(
    client: str, warm: bool, small_client: Path, warm_server: WarmServer, layer: EncryptedLayer
) -> None:
    import support.decoder as decoder_support

    decoder = decoder_support.decoder_command()[0]
    executable = str(small_client) if client == "small-client" else decoder
    env = {SOCKET_ENV: str(warm_server.socket) if warm else DISABLED, COLD_ENV: decoder}
    process = start_decoder(
        subprocess.DEVNULL, layer.payload(), env=env, command=["sh", "-c", 'exec "$0" <&-', executable]
    )
    stdout, stderr = process.communicate(timeout=30)
    assert (process.returncode, stdout) == (1, b""), stderr
    assert stderr.decode() == (
        f"could not copy data: stdin or stdout: Bad file descriptor (layer {layer.descriptor.digest})\n"
    ), stderr


def test_socket_activation_serves_on_the_socket_systemd_passes(tmp_path: Path, layer: EncryptedLayer) -> None:
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.fail("systemd-socket-activate is missing: apt-get install systemd")

    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    path = run / "warm.sock"
    server = subprocess.Popen(
        [activate, "-l", str(path), str(OCICRYPT), "serve", "--socket", "/nonexistent/ignored.sock"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert eventually(path.exists)
        result = run_decoder(layer.blob, layer.payload(), env={SOCKET_ENV: str(path)})
        assert (result.returncode, result.stdout) == (0, layer.plaintext), result.stderr
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    assert "listening on the socket systemd passed" in log
    assert f"layer {layer.descriptor.digest} ok" in log


def test_a_failed_warm_layer_imports_only_the_exit_race_guard_more(server: WarmServer, layer: EncryptedLayer) -> None:
    # On failure the client forks the guard that holds stdout until containerd has reaped it
    # (exit_race): that module, and still nothing of the payload or the library.
    entry = "import sys\nfrom ctd_decoder.decoder import main\nsys.exit(main())\n"
    command = [sys.executable, "-X", "importtime", "-c", entry]
    result = run_decoder(layer.blob, layer.payload(dc=DecryptConfig()), env=server.env, command=command)
    assert (result.returncode, result.stdout) == (1, b""), result.stderr
    assert "missing private key needed for decryption" in result.stderr
    assert server.wait_for_layers(1)
    imported = {
        line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    ours = {name for name in imported if name.startswith("ctd_decoder")}
    assert ours == {"ctd_decoder", "ctd_decoder.decoder", "ctd_decoder.decoder.warm"} | {
        "ctd_decoder.decoder.warm.client",
        "ctd_decoder.decoder.warm.protocol",
        "ctd_decoder.decoder.exit_race",
    }
    assert not imported & {"cryptography", "json", "re", "enum", "typing"}, sorted(imported)
