"""Fixtures for the end-to-end and packaging tests (a plugin of tests/conftest.py): a docker-registry
per session, a private containerd per test
on each containerd line (Debian's 1.6.20 and the reference 2.3.4), and the decoder under test (the
pip-installed script and the packaged executable).

Nothing is skipped: a missing tool fails the test with the apt-get line that installs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.decoder import installed_python_decoder
from support.tempdirs import short_tempdir
from support.warm import WarmServer

from .daemons import CONTAINERD_1, CONTAINERD_2_LINE, CONTAINERD_VERSIONS, Registry, remove_tree, require_tool, running
from .node import Node, start_node
from .packaged import packaged_decoder_path

DECODERS = ("pip", "packaged")
# A test that asks for one of these runs containerd, a registry or the bundle: it is an e2e test wherever it lives.
E2E_FIXTURES = frozenset(
    {"tools", "registry", "nodes", "decoder", "pip_decoder", "packaged_decoder", "containerd_version"}
)
# The bundle's risks (its backends: grpc, pkcs11, gnupg, yaml) do not depend on the containerd line, and
# the line's do not depend on the bundle: on 2.x the packaged executable runs the per-scheme cases for
# these schemes only (all of them on 1.6, and every scheme with the pip script on both). Saves ~2 minutes.
PACKAGED_SCHEMES_ON_2X = ("jwe-rsa2048", "provider-grpc")
# A test about Debian's containerd 1.6.20 only (named as the containerd_version fixture names its cases).
ON_CONTAINERD_1 = pytest.mark.parametrize("containerd_version", [CONTAINERD_1], ids=lambda v: f"containerd-{v}")


def _redundant(item: pytest.Item) -> bool:
    params = getattr(item, "callspec", None)
    values = params.params if params is not None else {}
    return (
        values.get("decoder") == "packaged"
        and values.get("containerd_version") == CONTAINERD_2_LINE
        and "scheme" in values
        and values["scheme"] not in PACKAGED_SCHEMES_ON_2X
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path) or E2E_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
    redundant = [item for item in items if _redundant(item)]
    if redundant:
        config.hook.pytest_deselected(items=redundant)
        items[:] = [item for item in items if not _redundant(item)]


@pytest.fixture(scope="session")
def tools() -> None:
    """Fail early and clearly when a real tool is missing."""
    for name, package in [
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("runc", "runc"),
        ("skopeo", "skopeo"),
        ("docker-registry", "docker-registry"),
    ]:
        try:
            require_tool(name, package)
        except RuntimeError as err:
            pytest.fail(str(err))
    if os.geteuid() != 0:
        pytest.fail("the e2e tests run containerd, which needs root")


@pytest.fixture(scope="session")
def registry(tools: None) -> Iterator[Registry]:
    base = short_tempdir("ctd-reg-")
    with running(Registry(base), base) as reg:
        yield reg


@pytest.fixture(scope="session")
def pip_decoder() -> str:
    path = installed_python_decoder()
    if not path:
        pytest.fail("ctd-decoder is not installed next to the test interpreter (pip install -e .)")
    return str(Path(path).resolve(strict=True).parent / Path(path).name)


@pytest.fixture(scope="session")
def packaged_decoder() -> str:
    try:
        return str(packaged_decoder_path())
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture(params=DECODERS)
def decoder(request: pytest.FixtureRequest) -> str:
    """The decoder executable containerd runs: each test runs once per kind."""
    path: str = request.getfixturevalue(f"{request.param}_decoder")
    return path


@pytest.fixture(params=CONTAINERD_VERSIONS, ids=lambda v: f"containerd-{v}")
def containerd_version(request: pytest.FixtureRequest) -> str:
    """The containerd line every node of a test runs: each test using :func:`nodes` runs on both.

    A test about one line only parametrizes it directly: ``@pytest.mark.parametrize("containerd_version", ["2.3"])``.
    """
    version: str = request.param
    return version


@pytest.fixture
def nodes(tools: None, containerd_version: str) -> Iterator[Callable[..., Node]]:
    """Start private containerd daemons (see :func:`start_node`) of :func:`containerd_version`; all are
    stopped by pid afterwards."""
    started: list[Node] = []

    def start(*args: object, **kwargs: object) -> Node:
        kwargs.setdefault("version", containerd_version)
        try:
            node = start_node(*args, **kwargs)  # type: ignore[arg-type]
        except RuntimeError as err:
            pytest.fail(str(err))
        started.append(node)
        return node

    yield start
    for node in started:
        print(f"--- containerd log tail ({node.containerd.directory}) ---\n{node.containerd.log_tail()}")
        node.close()


@pytest.fixture
def warm() -> Iterator[WarmServer]:
    """A warm server of this test's own, its socket under a short directory (a socket path's limit)."""
    base = short_tempdir("ctd-warm-e2e-")
    server = WarmServer(base / "run")
    yield server
    server.stop()
    remove_tree(base)
