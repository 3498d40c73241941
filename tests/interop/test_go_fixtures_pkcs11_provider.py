"""The Go toolchain's PKCS#11 (SoftHSM2, OAEP sha1) and key-provider layers, through the installed executable."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fixtures import case_names, load_case, run_case

GRPC_ADDRESS = ("127.0.0.1", 50111)


def _wait_for_port(address: tuple[str, int], process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the fixture's gRPC provider exited early: {process.stderr and process.stderr.read()!r}")
        try:
            with socket.create_connection(address, timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"the fixture's gRPC provider did not listen on {address} within {timeout} s")


@pytest.fixture
def grpc_provider(tmp_path: Path) -> Iterator[Path]:
    """Start the keyprovider-grpc case's own provider on 127.0.0.1:50111 and stop it after the test."""
    case = load_case("keyprovider-grpc", tmp_path / "server")
    script = case.directory / "provider" / "provider_grpc.py"
    process = subprocess.Popen(
        [sys.executable, str(script), f"{GRPC_ADDRESS[0]}:{GRPC_ADDRESS[1]}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(GRPC_ADDRESS, process)
        yield case.directory
    finally:
        process.kill()
        process.wait(timeout=30)


# Every case runs cold and through a running warm server (tests/conftest.py).
@pytest.mark.usefixtures("decoder_path")
@pytest.mark.parametrize("name", case_names(("pkcs11-", "keyprovider-cmd")))
def test_go_fixture(name: str, tmp_path: Path) -> None:
    run_case(load_case(name, tmp_path))


@pytest.mark.usefixtures("decoder_path")
def test_go_fixture_keyprovider_grpc(grpc_provider: Path, tmp_path: Path) -> None:
    run_case(load_case("keyprovider-grpc", tmp_path))


def test_every_pkcs11_and_keyprovider_case_is_covered() -> None:
    names = case_names(("pkcs11-", "keyprovider-"))
    assert "keyprovider-grpc" in names
    assert {"keyprovider-cmd", "keyprovider-cmd-node-model"} <= set(names)
    assert len([n for n in names if n.startswith("pkcs11-")]) >= 2
