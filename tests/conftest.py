"""Shared pytest configuration."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.warm import WarmServer

from ctd_decoder.decoder.warm.protocol import DISABLED, SOCKET_ENV


@pytest.fixture(scope="session")
def warm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmServer]:
    """One ``ocicrypt serve`` for the whole session."""
    server = WarmServer(tmp_path_factory.mktemp("warm") / "run")
    yield server
    server.stop()


@pytest.fixture(params=["cold", "warm"])
def decoder_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test's decoder in-process (cold) and through the warm server; warm must be used."""
    if request.param == "cold":
        monkeypatch.setenv(SOCKET_ENV, DISABLED)
        yield "cold"
        return
    server: WarmServer = request.getfixturevalue("warm_server")
    before = len(server.layer_lines())
    monkeypatch.setenv(SOCKET_ENV, str(server.socket))
    yield "warm"
    assert len(server.wait_for_layers(before + 1, timeout=10)) > before, "the warm server decoded nothing"
