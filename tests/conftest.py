"""Shared pytest configuration, and which references the run used (its last line names them)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import decoder as decoder_support
from support import references
from support.e2e.daemons import CONTAINERD_2_LINE
from support.providers import GrpcServer, make_pki, start_grpc_server
from support.warm import COLD_ENV, WarmServer, build_small_client

from ctd_decoder.decoder.warm.protocol import DISABLED, SOCKET_ENV

if TYPE_CHECKING:
    from support.e2e.schemes import Recipient

# The e2e fixtures (containerd daemons, the registry, the decoders under test) serve tests/e2e and tests/packaging.
pytest_plugins = ["support.e2e.fixtures"]
_deselected_for_containerd_2: list[pytest.Item] = []
_containerd_run: list[bool] = []


def needs_containerd_2(item: pytest.Item) -> bool:
    """The test runs containerd 2.x: an e2e case on the 2.x line, or one marked ``containerd_2``."""
    callspec = getattr(item, "callspec", None)
    on_2x = callspec is not None and callspec.params.get("containerd_version") == CONTAINERD_2_LINE
    return on_2x or item.get_closest_marker("containerd_2") is not None


def _runs_containerd(item: pytest.Item) -> bool:
    parts = Path(str(item.path)).parts
    return "e2e" in parts or "doctor" in parts or "packaging" in parts


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests that need containerd 2.x when none is given (``$CTD_REFERENCE_BIN``)."""
    if references.containerd_2() is None:
        deselected = [item for item in items if needs_containerd_2(item)]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if not needs_containerd_2(item)]
            _deselected_for_containerd_2.extend(deselected)
    _containerd_run[:] = [any(_runs_containerd(item) for item in items)]


def _debian_containerd_version() -> str | None:
    try:
        result = subprocess.run(["containerd", "--version"], capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return None
    # "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3"
    words = result.stdout.split()
    return words[2].split("~")[0] if len(words) > 2 else None


def references_line() -> str:
    """One line: the containerd lines and the Go references this run used (or deselected for lack of)."""
    parts = []
    if _containerd_run and _containerd_run[0]:
        parts.append(f"containerd {_debian_containerd_version() or '(Debian package missing)'} (Debian)")
    given = references.containerd_2_version()
    if given is not None:
        parts.append(f"containerd {given.removeprefix('v')} ({references.REFERENCE_BIN_ENV})")
    else:
        count = len(_deselected_for_containerd_2)
        parts.append(f"containerd 2.x not given ({references.REFERENCE_BIN_ENV}), {count} tests deselected")
    go_versions = references.go_versions_used()
    if go_versions:
        versions = " and ".join(f"Go {version}" for version in go_versions)
        parts.append(f"Go reference decoder: {versions} on ocicrypt {references.ocicrypt_version()}")
    else:
        parts.append("Go reference decoder: not used")
    return "references: " + "; ".join(parts)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name what the run compared with, last."""
    terminalreporter.write_line(references_line())


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
    from support.e2e.schemes import SCHEMES

    made: list[Recipient] = []

    def make(scheme: str) -> Recipient:
        recipient = SCHEMES[scheme](tmp_path / f"recipient-{len(made)}-{scheme}")
        made.append(recipient)
        return recipient

    yield make
    for recipient in made:
        recipient.cleanup()
