"""Shared pytest configuration."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import decoder as decoder_support
from support.providers import GrpcServer, make_pki, start_grpc_server
from support.warm import COLD_ENV, WarmServer, build_small_client

from ctd_decoder.decoder.warm.protocol import DISABLED, SOCKET_ENV

if TYPE_CHECKING:
    from e2e.schemes import Recipient


@pytest.fixture(scope="session")
def warm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmServer]:
    """One ``ocicrypt serve`` for the whole session."""
    server = WarmServer(tmp_path_factory.mktemp("warm") / "run")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def small_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C client of packaging/warm-client, built for this session."""
    return build_small_client(tmp_path_factory.mktemp("small-client"))


@pytest.fixture(params=["cold", "warm", "warm-small-client"])
def decoder_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test's decoder in-process (cold), through the warm server from ``ctd-decoder`` itself and
    from the small C client; the warm server must have been used."""
    if request.param == "cold":
        monkeypatch.setenv(SOCKET_ENV, DISABLED)
        yield "cold"
        return
    server: WarmServer = request.getfixturevalue("warm_server")
    before = len(server.layer_lines())
    monkeypatch.setenv(SOCKET_ENV, str(server.socket))
    if request.param == "warm-small-client":
        monkeypatch.setenv(COLD_ENV, decoder_support.decoder_command()[0])
        monkeypatch.setattr(decoder_support, "DECODER", str(request.getfixturevalue("small_client")))
    yield request.param
    assert len(server.wait_for_layers(before + 1, timeout=10)) > before, "the warm server decoded nothing"


@pytest.fixture
def grpc_server(tmp_path: Path) -> Iterator[GrpcServer]:
    """A real key-provider gRPC server on 127.0.0.1 (plaintext)."""
    directory = tmp_path / "grpc"
    directory.mkdir()
    server = start_grpc_server(directory)
    yield server
    server.stop()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[GrpcServer, Path]]:
    """A real key-provider gRPC server with TLS and client certificates; also its PKI directory."""
    directory = tmp_path / "tls"
    directory.mkdir()
    pki = make_pki(directory)
    server = start_grpc_server(directory, tls=(pki.server_key, pki.server_cert, pki.ca))
    yield server, directory
    server.stop()


@pytest.fixture
def recipients(tmp_path: Path) -> Iterator[Callable[[str], Recipient]]:
    """Make recipients by scheme name (see ``e2e.schemes.SCHEMES``); their gpg agents etc. are cleaned up."""
    from e2e.schemes import SCHEMES

    made: list[Recipient] = []

    def make(scheme: str) -> Recipient:
        recipient = SCHEMES[scheme](tmp_path / f"recipient-{len(made)}-{scheme}")
        made.append(recipient)
        return recipient

    yield make
    for recipient in made:
        recipient.cleanup()
