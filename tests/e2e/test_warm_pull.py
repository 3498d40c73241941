"""CRI pulls through a real containerd (both lines) with the warm server running, stopped, or killed mid-pull."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from support.tempdirs import short_tempdir
from support.warm import COLD_ENV, WarmServer

from .daemons import Registry, remove_tree
from .node import Node, push_encrypted, small_layers, verify_pulled
from .schemes import Recipient


@pytest.fixture
def warm() -> Iterator[WarmServer]:
    base = short_tempdir("ctd-warm-e2e-")
    server = WarmServer(base / "run")
    yield server
    server.stop()
    remove_tree(base)


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
    lines = warm.wait_for_layers(len(image.diff_ids))
    assert len(lines) == len(image.diff_ids)
    assert all(" ok " in line for line in lines), lines
    assert warm.children() == []


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
    server_pid = warm.process.pid
    children_seen: list[int] = []

    def kill_after_the_first_layer() -> None:
        warm.wait_for_layers(1, timeout=120)
        children_seen.extend(warm.children())
        warm.process.kill()

    killer = threading.Thread(target=kill_after_the_first_layer)
    killer.start()
    client = node.client("k8s.io")
    try:
        client.pull_image(first.ref)
    except grpc.RpcError:
        pass  # failing cleanly is allowed; completing is too, then it must be complete and right
    else:
        verify_pulled(client, first)
    killer.join()
    assert warm.process.wait(30) != 0
    for pid in children_seen:  # killed with their server (PR_SET_PDEATHSIG), never left running
        assert not Path(f"/proc/{pid}").exists() or _parent(pid) != server_pid
    client.pull_image(second.ref)
    verify_pulled(client, second)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, IndexError):
        return 0


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
    lines = warm.wait_for_layers(len(image.diff_ids))
    assert len(lines) == len(image.diff_ids) and all(" ok " in line for line in lines), lines
    warm.stop()
    nodes(str(small_client), registry, recipient.key_files, env).pull_and_verify(image)
    assert len(warm.layer_lines()) == len(image.diff_ids), "the stopped server was used"
