"""CRI pulls through a real containerd (both lines) with the warm server running, stopped, or killed mid-pull."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from support.e2e.daemons import Registry, remove_tree
from support.e2e.node import Image, Node, push_encrypted, small_layers, verify_pulled
from support.e2e.schemes import Recipient
from support.proc import stat_fields
from support.tempdirs import short_tempdir
from support.waiting import eventually
from support.warm import COLD_ENV, WarmServer
from support.wheel import build_wheel, install_in_fresh_venv, is_small_client

from ctd_decoder.decoder.warm.pool import DEFAULT_SIZE, POOL_ENV


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv with the wheel ``python -m build`` makes (the platform one, with the small client)."""
    workdir = tmp_path_factory.mktemp("wheel")
    wheel, _ = build_wheel(workdir)
    return install_in_fresh_venv(wheel, workdir / "venv")


def test_cri_pull_through_the_warm_server(
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    warm: WarmServer,
    tmp_path: Path,
) -> None:
    recipient = recipients("jwe-rsa2048")
    image = push_encrypted(registry, tmp_path, [recipient], small_layers())
    node = nodes(pip_decoder, registry, recipient.key_files, warm.env)
    node.pull_and_verify(image)
    warm.wait_for_ok_layers(len(image.diff_ids))
    assert warm.children() == []
    assert len(warm.waiting_children()) == DEFAULT_SIZE


def test_eight_concurrent_cri_pulls_drain_the_pool_and_it_refills(
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    """A pool of two, eight images pulled at once (containerd unpacks one image's layers in turn)."""
    base = short_tempdir("ctd-warm-pool-")
    warm = WarmServer(base / "run", extra_env={POOL_ENV: "2"})
    try:
        recipient = recipients("jwe-rsa2048")
        images = [push_encrypted(registry, tmp_path / str(n), [recipient], small_layers(2)) for n in range(8)]
        node = nodes(pip_decoder, registry, recipient.key_files, warm.env)
        assert eventually(lambda: len(warm.waiting_children()) == 2, timeout=30)
        first_pool = set(warm.waiting_children())
        barrier = threading.Barrier(len(images))

        def pull(image: Image) -> None:
            client = node.client("k8s.io")
            barrier.wait()
            client.pull_image(image.ref)
            verify_pulled(client, image)

        started = time.monotonic()
        with ThreadPoolExecutor(len(images)) as pool:
            list(pool.map(pull, images))
        elapsed = time.monotonic() - started
        warm.wait_for_ok_layers(16)
        assert eventually(lambda: warm.children() == [] and len(warm.waiting_children()) == 2, timeout=30), warm.lines
        assert not first_pool & set(warm.waiting_children()), "the pool was not drained"
        assert len(warm.all_children()) == 2
        print(f"8 concurrent pulls of 2 layers through a pool of 2: {elapsed:.1f} s")
    finally:
        warm.stop()
        remove_tree(base)


def test_cri_pull_with_the_warm_server_stopped_decodes_in_process(
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    warm: WarmServer,
    tmp_path: Path,
) -> None:
    recipient = recipients("jwe-rsa2048")
    image = push_encrypted(registry, tmp_path, [recipient], small_layers())
    node = nodes(pip_decoder, registry, recipient.key_files, warm.env)
    warm.stop()
    node.pull_and_verify(image)
    assert warm.layer_lines() == []


def test_cri_pull_with_the_warm_server_killed_mid_pull_then_the_next_pull_works(
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    warm: WarmServer,
    tmp_path: Path,
) -> None:
    recipient = recipients("jwe-rsa2048")
    first = push_encrypted(registry, tmp_path / "first", [recipient], small_layers())
    second = push_encrypted(registry, tmp_path / "second", [recipient], small_layers())
    node = nodes(pip_decoder, registry, recipient.key_files, warm.env)
    children_seen: list[tuple[int, str]] = []  # (pid, start time): a reused pid is another process
    pull_ended = threading.Event()

    def kill_while_a_layer_runs() -> None:
        warm.wait_for_layers(1, timeout=120)
        deadline = time.monotonic() + 120
        while not children_seen and not pull_ended.is_set() and time.monotonic() < deadline:
            children_seen.extend((pid, start) for pid in warm.children() if (start := _start_time(pid)))
            time.sleep(0.001)
        warm.process.kill()

    assert eventually(lambda: len(warm.waiting_children()) == DEFAULT_SIZE, timeout=30)
    waiting = [(pid, _start_time(pid)) for pid in warm.waiting_children()]
    killer = threading.Thread(target=kill_while_a_layer_runs)
    killer.start()
    client = node.client("k8s.io")
    try:
        client.pull_image(first.ref)
    except grpc.RpcError:
        pass  # failing cleanly is allowed; completing is too, then it must be complete and right
    else:
        verify_pulled(client, first)
    finally:
        pull_ended.set()
    killer.join()
    assert warm.process.wait(30) != 0
    assert children_seen, "no layer's child was seen running before the pull ended"
    # Killed with their server (PR_SET_PDEATHSIG), never left running: re-parented, they would
    # otherwise live on under another parent.
    deadline = time.monotonic() + 10
    while (alive := [c for c in children_seen + waiting if _running(*c)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive, alive
    client.pull_image(second.ref)
    verify_pulled(client, second)


def _start_time(pid: int) -> str:
    """The process's start time (field 22), "" once it is gone."""
    fields = stat_fields(pid)
    return fields[19] if fields else ""


def _running(pid: int, start_time: str) -> bool:
    """The process that had this start time still runs (a zombie has already been killed)."""
    fields = stat_fields(pid)
    return bool(fields) and fields[19] == start_time and fields[0] not in ("Z", "X")


def test_cri_pull_through_the_small_client_of_a_pip_install_and_its_fallback(
    pip_decoder: str,
    small_client: Path,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    warm: WarmServer,
    tmp_path: Path,
) -> None:
    """The README's recipe for a pip install: the small client as the processors' path, the venv's
    ctd-decoder as CTD_DECODER_COLD. It hands every layer over; with the server stopped it runs the venv's."""
    recipient = recipients("jwe-rsa2048")
    image = push_encrypted(registry, tmp_path, [recipient], small_layers())
    env = {**warm.env, COLD_ENV: pip_decoder}
    nodes(str(small_client), registry, recipient.key_files, env).pull_and_verify(image)
    warm.wait_for_ok_layers(len(image.diff_ids))
    warm.stop()
    nodes(str(small_client), registry, recipient.key_files, env).pull_and_verify(image)
    assert len(warm.layer_lines()) == len(image.diff_ids), "the stopped server was used"


def test_cri_pull_through_a_pip_installed_wheel_uses_its_small_client(
    wheel_venv: Path,
    registry: Registry,
    nodes: Callable[..., Node],
    recipients: Callable[[str], Recipient],
    tmp_path: Path,
) -> None:
    """pip install of the wheel, nothing else: its ctd-decoder is the C client, the venv's server takes every
    layer; with the server stopped the same path decodes in-process (the client execs ctd-decoder-python)."""
    decoder = wheel_venv / "ctd-decoder"
    assert is_small_client(decoder)
    base = short_tempdir("ctd-warm-wheel-")
    warm = WarmServer(base / "run", command=[str(wheel_venv / "ctd-decoder-warm")])
    try:
        recipient = recipients("jwe-rsa2048")
        image = push_encrypted(registry, tmp_path, [recipient], small_layers())
        started = time.monotonic()
        nodes(str(decoder), registry, recipient.key_files, warm.env).pull_and_verify(image)
        elapsed = time.monotonic() - started
        warm.wait_for_ok_layers(len(image.diff_ids))
        warm.stop()
        nodes(str(decoder), registry, recipient.key_files, warm.env).pull_and_verify(image)
        assert len(warm.layer_lines()) == len(image.diff_ids), "the stopped server was used"
        print(f"CRI pull of {len(image.diff_ids)} layers through the wheel's small client: {elapsed:.2f} s")
    finally:
        warm.stop()
        remove_tree(base)
