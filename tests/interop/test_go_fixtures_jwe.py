"""The Go toolchain's JWE layers and the negative cases, through the installed executable."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fixtures import case_names, load_case, run_case

# Every case runs cold and through a running warm server (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("decoder_path")


@pytest.mark.parametrize("name", case_names(("jwe-", "node-jwe-", "bad-")))
def test_go_fixture(name: str, tmp_path: Path) -> None:
    run_case(load_case(name, tmp_path))
